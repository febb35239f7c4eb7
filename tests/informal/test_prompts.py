"""Prompts: the Llemma Isabelle format exactly, exemplar exclusion, our Lean exemplars, no reference proofs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_env.types import Language, Problem
from prover.informal.prompts import PromptSet, normalise, similarity
from tests.shared_data import shared_data_file

PROMPTS = PromptSet.default()


def isabelle(name: str, statement: str, *, informal_proof: str | None = "The proof.") -> Problem:
    return Problem(
        name=name,
        header=f"theory {name} imports Complex_Main begin\n\n",
        formal_statement=statement,
        language=Language.ISABELLE,
        informal_statement="Show it.",
        informal_proof=informal_proof,
    )


def records(name: str) -> list[dict[str, object]]:
    path = shared_data_file(name)
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_isabelle_sketch_prompt_is_the_harness_format() -> None:
    problem = isabelle("mathd_algebra_1", 'theorem mathd_algebra_1:\n  "(2::nat) + 2 = 4"')
    prompt = PROMPTS.sketch_prompt(problem, "By evaluation.")
    assert prompt.endswith(
        "\n\n\n\nInformal:\n(*### Problem\n\nShow it.\n\n### Solution\n\nBy evaluation. *)\n\nFormal:\n"
        'theorem mathd_algebra_1:\n  "(2::nat) + 2 = 4"'
    )
    # The `other` set, in the harness's order, each exemplar named after `theorem` and followed by four newlines.
    names = [line.split()[1].rstrip(":") for line in prompt.splitlines() if line.startswith("theorem ")]
    assert names[:-1] == [
        "aime_1983_p9",
        "algebra_3rootspoly_amdtamctambeqnasqmbpctapcbtdpasqmbpctapcbta",
        "mathd_numbertheory_188",
        "amc12b_2002_p3",
        "algebra_binomnegdiscrineq_10alt28asqp1",
        "algebra_2rootsintpoly_am10tap11eqasqpam110",
    ]
    assert prompt.startswith("Informal:\n(*### Problem\n\nFind the minimum value of")
    assert prompt.count("\nqed\n\n\n\nInformal:\n") == 5  # all but mathd_numbertheory_188 end with `qed`


def test_number_theory_statements_get_the_number_theory_set() -> None:
    problem = isabelle("numbertheory_foo", 'theorem numbertheory_foo:\n  "(4::nat) dvd 8"')
    names = [e.name for e in PROMPTS.exemplars_for(problem)]
    assert names == [
        "aime_1983_p9",
        "mathd_numbertheory_188",
        "numbertheory_2dvd4expn",
        "mathd_numbertheory_466",
        "mathd_numbertheory_48",
        "mathd_numbertheory_335",
        "mathd_numbertheory_284",
    ]
    # mathd_numbertheory_48's exemplar ends with its own `end`, as the DSP prompt does.
    assert "qed\n\nend\n\n\n\nInformal:" in PROMPTS.sketch_prompt(problem, "x")


def test_shipped_isabelle_exemplars_are_the_dsp_prompts_with_the_name_written_in() -> None:
    dsp = {row["name"]: row["prompt"] for row in records("minif2f_dsp_prompt_examples.jsonl")}
    for name, exemplar in PROMPTS.exemplars["isabelle"].items():
        assert exemplar.text == str(dsp[name]).replace("Formal:\ntheorem\n", f"Formal:\ntheorem {name}:\n", 1)


def test_a_problem_is_never_among_its_own_exemplars() -> None:
    rows = {row["name"]: row for row in records("minif2f_isabelle.jsonl")}
    for name in ("aime_1983_p9", "mathd_numbertheory_188", "mathd_numbertheory_48"):
        row = rows[name]
        problem = isabelle(name, str(row["formal_statement"]), informal_proof=str(row["informal_proof"]))
        assert name not in [e.name for e in PROMPTS.exemplars_for(problem)]
        assert f"theorem {name}:" not in PROMPTS.sketch_prompt(problem, "p").rsplit("Informal:", 1)[0]
    # Renamed, but the same statement: still excluded by text similarity.
    disguised = isabelle("renamed", 'theorem renamed:\n  "gcd 180 168 = (12::nat)"')
    assert "mathd_numbertheory_188" not in [e.name for e in PROMPTS.exemplars_for(disguised)]
    assert similarity('theorem a:\n  "gcd 180 168 = (12::nat)"', 'theorem b: "gcd 180  168 = (12::nat)"') == 1.0
    assert normalise("theorem x_y : 1 = 1 := by") == "theorem 1 = 1 := by"


def test_reference_proofs_are_never_in_a_prompt() -> None:
    for row in records("minif2f_isabelle.jsonl"):
        reference = row.get("reference_proof")
        if not reference or len(str(reference).strip()) < 40:
            continue  # a one-liner such as `by simp` occurs in ordinary text
        problem = Problem(
            name=str(row["name"]),
            header=str(row["header"]),
            formal_statement=str(row["formal_statement"]),
            language=Language.ISABELLE,
            informal_statement=str(row["informal_statement"]),
            informal_proof=str(row["informal_proof"]),
        )
        for prompt in (PROMPTS.render_for(problem, "sketch"), PROMPTS.render_for(problem, "draft")):
            assert str(reference).strip() not in prompt, row["name"]


def test_lean_exemplars_are_ours_and_none_is_a_minif2f_problem() -> None:
    lean = PROMPTS.exemplars["lean4"]
    assert 4 <= len(lean) <= 6
    minif2f = records("minif2f_lean4.jsonl")
    names = {str(row["name"]).casefold() for row in minif2f}
    for exemplar in lean.values():
        assert exemplar.name.casefold() not in names
        assert "sorry" in exemplar.text and ":= by sorry" in exemplar.text
        for row in minif2f:
            assert similarity(exemplar.formal_statement, str(row["formal_statement"])) <= 0.9, (
                exemplar.name,
                row["name"],
            )
            assert similarity(exemplar.informal_statement, str(row["informal_statement"])) <= 0.9


def test_lean_sketch_prompt_ends_with_the_statement() -> None:
    problem = Problem(
        name="q",
        header="import Mathlib\n",
        formal_statement="theorem q (n : ℕ) : n + 0 = n := by",
        informal_statement="S.",
    )
    prompt = PROMPTS.sketch_prompt(problem, "P.")
    assert prompt.endswith(
        "Informal:\n/- ### Problem\n\nS.\n\n### Solution\n\nP. -/\n\nFormal:\ntheorem q (n : ℕ) : n + 0 = n := by"
    )
    assert prompt.count("\n\n\n\nInformal:\n/- ### Problem") == len(PROMPTS.exemplars["lean4"])
    draft = PROMPTS.render_for(problem, "draft")
    assert draft.endswith("### Problem\n\nS.\n\n### Solution\n\n") and "Formal:" not in draft
    with pytest.raises(ValueError, match=r"render_for\.kind"):
        PROMPTS.render_for(problem, "nonsense")


def test_templates_and_exemplars_can_be_replaced_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(
        json.dumps(
            {
                "sketch_templates": {
                    "lean4": "PROBLEM {informal_statement} PROOF {informal_proof} LEAN {formal_statement}"
                },
                "exemplars": {
                    "lean4": [
                        {
                            "name": "mine",
                            "informal_statement": "A.",
                            "informal_proof": "B.",
                            "formal_statement": "theorem mine : True := by",
                            "sketch": "  trivial",
                        }
                    ]
                },
            }
        ),
        encoding="utf-8",
    )
    custom = PromptSet.from_file(path)
    problem = Problem(name="q", header="", formal_statement="theorem q : 1 = 1 := by", informal_statement="S.")
    assert custom.sketch_prompt(problem, "P.") == (
        "PROBLEM A. PROOF B. LEAN theorem mine : True := by\n  trivial\n\n\n\n"
        "PROBLEM S. PROOF P. LEAN theorem q : 1 = 1 := by"
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"sketch_template": "x"}', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown keys"):
        PromptSet.from_file(bad)

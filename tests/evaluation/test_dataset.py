"""Loading problems from a checkout or JSONL (miniF2F Lean and Isabelle, a user's file), filters, categories,
and errors that name the line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_env.lean_syntax import LEAN
from lean_env.source_policy import SourcePolicy, check_header
from lean_env.types import Language, Problem
from prover.minif2f.dataset import Category, DatasetError, category_of, dojo_locations, load_dataset, load_problems
from tests.evaluation.worlds import HEADER, NAMES, statement, write_jsonl
from tests.shared_data import shared_data_file


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("mathd_algebra_478", Category.MATHD_ALGEBRA),
        ("mathd_numbertheory_3", Category.MATHD_NUMBERTHEORY),
        ("amc12a_2019_p21", Category.AMC),
        ("amc12_2001_p5", Category.AMC),
        ("aimeII_2001_p3", Category.AIME),
        ("aime_1983_p1", Category.AIME),
        ("imo_1959_p1", Category.IMO),
        ("imosl_2007_algebra_p6", Category.IMO),
        ("induction_sum_odd", Category.INDUCTION),
        ("algebra_sqineq_at2malt1", Category.ALGEBRA),
        ("numbertheory_2dvd4expn", Category.NUMBERTHEORY),
        ("my_lemma", Category.OTHER),
    ],
)
def test_category_from_name(name: str, category: Category) -> None:
    assert category_of(name) is category


def write_checkout(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checkout_layout_gives_header_and_statement_through_by(tmp_path: Path) -> None:
    root = write_checkout(
        tmp_path / "miniF2F-lean4",
        {
            "MiniF2F/Test/mathd_algebra_10.lean": HEADER + statement("mathd_algebra_10") + " sorry\n",
            "MiniF2F/Test/imo_1959_p1.lean": HEADER + statement("imo_1959_p1") + " sorry",
            "MiniF2F/Valid/amc12a_2019_p21.lean": HEADER + statement("amc12a_2019_p21") + "\n  sorry\n",
        },
    )
    dataset = load_dataset(root)
    assert dataset.kind == "checkout"
    assert dataset.names == ["amc12a_2019_p21", "imo_1959_p1", "mathd_algebra_10"]  # valid first, then by name
    problem = dataset.problems[-1]
    assert isinstance(problem, Problem) and problem.language is Language.LEAN4
    assert problem.header == HEADER
    assert problem.formal_statement == statement("mathd_algebra_10")
    assert problem.split == "test" and problem.category == Category.MATHD_ALGEBRA.value
    assert problem.upstream == "MiniF2F/Test/mathd_algebra_10.lean"
    assert LEAN.proof_file(problem, "by\n  simp").startswith(HEADER + "theorem mathd_algebra_10 (n : ℕ)")
    assert load_dataset(root, splits=["test"]).names == ["imo_1959_p1", "mathd_algebra_10"]
    before = dataset.sha256
    (root / "MiniF2F/Test/imo_1959_p1.lean").write_text(HEADER + statement("imo_1959_p1") + " sorry\n")
    assert load_dataset(root).sha256 != before, "the hash covers every file's bytes"


def test_checkout_file_without_sorry_or_with_a_wrong_name_is_rejected(tmp_path: Path) -> None:
    root = write_checkout(
        tmp_path / "a", {"MiniF2F/Test/mathd_algebra_10.lean": HEADER + statement("mathd_algebra_10") + "\n  simp\n"}
    )
    with pytest.raises(DatasetError, match=r"mathd_algebra_10\.lean: expected a header"):
        load_dataset(root)
    root = write_checkout(tmp_path / "b", {"MiniF2F/Test/foo.lean": HEADER + statement("bar") + " sorry"})
    with pytest.raises(DatasetError, match=r"named 'bar' but the file is foo\.lean"):
        load_dataset(root)
    with pytest.raises(DatasetError, match="not a miniF2F-lean4 checkout"):
        load_dataset(tmp_path / "a" / "MiniF2F")
    with pytest.raises(DatasetError, match="no such file or directory"):
        load_dataset(tmp_path / "missing")


def test_filters_by_split_pattern_category_and_count(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", NAMES)
    with open(path, "a", encoding="utf-8") as handle:
        record = {"name": "mathd_algebra_99", "split": "valid", "header": HEADER, "formal_statement": statement("x")}
        handle.write(json.dumps(record) + "\n")
    dataset = load_dataset(path)
    assert dataset.names[0] == "mathd_algebra_99", "valid before test"
    assert load_dataset(path, splits=["valid"]).names == ["mathd_algebra_99"]
    assert len(load_dataset(path, splits=["all"])) == len(NAMES) + 1
    assert load_dataset(path, splits=["test"], pattern="mathd_*").names == [
        "mathd_algebra_10",
        "mathd_algebra_11",
        "mathd_numbertheory_3",
        "mathd_numbertheory_5",
    ]
    assert load_dataset(path, pattern="amc*,imo_*").names == ["amc12a_2019_p21", "imo_1959_p1"]
    assert load_dataset(path, categories=["mathd_numbertheory", "induction"]).names == [
        "mathd_numbertheory_3",
        "induction_sum_odd",
        "mathd_numbertheory_5",
    ]
    assert load_dataset(path, splits=["test"], limit=3).names == list(NAMES[:3])
    assert len(load_dataset(path, pattern="nothing*")) == 0
    with pytest.raises(DatasetError, match="unknown category 'geometry'"):
        load_dataset(path, categories=["geometry"])
    with pytest.raises(DatasetError, match="unknown split 'train'"):
        load_dataset(path, splits=["train"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"d\.jsonl:2: not valid JSON"),
        ('["a"]', r"d\.jsonl:2: expected a JSON object"),
        (
            json.dumps({"name": "x", "split": "test", "header": ""}),
            r"d\.jsonl:2: field 'formal_statement': Field required",
        ),
        (
            json.dumps({"name": "x", "split": "train", "header": "", "formal_statement": "theorem x : True := by"}),
            r"d\.jsonl:2: field 'split'",
        ),
        (
            json.dumps({"name": "x", "split": "test", "header": "", "formal_statement": "theorem x : True := by simp"}),
            r"d\.jsonl:2: field 'formal_statement': .*must end with `:= by`",
        ),
        (
            json.dumps({"name": "x", "split": "test", "header": "", "formal_statement": "-- theorem x : True := by"}),
            r"d\.jsonl:2: field 'formal_statement': must start with `theorem <name>`",
        ),
        (
            json.dumps(
                {
                    "name": "x",
                    "split": "test",
                    "header": "",
                    "formal_statement": "theorem x : True := by",
                    "language": "coq",
                }
            ),
            r"d\.jsonl:2: field 'language'",
        ),
        (
            json.dumps({"name": "a b", "split": "test", "header": "", "formal_statement": "theorem x : True := by"}),
            r"d\.jsonl:2: field 'name'",
        ),
        (
            json.dumps({"name": NAMES[0], "split": "test", "header": "", "formal_statement": "theorem x : True := by"}),
            r"d\.jsonl:2: field 'name': 'mathd_algebra_10' already appears on line 1",
        ),
    ],
)
def test_malformed_jsonl_record_names_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", NAMES[:1])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)


def test_real_minif2f_jsonl_and_an_equivalent_checkout_agree(tmp_path: Path) -> None:
    dataset = load_dataset(shared_data_file("minif2f_lean4.jsonl"))
    assert len(dataset) == 488
    test = dataset.select(splits=["test"])
    assert len(test) == 244
    counts = {category: 0 for category in Category}
    for problem in test.problems:
        counts[Category(problem.category)] += 1
    assert counts[Category.MATHD_ALGEBRA] == 70 and counts[Category.AMC] == 45 and counts[Category.OTHER] == 0
    assert all(problem.informal_statement for problem in dataset.problems), "informal fields are kept"
    # The upstream files are header + statement + " sorry"; rebuilt that way, the checkout loader agrees.
    root = tmp_path / "checkout"
    for problem in dataset.problems:
        folder = "Test" if problem.split == "test" else "Valid"
        path = root / "MiniF2F" / folder / f"{problem.name}.lean"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(problem.header + problem.formal_statement + " sorry", encoding="utf-8")
    from_checkout = {problem.name: problem for problem in load_dataset(root).problems}
    assert all(
        from_checkout[p.name].statement_hash == p.statement_hash and from_checkout[p.name].split == p.split
        for p in dataset.problems
    )


def test_real_minif2f_isabelle_jsonl_loads_as_488_isabelle_problems() -> None:
    path = shared_data_file("minif2f_isabelle.jsonl")
    with pytest.raises(DatasetError, match=r"minif2f_isabelle\.jsonl:1: field 'formal_statement'.*language=isabelle"):
        load_dataset(path)
    dataset = load_dataset(path, language="isabelle")
    assert len(dataset) == 488 and len(dataset.select(splits=["test"])) == 244
    assert {problem.language for problem in dataset.problems} == {Language.ISABELLE}
    first = dataset.problems[0]
    assert first.header.startswith("theory ") and first.formal_statement.startswith(f"theorem {first.name}")
    assert first.informal_statement and first.informal_proof
    assert first.upstream.startswith("facebookresearch/miniF2F@")
    lean = load_dataset(shared_data_file("minif2f_lean4.jsonl"))
    # The same problems in the same order; upstream spells one name with another case in each language.
    assert [name.lower() for name in dataset.names] == [name.lower() for name in lean.names]
    assert [p.category for p in dataset.problems] == [p.category for p in lean.problems]
    assert not {p.statement_hash for p in dataset.problems} & {p.statement_hash for p in lean.problems}


def test_a_record_s_language_field_decides_and_a_conflict_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    isabelle = {
        "name": "t",
        "split": "valid",
        "header": "theory t imports Main begin\n",
        "formal_statement": 'theorem t: "True"',
        "language": "isabelle",
    }
    path.write_text(json.dumps(isabelle) + "\n", encoding="utf-8")
    assert load_dataset(path).problems[0].language is Language.ISABELLE
    with pytest.raises(
        DatasetError, match=r"mixed\.jsonl:1: field 'language': 'isabelle', but the file was read as lean4"
    ):
        load_dataset(path, language="lean4")
    with pytest.raises(DatasetError, match="unknown language 'coq'"):
        load_dataset(path, language="coq")


def test_a_user_s_jsonl_needs_only_name_and_statement(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    records = [
        {"name": "my_lemma", "formal_statement": "theorem my_lemma : 1 + 1 = 2 := by"},
        {
            "name": "amc_like",
            "formal_statement": "theorem amc_like : True := by",
            "header": HEADER,
            "split": "train",
            "category": "warmup",
            "informal_statement": "Show that $1 + 1 = 2$.",
            "informal_proof": "Compute.",
        },
    ]
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    dataset = load_problems(path)
    assert dataset.names == ["my_lemma", "amc_like"], "file order, no split reordering"
    mine, other = dataset.problems
    assert (mine.header, mine.split, mine.category, mine.language) == ("", "", "other", Language.LEAN4)
    assert (other.split, other.category) == ("train", "warmup")
    assert (other.informal_statement, other.informal_proof) == ("Show that $1 + 1 = 2$.", "Compute.")
    assert load_problems(path, splits=["train"]).names == ["amc_like"]
    assert load_problems(path, categories=["warmup"]).names == ["amc_like"]
    with pytest.raises(DatasetError, match="unknown split 'test2'"):
        load_problems(path, splits=["test2"])
    with pytest.raises(DatasetError, match=r"mine\.jsonl:1: field 'split': Field required"):
        load_dataset(path)
    records[0].update(split="train", header="")
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"mine\.jsonl:1: field 'split': must be 'valid' or 'test', got 'train'"):
        load_dataset(path)


def test_dojo_locations_from_jsonl_sources_and_from_a_checkout(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    record = {
        "name": "mathd_algebra_10",
        "split": "test",
        "header": HEADER,
        "formal_statement": statement("mathd_algebra_10"),
        "source": "yangky11/miniF2F-lean4@5746b7d:MiniF2F/Test/mathd_algebra_10.lean",
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    location = dojo_locations(load_dataset(path))["mathd_algebra_10"]
    assert (location.repo_url, location.commit, location.file_path, location.full_name) == (
        "https://github.com/yangky11/miniF2F-lean4",
        "5746b7d",
        "MiniF2F/Test/mathd_algebra_10.lean",
        "mathd_algebra_10",
    )
    pinned = dojo_locations(load_dataset(path), commit="5746b7d6c47855ce1294bed87329618ff7f1bc31")
    assert pinned["mathd_algebra_10"].commit.startswith("5746b7d6c4")
    with pytest.raises(DatasetError, match="owner/repo@commit:path"):
        dojo_locations(load_dataset(write_jsonl(tmp_path / "plain.jsonl", NAMES[:1])))

    root = write_checkout(
        tmp_path / "checkout", {"MiniF2F/Test/imo_1959_p1.lean": HEADER + statement("imo_1959_p1") + " sorry"}
    )
    with pytest.raises(DatasetError, match="not a git checkout"):
        dojo_locations(load_dataset(root))
    located = dojo_locations(load_dataset(root), commit="abc1234")
    assert list(located) == ["imo_1959_p1"]
    assert (located["imo_1959_p1"].repo_url, located["imo_1959_p1"].file_path) == (
        str(root),
        "MiniF2F/Test/imo_1959_p1.lean",
    )


@pytest.mark.parametrize(
    "file_name", ["minif2f_lean4.jsonl", "minif2f_lean4_llemma.jsonl", "minif2f_lean4_deepseek.jsonl"]
)
def test_every_minif2f_lean_header_passes_the_default_policy(file_name: str) -> None:
    """All 488 problems of each miniF2F-lean4 variant load under the default source policy."""
    dataset = load_dataset(shared_data_file(file_name))
    assert len(dataset) == 488
    assert all(check_header(problem.header) is None for problem in dataset.problems)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            HEADER + "axiom cheat : False\n",
            r"d\.jsonl:2: field 'header': the header's line \d+ \(`axiom cheat : False`\)",
        ),
        ("import Mathlib\nset_option warn.sorry false\n", r"d\.jsonl:2: field 'header': .*`warn\.sorry`"),
        ('import Mathlib\n#eval IO.println "hi"\n', r"d\.jsonl:2: field 'header': the header's line 2"),
        ("-- pad\n" * 2000, r"d\.jsonl:2: field 'header': the header is 14,000 bytes long"),
    ],
)
def test_a_header_breaking_the_policy_is_refused_at_load_time(tmp_path: Path, header: str, message: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", NAMES[:1])
    record = {"name": NAMES[1], "split": "test", "header": header, "formal_statement": statement(NAMES[1])}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)
    with pytest.raises(DatasetError, match=message):
        load_problems(path)


def test_an_operator_can_widen_the_policy_and_a_checkout_is_checked_too(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "MiniF2F" / "Test").mkdir(parents=True)
    name = NAMES[0]
    (root / "MiniF2F" / "Test" / f"{name}.lean").write_text(
        "import Project.Helpers\n\n" + statement(name) + " sorry", encoding="utf-8"
    )
    with pytest.raises(DatasetError, match=rf"{name}\.lean: header: .*imports `Project\.Helpers`"):
        load_dataset(root)
    widened = SourcePolicy(allowed_imports=("Project.*",))
    assert load_dataset(root, policy=widened).names == [name]


def test_an_oversized_statement_is_refused_at_load_time(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    record = {"name": "big", "split": "test", "header": HEADER, "formal_statement": statement("big")}
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"field 'formal_statement': the statement is .* bytes long"):
        load_dataset(path, policy=SourcePolicy(max_statement_bytes=16))

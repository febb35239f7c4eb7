"""The text guard: every cheat in the corpus is refused for the right reason, genuine proofs pass."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lean_env.guard import (
    ALLOWED_OPTIONS,
    GuardViolation,
    check_proof_text,
    check_statement_text,
    check_tactic_text,
    tokenize,
)
from tests.lean_env.cheating_corpus import CHEATS, GENUINE_PROOFS
from tests.shared_data import SHARED_DATA, needs_shared, require_shared

GUARD_CHEATS = [cheat for cheat in CHEATS if cheat.layer == "guard"]


def test_corpus_is_large_enough() -> None:
    assert len(CHEATS) >= 120
    assert len(GENUINE_PROOFS) >= 25


@pytest.mark.parametrize("cheat", GUARD_CHEATS, ids=[cheat.name for cheat in GUARD_CHEATS])
def test_cheat_is_refused_for_its_reason(cheat) -> None:
    check = {"proof": check_proof_text, "tactic": check_tactic_text, "statement": check_statement_text}[cheat.kind]
    reason = check(cheat.text)
    assert reason is not None, f"{cheat.name} got through the guard"
    assert cheat.mentions in reason, reason


@pytest.mark.parametrize("name,proof", GENUINE_PROOFS, ids=[name for name, _ in GENUINE_PROOFS])
def test_genuine_odd_looking_proof_passes(name: str, proof: str) -> None:
    assert check_proof_text(proof) is None


@pytest.mark.parametrize("name,proof", GENUINE_PROOFS, ids=[name for name, _ in GENUINE_PROOFS])
def test_genuine_proof_body_passes_as_tactic(name: str, proof: str) -> None:
    body = proof.removeprefix("by").strip("\n ")
    assert check_tactic_text(body) is None


def test_reasons_name_the_kind_of_text() -> None:
    assert (check_proof_text("by sorry") or "").startswith("the proof ")
    assert (check_tactic_text("sorry") or "").startswith("the tactic ")
    assert (check_statement_text("def x : ℕ := by") or "").startswith("the statement ")


def test_every_allowed_option_passes_in_tactic_form_only() -> None:
    for option in ALLOWED_OPTIONS:
        assert check_proof_text(f"by\n  set_option {option} 100000 in\n  simp") is None
        assert check_proof_text(f"by\n  simp\nset_option {option} 100000") is not None


def test_forbidden_words_inside_comments_are_harmless_but_not_after_them() -> None:
    assert check_proof_text("by\n  simp -- sorry\n") is None
    assert check_proof_text("by\n  simp /- sorry -/ ") is None
    assert check_proof_text("by\n  simp /- -/ sorry") is not None


def test_nested_block_comments_are_read_like_lean() -> None:
    # Lean nests block comments: the inner `-/` does not end the outer one.
    assert check_proof_text("by\n  /- outer /- inner -/ sorry -/\n  simp") is None
    assert check_proof_text("by\n  /- outer /- inner -/\n  simp") is not None


def test_identifier_that_merely_contains_a_forbidden_word_passes() -> None:
    assert check_proof_text("by exact sorry_free_lemma") is None
    assert check_proof_text("by exact h.admitted'") is None
    assert check_proof_text("by simp [Nat.end_le]") is None


def test_statement_mode_accepts_the_two_endings() -> None:
    assert check_statement_text("theorem t (n : ℕ) (h₀ : n ≠ 0) : 0 < n := by") is None
    assert check_statement_text("lemma t : (1 : ℝ) + 1 = 2 :=") is None
    assert check_statement_text("/-- a docstring -/\ntheorem t (f : ℕ → ℕ := id) : f 0 = 0 := by") is None


def test_tokenize_reads_guillemets_and_dotted_names() -> None:
    names = [token.name for token in tokenize("_root_.«Lean».ofReduceBool x.1 h'") if token.kind == "ident"]
    assert names == ["_root_.Lean.ofReduceBool", "x", "h'"]


def test_tokenize_refuses_hidden_characters() -> None:
    with pytest.raises(GuardViolation, match="U\\+2066"):
        tokenize("simp \u2066 ")


@needs_shared(SHARED_DATA / "minif2f_lean4.jsonl")
@pytest.mark.parametrize(
    "file_name", ["minif2f_lean4.jsonl", "minif2f_lean4_llemma.jsonl", "minif2f_lean4_deepseek.jsonl"]
)
def test_every_benchmark_statement_passes_the_statement_guard(file_name: str) -> None:
    path = require_shared(SHARED_DATA / file_name)
    refused = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        reason = check_statement_text(record["formal_statement"])
        if reason is not None:
            refused.append((record["name"], reason))
    assert refused == []


_CODE_ALPHABET = st.sampled_from(
    [*"abcdefghs_ .:=()[]{}⟨⟩'\"\\#@-/!?\n\t«»0123456789ℕ→·<;>", "sorry", "by", "--", "/-", "-/", "theorem"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_CODE_ALPHABET, max_size=40).map("".join))
def test_guard_never_crashes_and_sorry_as_code_is_always_refused(text: str) -> None:
    """On any text the checks answer (they never raise), and a trailing `sorry` line is always caught
    unless the text leaves a comment or literal open (which is refused for that reason)."""
    for check in (check_proof_text, check_tactic_text, check_statement_text):
        result = check(text)
        assert result is None or isinstance(result, str)
    assert check_proof_text(text + "\n  sorry") is not None


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([proof for _, proof in GENUINE_PROOFS]), st.data())
def test_invisible_character_anywhere_is_refused(proof: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(proof)))
    hidden = data.draw(
        st.sampled_from(["\u200b", "\u200d", "\u2060", "\ufeff", "\u202e", "\u2066", "\u00a0", "\u2028"])
    )
    assert check_proof_text(proof[:position] + hidden + proof[position:]) is not None


# --- issue 9, item 4: each gap closed, with its test ---------------------------------------------


def test_names_inside_open_renaming_hiding_and_lists_are_checked() -> None:
    assert "ofReduceBool" in (check_proof_text("by\n  open Nat renaming ofReduceBool → orb in\n  exact orb") or "")
    assert "sorryAx" in (check_proof_text("by\n  open Nat hiding sorryAx in\n  simp") or "")
    assert "native_decide" in (check_proof_text("by\n  open Nat (native_decide) in\n  simp") or "")
    assert check_proof_text("by\n  open Nat renaming add_comm → addComm in\n  exact h.symm") is None


def test_opening_the_lean_namespace_is_refused_however_it_is_spelled() -> None:
    for proof in (
        "open Lean in simp",
        "open Lean.Elab.Tactic in simp",
        "open _root_.Lean in simp",
        "open scoped Lean in simp",
    ):
        assert check_proof_text(f"by\n  {proof}") is not None, proof
    assert check_proof_text("by\n  open Real in\n  simp") is None


def test_config_arguments_must_be_literal_structure_instances() -> None:
    assert "positional" in (check_proof_text("by decide (config := ⟨false, true⟩)") or "")
    assert "positional" in (check_proof_text("by simp (cfg := ⟨⟩)") or "")
    assert check_proof_text("by decide (config := .mk false true)") is not None
    assert check_proof_text("by decide (config := myConfig)") is not None
    assert check_proof_text("by simp (config := { maxSteps := f 3 })") is not None
    assert "native" in (check_proof_text("by decide (config := { native := true })") or "")
    assert check_proof_text("by simp (config := { decide := true, maxSteps := 10, zeta := .none })") is None
    assert check_proof_text("by simp (config := {})") is None
    # Named arguments of terms are not configs: Lean does not evaluate them.
    assert check_proof_text("by exact Nat.rec (motive := fun _ => True) trivial (fun _ _ => trivial) 0") is None


@pytest.mark.parametrize(
    ("proof", "fragment"),
    [
        ("by exact eval% 2 + 2", "eval%"),
        ("by plausible", "plausible"),
        ("by slim_check", "slim_check"),
        ("by\n  run_tac pure ()", "run_tac"),
        ("by_elab pure default", "by_elab"),
        ('by\n  have := include_str "secret.txt"\n  simp', "include_str"),
        ("by bv_decide", "bv_decide"),
        ("by aesop (add safe tactic (by simp))", "`tactic`"),
        ("by aesop (options := someOptions)", "options"),
        ("by aesop (simp_options := {})", "Aesop clause"),
    ],
)
def test_term_evaluating_tactics_and_options_are_refused(proof: str, fragment: str) -> None:
    reason = check_proof_text(proof)
    assert reason is not None and fragment in reason, reason


def test_literal_aesop_clauses_pass() -> None:
    assert check_proof_text("by aesop (add norm simp Nat.add_comm) (rule_sets := [-builtin])") is None
    assert check_proof_text("by aesop (add safe 50% apply Nat.le_refl) (config := { terminal := true })") is None
    assert check_proof_text("by aesop (erase Nat.add_comm)") is None
    # `eval` not written as `eval%` is a plain name (a hypothesis may be called `eval`).
    assert check_proof_text("by exact eval % 2") is None


def test_exit_is_refused_wherever_it_stands() -> None:
    for proof in (
        "by simp\n#exit",
        "by simp;#exit",
        "by\n  simp\n  #exit",
        "by simp\n#exit_now",
        "by simp\n/-- doc -/\n#exit",
    ):
        assert "#exit" in (check_proof_text(proof) or ""), proof


@pytest.mark.parametrize("lookalike", ["＃", "﹟", "♯", "⋕", "⌗"])
def test_lookalike_hashes_are_refused(lookalike: str) -> None:
    assert "imitates `#`" in (check_proof_text(f"by simp\n{lookalike}eval 1") or "")


@pytest.mark.parametrize("attribute", ["＠[simp]", "﹫[simp]", "@［simp]", "@﹇simp]"])
def test_lookalike_attribute_brackets_are_refused(attribute: str) -> None:
    assert "imitates" in (check_proof_text(f"by exact h.symm\n{attribute} theorem u : True := trivial") or "")


def test_forbidden_words_in_string_literals_are_data() -> None:
    """The former false rejection: a string literal is never code, so `"sorry"` in one is fine."""
    assert check_proof_text('by\n  have : ("sorry", 0).2 = 0 := rfl\n  exact h.symm') is None
    assert check_proof_text('by\n  let s := "native_decide, #eval, ѕоrry"\n  exact h.symm') is None
    assert check_proof_text('by exact r#"admit"#.length') is None
    # ... but an interpolated string's holes are code.
    assert check_proof_text('by\n  have := s!"{1}"\n  simp') is not None


def test_size_limits_come_first_and_are_configurable() -> None:
    huge = "by\n" + "  sorry\n" * 100_000
    assert (check_proof_text(huge) or "").startswith("the proof is 800,003 bytes long; the limit is 131,072 bytes")
    assert "limit is 10 bytes" in (check_proof_text("by exact h.symm", max_bytes=10) or "")
    assert "limit is 10 bytes" in (check_tactic_text("exact h.symm", max_bytes=10) or "")
    assert "limit is 10 bytes" in (check_statement_text("theorem t : 1 = 1 := by", max_bytes=10) or "")
    assert check_proof_text("by exact h.symm -- " + "x" * 100_000) is None


def test_bracket_nesting_is_limited() -> None:
    assert "deep" in (check_proof_text("by exact " + "(" * 300 + "h.symm" + ")" * 300) or "")
    assert check_proof_text("by exact " + "(" * 50 + "h.symm" + ")" * 50) is None


def test_a_refused_oversized_proof_costs_no_scan() -> None:
    import time

    text = "by\n" + "  simp\n" * 2_000_000
    started = time.perf_counter()
    assert check_proof_text(text) is not None
    assert time.perf_counter() - started < 0.05


async def test_large_texts_are_checked_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from lean_env import guard

    threaded: list[str] = []
    real_to_thread = asyncio.to_thread

    async def spy(function, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        threaded.append("called")
        return await real_to_thread(function, *args, **kwargs)

    monkeypatch.setattr(guard.asyncio, "to_thread", spy)
    assert await guard.check_proof_text_async("by exact h.symm") is None
    assert threaded == []
    large = "by\n" + "  skip -- padding\n" * 2_000 + "  sorry"
    assert "sorry" in (await guard.check_proof_text_async(large) or "")
    assert threaded == ["called"]
    assert await guard.check_tactic_text_async("simp " * 10_000) is None
    assert "bytes long" in (await guard.check_proof_text_async("x" * 200_000) or "")
    assert threaded == ["called", "called"], "text over its limit is refused at once, inline"


def test_a_sketch_may_hold_sorry_holes_and_theorems_but_nothing_else_a_proof_may_not() -> None:
    from lean_env.guard import check_sketch_text

    sketch = "theorem t (a b : ℕ) (h : a = b) : b = a := by\n  have h2 : a = b := by sorry\n  exact h2.symm\n"
    assert check_sketch_text(sketch) is None
    assert check_proof_text("by\n  sorry") is not None, "a proof is never allowed its sorry"
    for hostile in ("#eval 1", "axiom cheat : False", "theorem t : 1 = 1 := by native_decide", "admit"):
        assert check_sketch_text(sketch + hostile + "\n") is not None, hostile

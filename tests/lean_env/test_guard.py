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

GUARD_CHEATS = [cheat for cheat in CHEATS if cheat.kind != "judge"]


def test_corpus_is_large_enough() -> None:
    assert len(CHEATS) >= 25
    assert len(GENUINE_PROOFS) >= 8


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

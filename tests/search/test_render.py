"""The candidate text clean-up and de-duplication key the search relies on, and the Lean rendering of its proofs.

Rendering belongs to the backend (`LeanEnv.syntax.render_tactics`, here `lean_env.lean_syntax.LEAN`);
the round-trip tests stay here because the scripted environment's `split_rendered_proof` must read
back what the search reports; the rest could move to tests/lean_env/test_lean_syntax.py.
"""

from __future__ import annotations

import re
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_env.lean_syntax import LEAN, clean_tactic
from search import normalize_tactic
from tests.stand_ins.scripted import split_rendered_proof

CALC = "calc a = b := by rw [h₀]\n  _ = c := by ring\n  _ = d := by\n    simp [h₁]\n    ring"
FOCUS = "· intro x\n  simp [x]\n  · exact h\n  · linarith"
INDUCTION = "induction n with\n  | zero => simp\n  | succ k ih =>\n    rw [pow_succ]\n    omega"


def test_normalize_collapses_whitespace_for_deduplication() -> None:
    assert normalize_tactic("  simp   [h,\n  h']\t") == "simp [h, h']"
    assert normalize_tactic("simp [h]") == normalize_tactic("simp  [h]\n")
    assert normalize_tactic(" \n\t ") == ""


def test_clean_keeps_relative_indentation_and_drops_blank_edges() -> None:
    assert clean_tactic("\n\n  simp  \n\n") == "simp"
    # A block emitted with a common indent is dedented; inner structure is kept.
    assert clean_tactic("    calc a = b := h\n      _ = c := h'") == "calc a = b := h\n  _ = c := h'"
    assert clean_tactic(CALC) == CALC
    assert clean_tactic("constructor   \n· simp") == "constructor\n· simp"


def test_single_line_tactics_render_one_per_line() -> None:
    assert LEAN.render_tactics(["intro x", "simp [x]", "ring"]) == "by\n  intro x\n  simp [x]\n  ring"


def test_empty_proof_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one tactic"):
        LEAN.render_tactics([])


def test_multiline_tactics_keep_their_relative_indentation() -> None:
    proof = LEAN.render_tactics(["have h₂ : b = c := by\n  ring", CALC])
    assert proof == (
        "by\n"
        "  have h₂ : b = c := by\n"
        "    ring\n"
        "  calc a = b := by rw [h₀]\n"
        "    _ = c := by ring\n"
        "    _ = d := by\n"
        "      simp [h₁]\n"
        "      ring"
    )


def test_induction_arms_at_the_tactic_column_stay_at_the_tactic_column() -> None:
    # Lean accepts `| zero => ...` arms at the column of `induction`; rendering must not move them.
    tactic = "induction n with\n| zero => simp\n| succ k ih => omega"
    assert LEAN.render_tactics([tactic]) == "by\n  induction n with\n  | zero => simp\n  | succ k ih => omega"


@pytest.mark.parametrize("tactics", [[CALC], ["constructor", FOCUS, "· simp"], ["intro n", INDUCTION, "done"]])
def test_multiline_proofs_parse_back_into_the_same_tactics(tactics: list[str]) -> None:
    assert split_rendered_proof(LEAN.render_tactics(tactics)) == tactics


def test_blank_lines_inside_a_tactic_survive_the_round_trip() -> None:
    tactic = "calc a = b := h\n\n  _ = c := h'"
    proof = LEAN.render_tactics(["intro", tactic])
    assert "\n\n" in proof
    assert split_rendered_proof(proof) == ["intro", tactic]


_line = st.text(alphabet="abcxyz_=+·()[]⊢ℕ₀ ", min_size=1, max_size=12).map(str.strip).filter(bool)


@st.composite
def _tactics(draw: st.DrawFn) -> str:
    """A tactic whose first line is at column 0 and whose continuation lines are indented deeper."""
    first = draw(_line)
    rest = draw(st.lists(st.tuples(st.integers(1, 3), _line), max_size=3))
    return "\n".join([first, *("  " * depth + text for depth, text in rest)])


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(_tactics(), min_size=1, max_size=5))
def test_rendering_round_trips_for_any_indented_block(tactics: list[str]) -> None:
    proof = LEAN.render_tactics(tactics)
    assert proof.startswith("by\n")
    # Every line of the block is indented at least one level, so it stays inside the `by`.
    assert all(line.startswith("  ") for line in proof.splitlines()[1:] if line)
    assert split_rendered_proof(proof) == [clean_tactic(t) for t in tactics]


def _regex_normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _plain_clean(text: str) -> str:
    """The straightforward clean-up that `clean_tactic`'s fast path must agree with."""
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return textwrap.dedent("\n".join(lines))


_tricky = st.text(
    alphabet=st.sampled_from([" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u3000", "\xa0"])
    | st.sampled_from(["a", "b", "·", "ℝ", "_", "[", "]"]),
    max_size=24,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_tricky)
def test_fast_text_paths_agree_with_the_plain_definitions(text: str) -> None:
    assert normalize_tactic(text) == _regex_normalize(text)
    assert clean_tactic(text) == _plain_clean(text)

"""Whole-file verification: `judge` turns what Lean printed into a verdict a user can trust."""

from __future__ import annotations

import pytest

from lean_env.lean_syntax import LEAN
from lean_env.types import LeanMessage, Severity, Theorem, VerifyStatus
from lean_env.verification import axiom_reports, build_check_file, declaration_name, judge, precheck
from tests.lean_env.cheating_corpus import CHEATS, HEADER, STATEMENT

THEOREM = Theorem(name="t", header=HEADER, formal_statement=STATEMENT)
JUDGE_CHEATS = [cheat for cheat in CHEATS if cheat.kind == "judge"]


def _info(text: str, line: int = 9) -> LeanMessage:
    return LeanMessage(Severity.INFO, text, line=line)


def test_check_file_keeps_the_statement_and_asks_for_axioms() -> None:
    text = build_check_file(THEOREM, "by exact h.symm")
    assert text.startswith(HEADER + "theorem t (a b : ℕ) (h : a = b) : b = a := by exact h.symm\n")
    assert text.rstrip().endswith("#print axioms t")


def test_valid_proof_with_standard_axioms_is_accepted() -> None:
    text = build_check_file(THEOREM, "by exact h.symm")
    verdict = judge(THEOREM, text, [_info("'t' depends on axioms: [propext, Classical.choice, Quot.sound]")])
    assert verdict.ok
    assert verdict.axioms == ("propext", "Classical.choice", "Quot.sound")


def test_proof_without_any_axiom_is_accepted() -> None:
    text = build_check_file(THEOREM, "by exact h.symm")
    assert judge(THEOREM, text, [_info("'t' does not depend on any axioms")]).ok


def test_axioms_list_spread_over_lines_is_read() -> None:
    message = _info("'t' depends on axioms: [propext,\n Classical.choice,\n Quot.sound]")
    assert axiom_reports([message], "t") == [("propext", "Classical.choice", "Quot.sound")]


def test_names_with_primes_and_namespaces_are_matched() -> None:
    assert axiom_reports([_info("'t'' does not depend on any axioms")], "t'") == [()]
    assert axiom_reports([_info("'Foo.bar' depends on axioms: [propext]")], "bar") == [("propext",)]
    assert axiom_reports([_info("'Foo.barx' depends on axioms: [propext]")], "bar") == []


@pytest.mark.parametrize("cheat", JUDGE_CHEATS, ids=[cheat.name for cheat in JUDGE_CHEATS])
def test_cheat_only_lean_can_expose_is_rejected(cheat) -> None:
    text = cheat.checked_text if cheat.checked_text is not None else build_check_file(THEOREM, cheat.text)
    verdict = judge(THEOREM, text, list(cheat.messages))
    assert not verdict.ok
    assert verdict.status is cheat.expect, verdict.reason
    assert cheat.mentions in verdict.reason
    assert verdict.checked_text == text


def test_sorry_warnings_of_other_header_declarations_can_be_ignored() -> None:
    # LeanDojo-style header: a whole source file whose earlier theorems are `sorry`.
    header = "import Mathlib\n\ntheorem other : 1 = 2 := by sorry\n\n"
    theorem = Theorem(name="t", header=header, formal_statement=STATEMENT)
    text = build_check_file(theorem, "by exact h.symm")
    other = LeanMessage(Severity.WARNING, "declaration uses 'sorry'", line=3)
    clean = _info("'t' depends on axioms: [propext]", line=8)
    assert not judge(theorem, text, [other, clean]).ok
    assert judge(theorem, text, [other, clean], header_lines=header.count("\n")).ok
    uses_other = _info("'t' depends on axioms: [propext, sorryAx]", line=8)
    assert judge(theorem, text, [other, uses_other], header_lines=4).status is VerifyStatus.SORRY
    own = LeanMessage(Severity.WARNING, "declaration uses 'sorry'", line=5)
    assert judge(theorem, text, [other, own, clean], header_lines=4).status is VerifyStatus.SORRY


def test_errors_in_the_header_still_reject() -> None:
    text = build_check_file(THEOREM, "by exact h.symm")
    error = LeanMessage(Severity.ERROR, "unknown package 'Mathlib'", line=1)
    verdict = judge(THEOREM, text, [error, _info("'t' does not depend on any axioms")], header_lines=6)
    assert verdict.status is VerifyStatus.LEAN_ERROR


def test_precheck_refuses_before_lean_and_keeps_the_text() -> None:
    verdict = precheck(THEOREM, "by\n  sorry")
    assert verdict is not None and verdict.status is VerifyStatus.GUARD_REJECTED
    assert "sorry" in verdict.reason
    assert verdict.checked_text == LEAN.proof_file(THEOREM, "by\n  sorry")
    assert precheck(THEOREM, "by exact h.symm") is None


def test_declaration_name_comes_from_the_statement() -> None:
    theorem = Theorem(name="label", header="", formal_statement="theorem mathd_algebra_478' (b : ℝ) : b = b := by")
    assert declaration_name(theorem) == "mathd_algebra_478'"
    universes = Theorem(name="label", header="", formal_statement="theorem t.{u} (α : Sort u) : α = α := by")
    assert declaration_name(universes) == "t"
    assert build_check_file(universes, "by rfl").endswith("#print axioms t\n")
    documented = Theorem(name="d", header="", formal_statement="/-- doc -/\ntheorem d : True := by")
    assert declaration_name(documented) == "d"
    with pytest.raises(ValueError, match="does not start with `theorem <name>`"):
        declaration_name(Theorem(name="e", header="", formal_statement="example : True := by"))

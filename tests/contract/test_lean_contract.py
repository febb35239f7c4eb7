"""The `LeanEnv` contract, run against every real backend (REPL pool, LeanDojo) on tests/lean_project.

Run with `pytest -m lean`; each test skips with the reason when `lake`, the REPL or LeanDojo is absent.
Nothing here asserts backend ids or Lean's internal goal names, only what the search relies on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from lean_env.types import InvalidStatement, Problem, Progress, ProofClosed, TacticError, TacticErrorKind, VerifyStatus
from tests.contract.conftest import Backend

pytestmark = pytest.mark.lean

BASIC = "TinyProject/Basic.lean"
CHEATS = "TinyProject/Cheats.lean"
T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float = 600) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


async def test_initial_state_shows_the_goal(backend: Backend) -> None:
    session = await within(backend.env.start(backend.theorem(BASIC, "add_zero_nat")))
    try:
        assert "⊢" in session.initial_state.pp
        assert "n + 0 = n" in session.initial_state.pp
        assert session.initial_state.num_goals == 1
    finally:
        await session.close()


async def test_a_closing_tactic_closes_the_proof(backend: Backend) -> None:
    session = await within(backend.env.start(backend.theorem(BASIC, "add_comm_nat")))
    try:
        outcome = await within(session.run_tactic(session.initial_state, "omega", 30))
        assert isinstance(outcome, ProofClosed)
    finally:
        await session.close()


async def test_a_failing_tactic_is_a_lean_error(backend: Backend) -> None:
    session = await within(backend.env.start(backend.theorem(BASIC, "add_comm_nat")))
    try:
        outcome = await within(session.run_tactic(session.initial_state, "exact Nat.le_refl 0", 30))
        assert isinstance(outcome, TacticError) and outcome.kind is TacticErrorKind.LEAN_ERROR
        assert outcome.message
    finally:
        await session.close()


async def test_progress_through_several_goals(backend: Backend) -> None:
    session = await within(backend.env.start(backend.theorem(BASIC, "and_swap_tiny")))
    try:
        split = await within(session.run_tactic(session.initial_state, "constructor", 30))
        assert isinstance(split, Progress) and split.state.num_goals == 2
        first = await within(session.run_tactic(split.state, "exact hq", 30))
        assert isinstance(first, Progress) and first.state.num_goals == 1
        last = await within(session.run_tactic(first.state, "exact hp", 30))
        assert isinstance(last, ProofClosed)
    finally:
        await session.close()


async def test_a_tactic_that_changes_nothing_returns_an_equal_state(backend: Backend) -> None:
    session = await within(backend.env.start(backend.theorem(BASIC, "lt_succ_tiny")))
    try:
        outcome = await within(session.run_tactic(session.initial_state, "skip", 30))
        assert isinstance(outcome, Progress)
        assert outcome.state == session.initial_state
        assert hash(outcome.state) == hash(session.initial_state)
    finally:
        await session.close()


async def test_sorry_never_closes_a_goal(backend: Backend) -> None:
    session = await within(backend.env.start(backend.theorem(BASIC, "two_add_two")))
    try:
        outcome = await within(session.run_tactic(session.initial_state, "sorry", 30))
        assert isinstance(outcome, TacticError)
        assert outcome.kind in (TacticErrorKind.UNSAFE, TacticErrorKind.USED_SORRY)
    finally:
        await session.close()


async def test_after_a_tactic_timeout_the_session_still_works(backend: Backend) -> None:
    session = await within(backend.env.start(backend.theorem(BASIC, "and_swap_tiny")))
    try:
        split = await within(session.run_tactic(session.initial_state, "constructor", 30))
        assert isinstance(split, Progress)
        slow = await within(session.run_tactic(split.state, "sleep 60000", 3))
        assert isinstance(slow, TacticError) and slow.kind is TacticErrorKind.TIMEOUT
        # A state reached before the timeout is still usable (a fresh process replays its path if needed).
        after = await within(session.run_tactic(split.state, "exact hq", 30))
        assert isinstance(after, Progress) and after.state.num_goals == 1
    finally:
        await session.close()


async def test_verify_accepts_a_genuine_proof(backend: Backend) -> None:
    theorem = backend.theorem(BASIC, "add_comm_nat")
    verdict = await within(backend.env.verify(theorem, "by\n  -- no sorry here\n  omega", 120))
    assert verdict.ok, verdict.reason
    assert set(verdict.axioms) <= {"propext", "Classical.choice", "Quot.sound"}


async def test_verify_rejects_a_wrong_proof(backend: Backend) -> None:
    verdict = await within(backend.env.verify(backend.theorem(BASIC, "add_comm_nat"), "by rfl", 120))
    assert verdict.status is VerifyStatus.LEAN_ERROR


@pytest.mark.parametrize("proof", ["by sorry", "by native_decide", "by simp\n\n#exit", "by decide\n\naxiom x : False"])
async def test_verify_refuses_guarded_text_before_lean(backend: Backend, proof: str) -> None:
    verdict = await within(backend.env.verify(backend.theorem(BASIC, "two_add_two"), proof, 120))
    assert verdict.status is VerifyStatus.GUARD_REJECTED


async def test_verify_rejects_an_axiom_reached_through_the_environment(backend: Backend) -> None:
    verdict = await within(backend.env.verify(backend.theorem(CHEATS, "one_eq_two"), "by exact tiny_axiom", 120))
    assert verdict.status is VerifyStatus.NONSTANDARD_AXIOMS
    assert "tiny_axiom" in verdict.reason


async def test_verify_rejects_a_sorry_reached_through_the_environment(backend: Backend) -> None:
    verdict = await within(backend.env.verify(backend.theorem(CHEATS, "two_eq_three"), "by exact tiny_sorried", 120))
    assert verdict.status is VerifyStatus.SORRY


# --- checking texts, holes, invalid statements ---------------------------------------------------------

SKETCH = (
    "theorem sketch (p q r : Prop) (hp : p) (hq : q) (hr : r) : p ∧ q ∧ r := by\n"
    "  refine ⟨?_, ?_, ?_⟩\n"
    "  · sorry\n"
    "  · sorry\n"
    "  · sorry\n"
)


async def test_check_reports_every_hole_with_its_goal_and_place(backend: Backend) -> None:
    result = await within(backend.env.check(SKETCH, 300))
    assert result.ok, result.errors
    assert len(result.holes) == 3
    lines = SKETCH.split("\n")
    for index, hole in enumerate(result.holes):
        assert hole.index == index
        assert hole.start.line == 3 + index
        assert lines[hole.start.line - 1][hole.start.column : hole.end.column] == "sorry"
    if backend.name == "repl":  # LeanDojo's command line prints no goals for a sorry
        assert [hole.goal.rsplit("⊢", 1)[-1].strip() for hole in result.holes] == ["p", "q", "r"]


async def test_check_reports_errors(backend: Backend) -> None:
    result = await within(backend.env.check("theorem broken : 1 = 2 := by\n  rfl\n", 300))
    assert not result.ok and result.errors[0].line >= 1


async def test_a_session_on_the_second_hole_closes_its_goal(backend: Backend) -> None:
    if backend.name != "repl":
        pytest.skip("LeanDojo cannot open a session on a hole (HoleUnavailable)")
    result = await within(backend.env.check(SKETCH, 300))
    problem = Problem(name="sketch", header="", formal_statement=SKETCH.split("\n", 1)[0])
    session = await within(backend.env.start(problem, hole=result.holes[1]))
    assert not isinstance(session, InvalidStatement), session.message if isinstance(session, InvalidStatement) else ""
    try:
        assert "⊢ q" in session.initial_state.pp
        assert isinstance(await within(session.run_tactic(session.initial_state, "exact hq", 30)), ProofClosed)
    finally:
        await session.close()


async def test_a_statement_that_does_not_elaborate_is_invalid_with_leans_message(backend: Backend) -> None:
    if backend.name != "repl":
        pytest.skip("the dojo backend opens only theorems of its traced repository")
    problem = Problem(name="bad", header="", formal_statement="theorem bad (n : Nat) : n = undefined_thing := by")
    invalid = await within(backend.env.start(problem))
    assert isinstance(invalid, InvalidStatement) and invalid.problem_name == "bad"
    assert "undefined_thing" in invalid.message

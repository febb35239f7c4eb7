"""`ReplLeanEnv.check` and sessions on holes, over the scripted REPL stand-in.

A text with several `sorry`s gives one hole per `sorry` with its goal and its span in the whole
text (header included); a session opened on any hole runs tactics from that goal, and survives
its worker being killed, since its opening (the text and the hole's number) replays anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_env.errors import HoleUnavailable
from lean_env.lean_syntax import LEAN
from lean_env.repl import ReplLeanEnv, ReplSession
from lean_env.types import (
    Hole,
    InvalidStatement,
    Position,
    Problem,
    Progress,
    ProofClosed,
    ProofState,
    Severity,
    TacticError,
)
from tests.stand_ins.fake_repl import ScriptTheorem, stand_in_config, write_script

IMPORTS = "import Mathlib\nimport Aesop\n\n"
CONTEXT = "a b c : Prop\nha : a\nhb : b\nhc : c\n"
ROOT, GOAL_A, GOAL_B, GOAL_C = (CONTEXT + "⊢ " + goal for goal in ("a ∧ b ∧ c", "a", "b", "c"))
GOAL_B2 = CONTEXT + "hb' : b\n⊢ b"
STATEMENT = "theorem three (a b c : Prop) (ha : a) (hb : b) (hc : c) : a ∧ b ∧ c := by"
THREE = ScriptTheorem(
    statement=STATEMENT,
    goal=ROOT,
    states={
        ROOT: {"refine ⟨?_, ?_, ?_⟩": {"goals": [GOAL_A, GOAL_B, GOAL_C]}},
        GOAL_A: {"exact ha": {"goals": []}},
        GOAL_B: {"have hb' := hb": GOAL_B2, "exact hb": {"goals": []}, "exact ha": {"error": "type mismatch"}},
        GOAL_B2: {"exact hb'": {"goals": []}},
        GOAL_C: {"exact hc": {"goals": []}},
    },
)
SKETCH = (
    "open Nat\n\n"  # an `open` line: part of the header that workers are keyed by
    f"{STATEMENT}\n"
    "  refine ⟨?_, ?_, ?_⟩\n"
    "  · sorry\n"
    "  · sorry\n"
    "  · exact hc\n\n"
    "theorem other : 1 = 1 := sorry\n"
)
TEXT = IMPORTS + SKETCH
OTHER = ScriptTheorem(
    statement="theorem other : 1 = 1 := by", goal="⊢ 1 = 1", states={"⊢ 1 = 1": {"rfl": {"goals": []}}}
)
PROBLEM = Problem(name="three", header=IMPORTS, formal_statement=STATEMENT)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "script.json", [THREE, OTHER])


def make_env(script: Path, flags: tuple[str, ...] = (), **fields: object) -> ReplLeanEnv:
    fields.setdefault("workers", 1)
    return ReplLeanEnv(stand_in_config(script=script, flags=flags, **fields))


def line_of(text: str, needle: str, occurrence: int = 0) -> int:
    return [number for number, line in enumerate(text.split("\n"), 1) if needle in line][occurrence]


async def test_check_reports_every_sorry_with_its_goal_and_place_in_the_whole_text(script: Path) -> None:
    env = make_env(script)
    try:
        result = await env.check(TEXT, 10)
        assert result.ok, result.errors
        assert [hole.index for hole in result.holes] == [0, 1, 2]
        assert [hole.goal for hole in result.holes] == [GOAL_A, GOAL_B, "⊢ 1 = 1"]
        # Positions count the header's lines: they point at the `sorry`s of TEXT itself.
        first, second, third = result.holes
        assert first.start == Position(line_of(TEXT, "· sorry", 0), 4) and first.end == Position(first.start.line, 9)
        assert second.start == Position(line_of(TEXT, "· sorry", 1), 4)
        assert third.start == Position(line_of(TEXT, "theorem other"), len("theorem other : 1 = 1 := "))
        lines = TEXT.split("\n")
        for hole in result.holes:
            assert lines[hole.start.line - 1][hole.start.column : hole.end.column] == "sorry"
        assert all(hole.state == ProofState.from_goals([hole.goal]) for hole in result.holes)
        warnings = [m for m in result.messages if m.severity is Severity.WARNING]
        assert [m.line for m in warnings] == [line_of(TEXT, "theorem three"), line_of(TEXT, "theorem other")]
        # The workers are keyed by the header (the import and `open` lines); a second check reuses the worker.
        assert [w.header for w in env.pool.workers] == [IMPORTS + "open Nat\n\n"]
        again = await env.check(TEXT, 10, header=IMPORTS + "open Nat\n\n")
        assert [hole.goal for hole in again.holes] == [GOAL_A, GOAL_B, "⊢ 1 = 1"]
        assert len(env.pool.workers) == 1
    finally:
        await env.close()


async def test_check_reports_errors_as_messages_at_their_place(script: Path) -> None:
    env = make_env(script)
    try:
        broken = TEXT.replace("· exact hc", "· exact hb")
        result = await env.check(broken, 10)
        assert not result.ok
        assert result.errors[0].line == line_of(broken, "· exact hb")
        assert len(result.holes) == 3, "holes before and after an error are still reported"
    finally:
        await env.close()


async def test_a_session_on_the_second_hole_closes_that_goal(script: Path) -> None:
    env = make_env(script)
    try:
        result = await env.check(TEXT, 10)
        session = await env.start(PROBLEM, hole=result.holes[1])
        assert isinstance(session, ReplSession)
        assert session.initial_state == ProofState.from_goals([GOAL_B])
        wrong = await session.run_tactic(session.initial_state, "exact ha", 5)
        assert isinstance(wrong, TacticError) and "type mismatch" in wrong.message
        step = await session.run_tactic(session.initial_state, "have hb' := hb", 5)
        assert step == Progress(ProofState.from_goals([GOAL_B2]))
        assert isinstance(step, Progress)
        assert await session.run_tactic(step.state, "exact hb'", 5) == ProofClosed()
        # The proof found for the hole, spliced back in, closes it: one hole fewer.
        filled = LEAN.splice(TEXT, [result.holes[1]], [["have hb' := hb", "exact hb'"]])
        assert "  · have hb' := hb\n    exact hb'\n" in filled
        after = await env.check(filled, 10)
        assert after.ok, after.errors
        assert [hole.goal for hole in after.holes] == [GOAL_A, "⊢ 1 = 1"]
        await session.close()
    finally:
        await env.close()


async def test_a_hole_session_survives_its_worker_being_killed(script: Path) -> None:
    env = make_env(script, workers=2)
    try:
        result = await env.check(TEXT, 10)
        session = await env.start(PROBLEM, hole=result.holes[1])
        assert isinstance(session, ReplSession)
        step = await session.run_tactic(session.initial_state, "have hb' := hb", 5)
        assert isinstance(step, Progress)
        home = session.home
        assert home is not None
        await home.kill("crash")
        # The next tactic replays the opening (the checked text, sorry number 1) and the path elsewhere.
        assert await session.run_tactic(step.state, "exact hb'", 5) == ProofClosed()
        assert session.home is not None and session.home is not home
        assert await session.run_tactic(session.initial_state, "exact hb", 5) == ProofClosed()
    finally:
        await env.close()


async def test_a_hole_session_replays_after_recycling(script: Path) -> None:
    env = make_env(script, max_requests_per_worker=3)
    try:
        result = await env.check(TEXT, 10)
        session = await env.start(PROBLEM, hole=result.holes[0])
        assert isinstance(session, ReplSession)
        for _ in range(3):
            assert await session.run_tactic(session.initial_state, "exact ha", 5) == ProofClosed()
        assert env.stats().recycled >= 1
    finally:
        await env.close()


async def test_a_hole_from_elsewhere_cannot_open_a_session(script: Path) -> None:
    env = make_env(script)
    try:
        foreign = Hole(0, GOAL_A, ProofState.from_goals([GOAL_A]), Position(1, 0), Position(1, 5))
        with pytest.raises(HoleUnavailable):
            await env.start(PROBLEM, hole=foreign)
    finally:
        await env.close()


async def test_an_ill_formed_statement_is_invalid_with_leans_message(script: Path) -> None:
    env = make_env(script)
    try:
        changed = Problem(name="three", header=IMPORTS, formal_statement=STATEMENT.replace("a ∧ b ∧ c", "a ∧ c"))
        invalid = await env.start(changed)
        assert isinstance(invalid, InvalidStatement)
        assert invalid.problem_name == "three"
        assert "the statement differs from the script" in invalid.message  # the stand-in's Lean message
        assert isinstance(await env.start(PROBLEM), ReplSession)
    finally:
        await env.close()


async def test_check_timeout_is_a_message_and_the_worker_is_replaced(script: Path) -> None:
    env = make_env(script, ("--hang-on", "exact hc"))
    try:
        result = await env.check(TEXT, 0.5)
        assert not result.ok and "within 0.5 s" in result.errors[0].text
        assert env.stats().timeouts == 1
        assert len((await env.check(TEXT.replace("exact hc", "sorry"), 10)).holes) == 4
    finally:
        await env.close()


async def test_check_refuses_commands_in_the_text_but_allows_its_holes(script: Path) -> None:
    """`check` runs text a model or a user wrote: the guard (holes allowed) applies before any worker starts."""
    env = make_env(script)
    try:
        hostile = await env.check(IMPORTS + '#eval IO.println "hi"\n' + SKETCH, 10)
        assert not hostile.ok and "#eval" in hostile.errors[0].text and not hostile.holes
        bad_header = await env.check("import Mathlib\naxiom cheat : False\n" + SKETCH, 10)
        assert not bad_header.ok and "refused before Lean" in bad_header.errors[0].text
        assert env.pool.stats().starts == 0
        fine = await env.check(TEXT, 10)
        assert len(fine.holes) == 3
    finally:
        await env.close()

"""`LeanSketchBackend` end to end over the REPL stand-in: holes, automation, search, splice, verify."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from lean_env.repl import ReplLeanEnv
from lean_env.types import Problem
from prover.informal.lean_backend import LeanSketchBackend
from prover.informal.pipeline import InformalConfig, formalize
from prover.informal.types import GapMethod, SketchRejected
from prover.models.text import Completion, FinishReason, TextRequest
from search.types import SearchConfig
from tests.stand_ins.fake_repl import ScriptTheorem, stand_in_config, write_script
from tests.stand_ins.scripted import ScriptedGenerator

IMPORTS = "import Mathlib\nimport Aesop\n\n"
CONTEXT = "a b : Prop\nha : a\nhb : b\n"
ROOT, GOAL_A, GOAL_B = (CONTEXT + "⊢ " + goal for goal in ("a ∧ b", "a", "b"))
GOAL_B2 = CONTEXT + "hb' : b\n⊢ b"
STATEMENT = "theorem two (a b : Prop) (ha : a) (hb : b) : a ∧ b := by"
TWO = ScriptTheorem(
    statement=STATEMENT,
    goal=ROOT,
    states={
        ROOT: {"refine ⟨?_, ?_⟩": {"goals": [GOAL_A, GOAL_B]}},
        # The battery closes `a` (as `omega` would close an arithmetic goal); nothing in it closes `b`.
        GOAL_A: {"omega": {"goals": []}, "exact ha": {"goals": []}},
        GOAL_B: {"have hb' := hb": GOAL_B2, "exact hb": {"goals": []}},
        GOAL_B2: {"exact hb'": {"goals": []}},
    },
)
SKETCH = "\n  refine ⟨?_, ?_⟩\n  · sorry\n  · sorry"
PROBLEM = Problem(
    name="two",
    header=IMPORTS,
    formal_statement=STATEMENT,
    informal_statement="Show a and b.",
    informal_proof="Both hold.",
)
# The search is offered a first tactic that leads to a second state; only the pair closes `b`.
TABLE = {GOAL_B: [("have hb' := hb", -0.1, 1)], GOAL_B2: [("exact hb'", -0.1, 1)]}
CONFIG = InformalConfig(automation=("omega", "linarith", "positivity"), hole_search_expansions=8)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "script.json", [TWO])


class OneSketch:
    """A text generator whose every completion is the sketch."""

    def __init__(self, sketch: str) -> None:
        self.sketch = sketch
        self.prompts: list[str] = []

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        self.prompts.extend(r.prompt for r in requests)
        return [[Completion(self.sketch, (-0.1,), FinishReason.STOP)] for _ in requests]

    async def close(self) -> None:
        return None


async def test_two_holes_one_by_automation_one_by_search_spliced_and_verified(script: Path) -> None:
    env = ReplLeanEnv(stand_in_config(script=script, workers=2))
    generator = ScriptedGenerator(TABLE)
    backend = LeanSketchBackend(env, generator, SearchConfig(num_samples=4, wall_clock_s=30), CONFIG)
    try:
        gaps = await backend.gaps(PROBLEM, SKETCH)
        assert [gap.goal for gap in gaps] == [GOAL_A, GOAL_B]
        text = backend.full_text(PROBLEM, SKETCH)
        assert all(text[gap.start : gap.end] == "sorry" for gap in gaps)

        first, second = [await backend.close_gap(PROBLEM, SKETCH, gap) for gap in gaps]
        assert (first.method, first.closing) == (GapMethod.AUTOMATION, "omega")
        assert (second.method, second.closing) == (GapMethod.SEARCH, "have hb' := hb\nexact hb'")
        assert generator.calls >= 1

        assembled = backend.assemble(PROBLEM, SKETCH, gaps, (first, second))
        assert "  · omega\n  · have hb' := hb\n    exact hb'\n" in assembled and "sorry" not in assembled
        verdict = await backend.final_check(PROBLEM, assembled)
        assert verdict.ok, verdict.reason
    finally:
        await env.close()


async def test_the_pipeline_proves_the_problem_through_the_backend(script: Path) -> None:
    env = ReplLeanEnv(stand_in_config(script=script, workers=2))
    backend = LeanSketchBackend(env, ScriptedGenerator(TABLE), SearchConfig(num_samples=4, wall_clock_s=30), CONFIG)
    text = OneSketch(SKETCH)
    try:
        result = await formalize(PROBLEM, text, backend, CONFIG)
        assert result.proved, result.attempts
        (attempt,) = result.attempts
        assert [g.method for g in attempt.gaps] == [GapMethod.AUTOMATION, GapMethod.SEARCH]
        assert attempt.verdict is not None and attempt.verdict.ok
        assert text.prompts[0].endswith("Formal:\n" + STATEMENT)
    finally:
        await env.close()


async def test_a_sketch_with_lean_errors_has_no_usable_gaps(script: Path) -> None:
    env = ReplLeanEnv(stand_in_config(script=script, workers=1))
    backend = LeanSketchBackend(env, ScriptedGenerator({}), SearchConfig(), CONFIG)
    try:
        with pytest.raises(SketchRejected, match="Lean reports errors"):
            await backend.gaps(PROBLEM, "\n  exact bogus\n  · sorry")
    finally:
        await env.close()


async def test_a_hole_nothing_closes_stays_open(script: Path) -> None:
    env = ReplLeanEnv(stand_in_config(script=script, workers=1))
    backend = LeanSketchBackend(env, ScriptedGenerator({}), SearchConfig(num_samples=2, wall_clock_s=10), CONFIG)
    try:
        gaps = await backend.gaps(PROBLEM, SKETCH)
        outcome = await backend.close_gap(PROBLEM, SKETCH, gaps[1])
        assert outcome.method is GapMethod.OPEN and outcome.closing is None
        assert outcome.tried[: len(CONFIG.automation)] == CONFIG.automation
    finally:
        await env.close()

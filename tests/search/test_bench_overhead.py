"""Smoke test of bench/search_overhead.py: it runs both searches and prints its figures line."""

from __future__ import annotations

import re

import pytest

from bench.reference_loop import reference_search
from bench.search_overhead import THEOREM, SyntheticEnv, SyntheticGenerator, main
from lean_env.types import ProofClosed, TacticError, TacticErrorKind
from search import BestFirstSearch, SearchConfig, SearchStatus
from tests.stand_ins.scripted import (
    Crash,
    Script,
    ScriptedEnv,
    ScriptedGenerator,
    Unsound,
    make_theorem,
    uniform_candidates,
)


def test_bench_prints_the_figures_line(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--expansions", "60", "--repeat", "1", "--memory-expansions", "30"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"search_overhead_us_per_expansion=[\d.]+ reference_us_per_expansion=[\d.]+", lines[-2])
    verdict = re.fullmatch(
        r"search_overhead: ours=([\d.]+) us reference=([\d.]+) us ratio=[\d.]+ ours<=reference: (yes|no)", lines[-1]
    )
    assert verdict is not None
    assert (verdict[3] == "yes") == (float(verdict[1]) <= float(verdict[2]))
    assert any(line.startswith("reference loop (Llemma)") for line in lines)


async def test_both_searches_spend_the_budget_on_the_synthetic_tree() -> None:
    env = SyntheticEnv(32)
    config = SearchConfig(max_expansions=40, num_samples=32, debug_invariants=True)
    result = await BestFirstSearch(THEOREM, env, SyntheticGenerator(env), config).run()
    assert result.status is SearchStatus.BUDGET_EXHAUSTED and result.stats.tactics_tried == 40 * 32
    reference_env = SyntheticEnv(32)
    proved, tactics, expansions = await reference_search(
        THEOREM, reference_env, SyntheticGenerator(reference_env), 40, 32, 60.0, 5.0
    )
    assert (proved, tactics, expansions) == (False, [], 40)
    assert reference_env.tactics == env.tactics


async def test_reference_loop_finds_the_first_proof_without_verifying_it() -> None:
    script: Script = {"root": {"fake": Unsound(), "a": "A"}, "A": {"b": ProofClosed()}}
    table = {"root": [("fake", -0.1, 1), ("a", -1.0, 1)], "A": [("b", -1.0, 1)]}
    env = ScriptedEnv(script)
    # The reference has no whole-file re-check: the unsound tactic counts as its proof.
    assert await reference_search(make_theorem(), env, ScriptedGenerator(table), 10, 8, 60.0, 1.0) == (
        True,
        ["fake"],
        1,
    )
    assert env.counters.verifies == 0 and env.counters.closes == 1


async def test_reference_loop_expands_transpositions_again_and_survives_backend_failures() -> None:
    failing = TacticError(TacticErrorKind.LEAN_ERROR, "no")
    script: Script = {"root": {"a": "X", "b": "Y"}, "X": {"c": "Z"}, "Y": {"d": "Z"}, "Z": {"e": failing}}
    env = ScriptedEnv(script)
    proved, _, expansions = await reference_search(
        make_theorem(), env, ScriptedGenerator(uniform_candidates(script)), 10, 8, 60.0, 1.0
    )
    assert not proved and expansions == 5  # Z was pushed twice before it was popped: no node table
    crashing = ScriptedEnv({"root": {"boom": Crash()}})
    generator = ScriptedGenerator({"root": [("boom", -1.0, 1)]})
    assert await reference_search(make_theorem(), crashing, generator, 10, 8, 60.0, 1.0) == (False, [], 1)
    refusing = ScriptedEnv({}, start_error="bad header")
    assert await reference_search(make_theorem(), refusing, generator, 10, 8, 60.0, 1.0) == (False, [], 0)
    invalid = ScriptedEnv({"root": {"boom": Crash()}}, invalid={"t": "unknown identifier 'x'"})
    assert await reference_search(make_theorem(), invalid, generator, 10, 8, 60.0, 1.0) == (False, [], 0)
    assert invalid.counters.tactics == 0

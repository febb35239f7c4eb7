"""The concurrent runner over scripted Lean and model stand-ins."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from lean_env.types import Theorem
from prover.config import SearchSettings
from prover.evaluation.results import EvalRecord, ResultsWriter, read_records
from prover.evaluation.runner import EvalAborted, run_evaluation
from search.types import SearchConfig
from tests.evaluation.worlds import HEADER, NAMES, build_scripts, problems, scripted_env, scripted_generator, world
from tests.stand_ins.scripted import ScriptedEnv, ScriptedSession

CONFIG = SearchConfig(max_expansions=10, num_samples=4, wall_clock_s=30.0)


class Watcher:
    """An observer that checks the record is on disk before it is announced, and tracks searches in flight."""

    def __init__(self, results: Path | None = None) -> None:
        self.results = results
        self.in_flight = 0
        self.max_in_flight = 0
        self.done: list[str] = []
        self.started: list[str] = []
        self.total: tuple[int, int] | None = None

    def on_start(self, total: int, skipped: int) -> None:
        self.total = (total, skipped)

    def on_theorem_start(self, name: str) -> None:
        self.started.append(name)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def on_theorem_done(self, record: EvalRecord) -> None:
        self.in_flight -= 1
        self.done.append(record.name)
        if self.results is not None:
            assert record.name in {r.name for r in read_records(self.results)}, "written before announced"


async def test_many_searches_in_flight_over_one_env_and_generator(tmp_path: Path) -> None:
    env, generator = world(NAMES[:6], generator_latency=0.1)
    results = tmp_path / "results.jsonl"
    watcher = Watcher(results)
    started = time.perf_counter()
    with ResultsWriter(results) as writer:
        outcome = await run_evaluation(
            problems(NAMES), env, generator, CONFIG, concurrency=5, writer=writer, observer=watcher
        )
    elapsed = time.perf_counter() - started
    assert watcher.max_in_flight == 5
    # Sequentially: 6 provable x 2 expansions + 4 failing x 1 = 16 generator calls of 0.1 s each.
    assert elapsed < 0.9, f"concurrent run took {elapsed:.2f} s; 16 sequential generator calls take 1.6 s"
    assert outcome.proved == 6 and len(outcome.records) == len(NAMES)
    assert watcher.total == (len(NAMES), 0)
    by_name = {record.name: record for record in read_records(results)}
    assert set(by_name) == set(NAMES)
    proved = by_name["mathd_algebra_10"]
    assert proved.status == "proved" and proved.verified and proved.tactics == ["simp", "linarith"]
    assert proved.split == "test" and proved.category == "mathd_algebra"
    assert (
        proved.lean_file
        == HEADER + "theorem mathd_algebra_10 (n : ℕ) (h₀ : n = 1) : n + 0 = 1 := by\n  simp\n  linarith\n"
    )
    assert proved.stats["expansions"] == 2 and proved.finished_at >= proved.started_at  # type: ignore[operator]
    failed = by_name["mathd_numbertheory_5"]
    assert failed.status == "failed" and failed.proof is None and failed.failure_reason
    assert failed.category == "mathd_numbertheory" and failed.lean_file is None
    assert env.counters.starts == env.counters.closes == len(NAMES)


async def test_a_raising_theorem_is_recorded_as_env_error_and_the_run_goes_on() -> None:
    scripts = build_scripts(NAMES[:2], NAMES[:4], crash=[NAMES[1]])

    class Broken(ScriptedEnv):
        async def start(self, theorem: Theorem) -> ScriptedSession:
            if theorem.name == NAMES[2]:
                raise RuntimeError("adapter bug")
            return await super().start(theorem)

    broken = scripted_env(scripts, cls=Broken)
    generator = scripted_generator(scripts)
    outcome = await run_evaluation(problems(NAMES[:4]), broken, generator, SearchSettings(expansions=5, samples=4))
    by_name = {record.name: record for record in outcome.records}
    assert by_name[NAMES[0]].proved
    assert by_name[NAMES[1]].status == "env_error" and "REPL died" in (by_name[NAMES[1]].failure_reason or "")
    assert by_name[NAMES[2]].status == "env_error"
    assert "unexpected error: RuntimeError: adapter bug" in (by_name[NAMES[2]].failure_reason or "")
    assert by_name[NAMES[3]].status == "failed"


async def test_consecutive_env_errors_abort_and_keep_what_was_written(tmp_path: Path) -> None:
    env = ScriptedEnv({}, start_error="lake: unknown package 'Mathlib'")
    _, generator = world([])
    results = tmp_path / "results.jsonl"
    with ResultsWriter(results) as writer, pytest.raises(EvalAborted, match="3 theorems in a row") as aborted:
        await run_evaluation(
            problems(NAMES), env, generator, CONFIG, concurrency=1, writer=writer, max_consecutive_env_errors=3
        )
    assert len(aborted.value.records) == 3
    assert [r.name for r in read_records(results)] == list(NAMES[:3])
    assert "unknown package" in (read_records(results)[0].failure_reason or "")


async def test_skip_and_duplicates_are_by_name() -> None:
    env, generator = world(NAMES)
    watcher = Watcher()
    items = [*problems(NAMES[:4]), *problems(NAMES[:2])]
    outcome = await run_evaluation(items, env, generator, CONFIG, skip={NAMES[1]}, observer=watcher)
    assert sorted(r.name for r in outcome.records) == sorted([NAMES[0], NAMES[2], NAMES[3]])
    assert outcome.skipped == (NAMES[1],)
    assert watcher.total == (3, 1)


async def test_cancelling_the_run_records_only_finished_theorems_and_closes_sessions(tmp_path: Path) -> None:
    env, generator = world(NAMES, generator_latency=0.2)
    results = tmp_path / "results.jsonl"
    with ResultsWriter(results) as writer:
        task = asyncio.create_task(
            run_evaluation(problems(NAMES), env, generator, CONFIG, concurrency=2, writer=writer)
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    recorded = [record.name for record in read_records(results)]
    assert 0 < len(recorded) < len(NAMES)
    assert len(set(recorded)) == len(recorded)
    assert env.counters.starts == env.counters.closes

"""The evaluation runner over scripted Lean and model stand-ins, and its core over scripted attempts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from lean_env.types import Hole, InvalidStatement, Language, Problem
from prover.config import SearchSettings
from prover.evaluation.events import (
    EvaluationFinished,
    EvaluationStarted,
    ProblemFinished,
    ProblemStarted,
)
from prover.evaluation.results import EvalRecord, ResultsWriter, read_records
from prover.evaluation.runner import EvalAborted, env_error_record, run_evaluation, run_problems
from prover.evaluation.session import is_retryable
from search.events import EventHub, SearchFinished, SearchStarted
from search.types import SearchConfig
from tests.evaluation.worlds import HEADER, NAMES, build_scripts, problems, scripted_env, scripted_generator, world
from tests.stand_ins.scripted import ScriptedEnv, ScriptedSession

CONFIG = SearchConfig(max_expansions=10, num_samples=4, wall_clock_s=30.0)


class Watcher:
    """A listener that checks each record is on disk before it is announced, and tracks problems in flight."""

    def __init__(self, results: Path | None = None) -> None:
        self.results = results
        self.in_flight = 0
        self.max_in_flight = 0
        self.done: list[str] = []
        self.started: list[str] = []
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)
        if isinstance(event, ProblemStarted):
            self.started.append(event.name)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        elif isinstance(event, ProblemFinished):
            self.in_flight -= 1
            self.done.append(event.record.name)
            if self.results is not None:
                assert event.record.name in {r.name for r in read_records(self.results)}, "written before announced"

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [event for event in self.events if isinstance(event, kind)]


async def test_many_searches_in_flight_over_one_env_and_generator(tmp_path: Path) -> None:
    env, generator = world(NAMES[:6], generator_latency=0.1)
    results = tmp_path / "results.jsonl"
    watcher = Watcher(results)
    hub = EventHub()
    hub.subscribe(watcher)
    started = time.perf_counter()
    with ResultsWriter(results) as writer:
        outcome = await run_evaluation(
            problems(NAMES), env, generator, CONFIG, concurrency=5, writer=writer, events=hub
        )
    elapsed = time.perf_counter() - started
    assert watcher.max_in_flight == 5
    # Sequentially: 6 provable x 2 expansions + 4 failing x 1 = 16 generator calls of 0.1 s each.
    assert elapsed < 0.9, f"concurrent run took {elapsed:.2f} s; 16 sequential generator calls take 1.6 s"
    assert outcome.proved == 6 and len(outcome.records) == len(NAMES)
    assert watcher.of(EvaluationStarted) == [EvaluationStarted(len(NAMES), 0, str(results))]
    assert isinstance(watcher.events[0], EvaluationStarted) and isinstance(watcher.events[-1], EvaluationFinished)
    finished = watcher.of(EvaluationFinished)[0]
    assert (finished.attempted, finished.proved, finished.stopped) == (len(NAMES), 6, None)
    by_name = {record.name: record for record in read_records(results)}
    assert set(by_name) == set(NAMES)
    proved = by_name["mathd_algebra_10"]
    assert proved.status == "proved" and proved.verified and proved.tactics == ["simp", "linarith"]
    assert proved.split == "test" and proved.category == "mathd_algebra"
    assert proved.language == "lean4" and proved.statement_hash == problems(["mathd_algebra_10"])[0].statement_hash
    assert (
        proved.lean_file
        == HEADER + "theorem mathd_algebra_10 (n : ℕ) (h₀ : n = 1) : n + 0 = 1 := by\n  simp\n  linarith\n"
    )
    assert proved.stats["expansions"] == 2 and proved.finished_at >= proved.started_at  # type: ignore[operator]
    failed = by_name["mathd_numbertheory_5"]
    assert failed.status == "failed" and failed.proof is None and failed.failure_reason
    assert failed.category == "mathd_numbertheory" and failed.lean_file is None
    assert env.counters.starts == env.counters.closes == len(NAMES)


async def test_search_events_are_forwarded_between_the_problem_s_start_and_finish() -> None:

    env, generator = world(NAMES[:1], NAMES[:1])
    watcher = Watcher()
    await run_evaluation(problems(NAMES[:1]), env, generator, CONFIG, events=watcher)
    kinds = [type(event) for event in watcher.events]
    assert kinds.index(ProblemStarted) < kinds.index(SearchStarted) < kinds.index(SearchFinished)
    assert kinds.index(SearchFinished) < kinds.index(ProblemFinished)


async def test_a_raising_problem_is_recorded_as_env_error_and_the_run_goes_on() -> None:
    scripts = build_scripts(NAMES[:2], NAMES[:4], crash=[NAMES[1]])

    class Broken(ScriptedEnv):
        async def start(self, problem: Problem, *, hole: Hole | None = None) -> ScriptedSession | InvalidStatement:
            if problem.name == NAMES[2]:
                raise RuntimeError("adapter bug")
            return await super().start(problem)

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
    watcher = Watcher()
    with ResultsWriter(results) as writer, pytest.raises(EvalAborted, match="3 problems in a row") as aborted:
        await run_evaluation(
            problems(NAMES),
            env,
            generator,
            CONFIG,
            concurrency=1,
            writer=writer,
            max_consecutive_env_errors=3,
            events=watcher,
        )
    assert len(aborted.value.records) == 3
    assert [r.name for r in read_records(results)] == list(NAMES[:3])
    assert "unknown package" in (read_records(results)[0].failure_reason or "")
    finished = watcher.of(EvaluationFinished)
    assert len(finished) == 1 and "3 problems in a row" in (finished[0].stopped or "")


async def test_an_invalid_statement_is_recorded_as_such_and_never_retried(tmp_path: Path) -> None:
    scripts = build_scripts(NAMES[:1], NAMES[:3])
    env = scripted_env(scripts, invalid={NAMES[1]: "unknown identifier 'foo'"})
    generator = scripted_generator(scripts)
    outcome = await run_evaluation(problems(NAMES[:3]), env, generator, CONFIG, concurrency=1)
    by_name = {record.name: record for record in outcome.records}
    invalid = by_name[NAMES[1]]
    assert invalid.status == "invalid_statement" and not invalid.proved
    assert "unknown identifier 'foo'" in (invalid.failure_reason or "")
    assert not is_retryable(invalid)
    assert by_name[NAMES[0]].proved and by_name[NAMES[2]].status == "failed"


def _record(problem: Problem, status: str) -> EvalRecord:
    if status == "env_error":
        return env_error_record(problem, "REPL died")
    return EvalRecord(name=problem.name, status=status, proved=status == "proved", failure_reason="x")


async def test_the_abort_rule_counts_env_errors_only_and_invalid_statements_never() -> None:
    # env_error, invalid_statement, env_error: two in a row for the rule, an invalid statement between them.
    names = [f"p_{index}" for index in range(8)]
    outcomes = dict(
        zip(
            names,
            ["env_error", "invalid_statement", "env_error", "failed", "env_error", "invalid_statement"] * 2,
            strict=False,
        )
    )
    items = [Problem(name=name, header="", formal_statement=f"theorem {name} : True := by") for name in names]

    async def attempt(problem: Problem) -> EvalRecord:
        await asyncio.sleep(0)
        return _record(problem, outcomes[problem.name])

    done = await run_problems(items[:4], attempt, concurrency=1, max_consecutive_env_errors=3)
    assert [r.status for r in done.records] == ["env_error", "invalid_statement", "env_error", "failed"]
    with pytest.raises(EvalAborted, match="2 problems in a row") as aborted:
        await run_problems(items[:4], attempt, concurrency=1, max_consecutive_env_errors=2)
    assert [r.name for r in aborted.value.records] == names[:3]
    # Only invalid statements, many in a row: never an abort.
    invalid = {name: "invalid_statement" for name in names}

    async def all_invalid(problem: Problem) -> EvalRecord:
        return _record(problem, invalid[problem.name])

    assert len((await run_problems(items, all_invalid, concurrency=2, max_consecutive_env_errors=1)).records) == 8


async def test_runner_is_generic_over_problems_of_any_language() -> None:
    isabelle = Problem(
        name="t",
        header="theory t imports Main begin\n",
        formal_statement='theorem t: "True"',
        language=Language.ISABELLE,
        split="train",
        category="logic",
    )
    seen: list[Problem] = []

    async def attempt(problem: Problem) -> EvalRecord:
        seen.append(problem)
        return env_error_record(problem, "no Isabelle backend here")

    outcome = await run_problems([isabelle], attempt, concurrency=4)
    (record,) = outcome.records
    assert seen == [isabelle]
    assert (record.language, record.split, record.category) == ("isabelle", "train", "logic")
    assert record.statement_hash == isabelle.statement_hash


async def test_skip_and_duplicates_are_by_name() -> None:
    env, generator = world(NAMES)
    watcher = Watcher()
    items = [*problems(NAMES[:4]), *problems(NAMES[:2])]
    outcome = await run_evaluation(items, env, generator, CONFIG, skip={NAMES[1]}, events=watcher)
    assert sorted(r.name for r in outcome.records) == sorted([NAMES[0], NAMES[2], NAMES[3]])
    assert outcome.skipped == (NAMES[1],)
    assert watcher.of(EvaluationStarted) == [EvaluationStarted(3, 1, None)]
    assert sorted(watcher.started) == sorted([NAMES[0], NAMES[2], NAMES[3]])


async def test_cancelling_the_run_records_only_finished_problems_and_closes_sessions(tmp_path: Path) -> None:
    env, generator = world(NAMES, generator_latency=0.2)
    results = tmp_path / "results.jsonl"
    watcher = Watcher()
    with ResultsWriter(results) as writer:
        task = asyncio.create_task(
            run_evaluation(problems(NAMES), env, generator, CONFIG, concurrency=2, writer=writer, events=watcher)
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    recorded = [record.name for record in read_records(results)]
    assert 0 < len(recorded) < len(NAMES)
    assert len(set(recorded)) == len(recorded)
    assert env.counters.starts == env.counters.closes
    assert watcher.of(EvaluationFinished)[0].stopped == "cancelled"

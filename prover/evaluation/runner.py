"""The evaluation runner: many problems in flight, each record durable the moment its problem finishes.

One implementation serves every executor. `run_problems` owns what a run is: the selection
(duplicates dropped, names already recorded skipped), `concurrency` lanes pulling problems in order
from one shared iterator, the durable write of each record before anyone hears of it, the events,
and the abort rule (`ErrorStreak`). How one problem is attempted is a parameter, an `AttemptProblem`
coroutine: `run_evaluation` gives one that runs a best-first search in this process
(`local_attempt`), `prover.distributed.run_distributed` one that dispatches to Ray actors.

An exception escaping one search (a defect in a backend) is recorded as an `env_error` for that
problem instead of ending the run; cancelling the run cancels the attempts in flight and records
nothing for them, so a resume re-runs them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import platform
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lean_env.protocol import LeanEnv, ProofLanguage
from lean_env.types import Problem
from prover.config import SearchSettings
from prover.evaluation.events import EvaluationFinished, EvaluationStarted, ProblemFinished, ProblemStarted
from prover.evaluation.results import EvalRecord, ResultsWriter
from search.best_first import BestFirstSearch
from search.events import EventListener
from search.types import SearchConfig, SearchResult, SearchStatus, TacticGenerator

logger = logging.getLogger(__name__)

AttemptProblem = Callable[[Problem], Awaitable[EvalRecord]]
"""Attempts one problem and returns its record. It returns a record (an `env_error` one if need be)
for any failure of that problem; it raises only for what must end the whole run (`EvalAborted`, a
`MissingDependency`), and lets `CancelledError` through."""


@dataclass(frozen=True, slots=True)
class EvalOutcome:
    """What one run did: the records it wrote (in completion order) and the names it skipped."""

    records: tuple[EvalRecord, ...]
    skipped: tuple[str, ...]
    wall_seconds: float

    @property
    def proved(self) -> int:
        return sum(record.proved for record in self.records)


class EvalAborted(RuntimeError):
    """The run stopped early: too many problems in a row ended in an infrastructure error, or every
    distributed worker was lost.

    Records written before the abort stay in the results file; resume with `retry_errors` to re-run
    the problems that failed that way once the backend is fixed.
    """

    def __init__(self, message: str, records: Sequence[EvalRecord] = ()) -> None:
        super().__init__(message)
        self.records = tuple(records)


class ErrorStreak:
    """The abort rule: `limit` `env_error` records in a row stop the run (None: never).

    Only `env_error` counts; every other outcome but `invalid_statement` ends the streak. An
    `invalid_statement` is a fact about the problem, not about the infrastructure, so it neither
    counts nor ends a streak.
    """

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"max_consecutive_env_errors: must be >= 1 or None, got {limit}")
        self.limit = limit
        self.count = 0

    def observe(self, record: EvalRecord) -> str | None:
        """Count `record`; the abort message when the streak reaches the limit, else None."""
        if record.status == SearchStatus.ENV_ERROR.value:
            self.count += 1
        elif record.status != SearchStatus.INVALID_STATEMENT.value:
            self.count = 0
        if self.limit is not None and self.count >= self.limit:
            return (
                f"stopped after {self.count} problems in a row failed with an infrastructure error; "
                f"last: {record.name}: {record.failure_reason}"
            )
        return None


def default_worker_name() -> str:
    return f"{platform.node()}:{os.getpid()}"


def _stats_dict(stats: Any) -> dict[str, Any]:
    if stats is None:
        return {}
    if hasattr(stats, "to_dict"):
        data: dict[str, Any] = stats.to_dict()
        return data
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    return dict(stats)


def _problem_fields(problem: Problem) -> dict[str, Any]:
    return {
        "name": problem.name,
        "split": problem.split,
        "category": problem.category,
        "language": problem.language.value,
        "statement_hash": problem.statement_hash,
    }


def make_record(
    problem: Problem,
    result: SearchResult,
    *,
    syntax: ProofLanguage | None,
    started_at: float,
    finished_at: float,
    worker: str = "",
    attempts: int = 1,
) -> EvalRecord:
    """The results-file record of one finished search; `syntax` renders a proof's whole file (`lean_file`)."""
    data = result.to_dict()
    data.update(
        _problem_fields(problem),
        header=problem.header,
        formal_statement=problem.formal_statement,
        judge=result.judge if result.proof is not None else None,
        lean_file=syntax.proof_file(problem, result.proof) if result.proof is not None and syntax is not None else None,
        started_at=started_at,
        finished_at=finished_at,
        worker=worker,
        attempts=attempts,
    )
    return EvalRecord.model_validate(data)


def env_error_record(
    problem: Problem,
    reason: str,
    *,
    stats: Any = None,
    started_at: float | None = None,
    worker: str = "",
    attempts: int = 1,
) -> EvalRecord:
    """An `env_error` record for a problem whose attempt could not run to an outcome."""
    now = time.time()
    return EvalRecord(
        **_problem_fields(problem),
        status=SearchStatus.ENV_ERROR.value,
        proved=False,
        failure_reason=reason,
        stats=_stats_dict(stats),
        started_at=started_at if started_at is not None else now,
        finished_at=now,
        worker=worker,
        attempts=attempts,
    )


async def prove_problem(
    problem: Problem,
    env: LeanEnv,
    generator: TacticGenerator,
    config: SearchConfig,
    *,
    worker: str = "",
    attempts: int = 1,
    events: EventListener | None = None,
) -> EvalRecord:
    """Run one search and return its record; the search's events go to `events`.

    Never raises for a failure of the search or a backend; `CancelledError` propagates.
    """
    started_at = time.time()
    search = BestFirstSearch(problem, env, generator, config, events=events)
    try:
        result = await search.run()
    except Exception as error:
        # The search turns backend and model failures into ENV_ERROR itself; reaching here is a defect
        # in some component, and one problem must not take the whole evaluation down with it.
        logger.error(
            "search of %s raised %s: %s",
            problem.name,
            type(error).__name__,
            error,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )
        return env_error_record(
            problem,
            f"unexpected error: {type(error).__name__}: {error}",
            stats=search.stats,
            started_at=started_at,
            worker=worker,
            attempts=attempts,
        )
    return make_record(
        problem,
        result,
        syntax=env.syntax,
        started_at=started_at,
        finished_at=time.time(),
        worker=worker,
        attempts=attempts,
    )


def local_attempt(
    env: LeanEnv,
    generator: TacticGenerator,
    config: SearchConfig,
    *,
    worker: str | None = None,
    events: EventListener | None = None,
) -> AttemptProblem:
    """An `AttemptProblem` that searches in this process over `env` and `generator` (shared by every lane)."""
    worker_name = worker if worker is not None else default_worker_name()

    async def attempt(problem: Problem) -> EvalRecord:
        return await prove_problem(problem, env, generator, config, worker=worker_name, events=events)

    return attempt


def unique_problems(items: Iterable[Problem]) -> list[Problem]:
    """Problems in order with later duplicates of a name dropped (resume matches names)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for problem in items:
        if not isinstance(problem, Problem):
            raise TypeError(f"run_evaluation: expected lean_env.types.Problem, got {type(problem).__name__}")
        if problem.name in seen:
            logger.warning("problem %s is listed twice; attempting it once", problem.name)
            continue
        seen.add(problem.name)
        problems.append(problem)
    return problems


def plan(problems: Iterable[Problem], skip: Collection[str]) -> tuple[list[Problem], tuple[str, ...]]:
    """What a run does: the problems to attempt, in order, and the names it skips as already recorded."""
    items = unique_problems(problems)
    skipped = tuple(problem.name for problem in items if problem.name in skip)
    return [problem for problem in items if problem.name not in skip], skipped


class _Run:
    """One run's shared state: where records go, who hears of them, and the abort rule."""

    def __init__(self, writer: ResultsWriter | None, events: EventListener | None, streak: ErrorStreak) -> None:
        self.writer = writer
        self.events = events
        self.streak = streak
        self.records: list[EvalRecord] = []

    def publish(self, event: object) -> None:
        if self.events is not None:
            self.events(event)

    async def finish(self, record: EvalRecord) -> None:
        """Write `record` durably, then announce it; raises `EvalAborted` when the abort rule fires."""
        if self.writer is not None:
            await asyncio.to_thread(self.writer.write, record)
        self.records.append(record)
        self.publish(ProblemFinished(record))
        message = self.streak.observe(record)
        if message is not None:
            raise EvalAborted(message, self.records)


async def _run_lanes(todo: Sequence[Problem], attempt: AttemptProblem, run: _Run, concurrency: int) -> None:
    """Attempt every problem of `todo` on `concurrency` lanes; the first error (an abort) stops them all."""
    pending: Iterator[Problem] = iter(todo)

    async def lane() -> None:
        for problem in pending:  # one iterator shared by every lane: each problem is taken once
            run.publish(ProblemStarted(problem.name, 1))
            await run.finish(await attempt(problem))

    lanes = [asyncio.create_task(lane()) for _ in range(min(concurrency, len(todo)))]
    try:
        if lanes:
            await asyncio.wait(lanes, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        # On an abort, an error or our own cancellation, stop every attempt still in flight; their
        # problems stay unrecorded, so a resume re-runs them.
        for task in lanes:
            task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
    for task in lanes:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error


async def run_problems(
    problems: Sequence[Problem],
    attempt: AttemptProblem,
    *,
    concurrency: int,
    writer: ResultsWriter | None = None,
    skip: Collection[str] = (),
    events: EventListener | None = None,
    max_consecutive_env_errors: int | None = None,
) -> EvalOutcome:
    """The runner every executor shares: attempt each problem not in `skip` with `attempt`, `concurrency` at once.

    Each record is written to `writer` (if given) as soon as its problem finishes and before
    `events` hears of it (`ProblemFinished`). Raises `EvalAborted` (carrying the records written)
    after `max_consecutive_env_errors` `env_error` records in a row (None: never) or when `attempt`
    raises it; `EvaluationFinished` is published however the run ends.
    """
    if concurrency < 1:
        raise ValueError(f"run_evaluation.concurrency: must be >= 1, got {concurrency}")
    todo, skipped = plan(problems, skip)
    run = _Run(writer, events, ErrorStreak(max_consecutive_env_errors))
    run.publish(EvaluationStarted(len(todo), len(skipped), str(writer.path) if writer is not None else None))
    loop = asyncio.get_running_loop()
    started = loop.time()
    stopped: str | None = "cancelled"
    try:
        await _run_lanes(todo, attempt, run, concurrency)
        stopped = None
    except EvalAborted as error:
        stopped = str(error)
        raise EvalAborted(stopped, run.records) from None
    except Exception as error:
        stopped = f"{type(error).__name__}: {error}"
        raise
    finally:
        proved = sum(record.proved for record in run.records)
        run.publish(EvaluationFinished(len(run.records), proved, loop.time() - started, stopped))
    return EvalOutcome(records=tuple(run.records), skipped=skipped, wall_seconds=loop.time() - started)


async def run_evaluation(
    problems: Sequence[Problem],
    env: LeanEnv,
    generator: TacticGenerator,
    search: SearchSettings | SearchConfig,
    *,
    concurrency: int = 32,
    writer: ResultsWriter | None = None,
    skip: Collection[str] = (),
    events: EventListener | None = None,
    max_consecutive_env_errors: int | None = None,
    worker: str | None = None,
) -> EvalOutcome:
    """Attempt every problem not in `skip` in this process, up to `concurrency` at once, sharing `env` and `generator`.

    `events` hears the run's events (`prover.evaluation.events`) and every search's own. See
    `run_problems` for records, events and the abort rule. Neither `env` nor `generator` is closed
    here; they belong to the caller.
    """
    config = search.to_config() if isinstance(search, SearchSettings) else search
    attempt = local_attempt(env, generator, config, worker=worker, events=events)
    return await run_problems(
        problems,
        attempt,
        concurrency=concurrency,
        writer=writer,
        skip=skip,
        events=events,
        max_consecutive_env_errors=max_consecutive_env_errors,
    )

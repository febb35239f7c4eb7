"""The concurrent evaluation runner: many best-first searches in flight over one generator and one Lean pool.

`run_evaluation` keeps up to `concurrency` searches running at once, pulling theorems in order. Each
search's `SearchResult` becomes one `EvalRecord`, written durably (see `results.ResultsWriter`) the
moment that theorem finishes, so an interrupted run loses at most the searches still in flight. An
exception escaping one search (a defect in a backend) is recorded as an `env_error` for that theorem
instead of ending the run; cancelling the run cancels the searches in flight and records nothing for
them, so a resume re-runs them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lean_env.protocol import LeanEnv
from lean_env.types import Theorem
from prover.config import SearchSettings
from prover.evaluation.results import EvalRecord, ResultsWriter
from prover.minif2f.dataset import Problem, category_of
from search.best_first import BestFirstSearch
from search.types import SearchConfig, SearchObserver, SearchResult, SearchStats, SearchStatus, TacticGenerator

logger = logging.getLogger(__name__)


class EvalObserver(Protocol):
    """Receives progress of a running evaluation; runs on the event loop, so it must not block."""

    def on_start(self, total: int, skipped: int) -> None:
        """`total` theorems will be attempted now; `skipped` were already recorded (resume)."""
        ...

    def on_theorem_start(self, name: str) -> None: ...

    def on_theorem_done(self, record: EvalRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class EvalOutcome:
    """What one call of `run_evaluation` did: the records it wrote (in completion order) and what it skipped."""

    records: tuple[EvalRecord, ...]
    skipped: tuple[str, ...]
    wall_seconds: float

    @property
    def proved(self) -> int:
        return sum(record.proved for record in self.records)


class EvalAborted(RuntimeError):
    """The run stopped because too many theorems in a row ended in an infrastructure error.

    Records written before the abort stay in the results file; resume with `retry_errors` to re-run
    the theorems that failed that way once the backend is fixed.
    """

    def __init__(self, message: str, records: Sequence[EvalRecord]) -> None:
        super().__init__(message)
        self.records = tuple(records)


def as_problem(item: Problem | Theorem) -> Problem:
    """A bare `Theorem` becomes a `Problem` with no split and the category its name implies."""
    if isinstance(item, Problem):
        return item
    return Problem(theorem=item, split="", category=category_of(item.name))


def default_worker_name() -> str:
    return f"{platform.node()}:{os.getpid()}"


def make_record(
    problem: Problem,
    result: SearchResult,
    *,
    started_at: float,
    finished_at: float,
    worker: str = "",
    attempts: int = 1,
) -> EvalRecord:
    """The results-file record of one finished search."""
    data = result.to_dict()
    data.update(
        split=problem.split,
        category=problem.category.value,
        lean_file=problem.theorem.file_text(result.proof) if result.proof is not None else None,
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
    stats: SearchStats | None = None,
    started_at: float | None = None,
    worker: str = "",
    attempts: int = 1,
) -> EvalRecord:
    """An `env_error` record for a theorem whose search could not run to an outcome."""
    now = time.time()
    result = SearchResult(
        theorem_name=problem.name,
        status=SearchStatus.ENV_ERROR,
        proof=None,
        tactics=(),
        verified=False,
        failure_reason=reason,
        stats=stats or SearchStats(),
    )
    return make_record(
        problem,
        result,
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
    search_observer: SearchObserver | None = None,
) -> EvalRecord:
    """Run one search and return its record. Never raises for a failure of the search or a backend;
    `CancelledError` propagates."""
    started_at = time.time()
    search = BestFirstSearch(problem.theorem, env, generator, config, search_observer)
    try:
        result = await search.run()
    except Exception as error:
        # The search turns backend and model failures into ENV_ERROR itself; reaching here is a defect
        # in some component, and one theorem must not take the whole evaluation down with it.
        logger.exception("search of %s raised", problem.name)
        return env_error_record(
            problem,
            f"unexpected error: {type(error).__name__}: {error}",
            stats=search.stats,
            started_at=started_at,
            worker=worker,
            attempts=attempts,
        )
    return make_record(
        problem, result, started_at=started_at, finished_at=time.time(), worker=worker, attempts=attempts
    )


def unique_problems(items: Iterable[Problem | Theorem]) -> list[Problem]:
    """Problems in order with later duplicates of a name dropped (resume matches names)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for item in items:
        problem = as_problem(item)
        if problem.name in seen:
            logger.warning("theorem %s is listed twice; attempting it once", problem.name)
            continue
        seen.add(problem.name)
        problems.append(problem)
    return problems


async def run_evaluation(
    problems: Sequence[Problem | Theorem],
    env: LeanEnv,
    generator: TacticGenerator,
    search: SearchSettings | SearchConfig,
    *,
    concurrency: int = 32,
    writer: ResultsWriter | None = None,
    skip: Collection[str] = (),
    observer: EvalObserver | None = None,
    max_consecutive_env_errors: int | None = None,
    worker: str | None = None,
) -> EvalOutcome:
    """Attempt every problem not in `skip`, up to `concurrency` at once, sharing `env` and `generator`.

    Each record is written to `writer` (if given) as soon as its theorem finishes and before the
    observer hears of it. Raises `EvalAborted` after `max_consecutive_env_errors` env errors in a row
    (None: never). Neither `env` nor `generator` is closed here; they belong to the caller.
    """
    if concurrency < 1:
        raise ValueError(f"run_evaluation.concurrency: must be >= 1, got {concurrency}")
    config = search.to_config() if isinstance(search, SearchSettings) else search
    worker_name = worker if worker is not None else default_worker_name()
    items = unique_problems(problems)
    skipped = tuple(problem.name for problem in items if problem.name in skip)
    todo = [problem for problem in items if problem.name not in skip]
    if observer is not None:
        observer.on_start(len(todo), len(skipped))
    loop = asyncio.get_running_loop()
    started = loop.time()
    records: list[EvalRecord] = []
    pending = iter(todo)
    consecutive_errors = 0

    async def lane() -> None:
        nonlocal consecutive_errors
        for problem in pending:  # one iterator shared by every lane: each theorem is taken once
            if observer is not None:
                observer.on_theorem_start(problem.name)
            record = await prove_problem(problem, env, generator, config, worker=worker_name)
            if writer is not None:
                await asyncio.to_thread(writer.write, record)
            records.append(record)
            if observer is not None:
                observer.on_theorem_done(record)
            consecutive_errors = consecutive_errors + 1 if record.status == SearchStatus.ENV_ERROR.value else 0
            if max_consecutive_env_errors is not None and consecutive_errors >= max_consecutive_env_errors:
                raise EvalAborted(
                    f"stopped after {consecutive_errors} theorems in a row failed with an infrastructure error; "
                    f"last: {record.name}: {record.failure_reason}",
                    records,
                )

    lanes = [asyncio.create_task(lane()) for _ in range(min(concurrency, len(todo)))]
    try:
        if lanes:
            await asyncio.wait(lanes, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        # On an abort, an error or our own cancellation, stop every search still in flight; their
        # theorems stay unrecorded, so a resume re-runs them.
        for task in lanes:
            task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
    for task in lanes:
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            raise error
    return EvalOutcome(records=tuple(records), skipped=skipped, wall_seconds=loop.time() - started)

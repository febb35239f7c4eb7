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

pass@k: `search_attempts` runs up to `k` independent searches of one problem, attempt `i` with seed
`seed + i` on every generation request, and stops at the first that proves it (or ends in
`env_error` or `invalid_statement`, which another seed would not change). Its record is the last
attempt's, with `seed` (that attempt's) and `search_attempts` (one `{seed, status, expansions,
wall_seconds, proof}` per attempt made) added; the record's `attempts` stays the count of Ray
dispatches. With `tree_dir`, each problem's search graph is written to `tree_file(tree_dir, name)`
(the last attempt's; earlier ones beside it as `<name>.attempt<i>.json`); a failure to write a tree
is logged and never loses the record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lean_env.protocol import LeanEnv, ProofLanguage
from lean_env.types import Problem
from prover.config import SearchSettings
from prover.evaluation.events import EvaluationFinished, EvaluationStarted, ProblemFinished, ProblemStarted
from prover.evaluation.results import EvalRecord, ResultsWriter
from search.best_first import BestFirstSearch
from search.events import EventListener, publish
from search.tree import SearchTree
from search.types import SearchConfig, SearchResult, SearchStats, SearchStatus, TacticGenerator

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
    stats: SearchStats | None = None,
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
        stats=stats.to_dict() if stats is not None else {},
        started_at=started_at if started_at is not None else now,
        finished_at=now,
        worker=worker,
        attempts=attempts,
    )


def tree_file(directory: Path, name: str, attempt: int | None = None) -> Path:
    """Where `--export-trees` puts the search graph of problem `name` (`attempt`: an earlier attempt's).

    Characters other than letters, digits, `.`, `_` and `-` become `_`, so a name never leaves
    `directory`; `prover tree` finds the file by the same rule.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "_"
    suffix = f".attempt{attempt}" if attempt is not None else ""
    return Path(directory) / f"{stem}{suffix}.json"


async def _write_tree(tree: SearchTree | None, path: Path) -> None:
    """Write `tree` to `path`; a failure is logged, never raised (the record matters more)."""
    if tree is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(tree.write, path)
    except Exception as error:
        logger.warning("could not write the search tree to %s: %s: %s", path, type(error).__name__, error)


async def _search_once(
    problem: Problem,
    env: LeanEnv,
    generator: TacticGenerator,
    config: SearchConfig,
    *,
    worker: str,
    attempts: int,
    events: EventListener | None,
    seed: int | None,
) -> tuple[EvalRecord, SearchTree | None]:
    """One search of `problem` and its record, with the search's graph (None if it never started)."""
    started_at = time.time()
    if seed is not None:
        from prover.models.tactics import SeededTacticGenerator

        generator = SeededTacticGenerator(generator, seed)
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
            exc_info=logger.isEnabledFor(logging.INFO),
        )
        record = env_error_record(
            problem,
            f"unexpected error: {type(error).__name__}: {error}",
            stats=search.stats,
            started_at=started_at,
            worker=worker,
            attempts=attempts,
        )
        return record, search.tree
    record = make_record(
        problem,
        result,
        syntax=env.syntax,
        started_at=started_at,
        finished_at=time.time(),
        worker=worker,
        attempts=attempts,
    )
    return record, search.tree


async def prove_problem(
    problem: Problem,
    env: LeanEnv,
    generator: TacticGenerator,
    config: SearchConfig,
    *,
    worker: str = "",
    attempts: int = 1,
    events: EventListener | None = None,
    seed: int | None = None,
    tree_path: Path | None = None,
) -> EvalRecord:
    """Run one search and return its record; the search's events go to `events`.

    `seed` (when given) is stamped on every generation request of the search; `tree_path` (when
    given) receives the search graph (`SearchTree.write`; a failure to write it is only logged).
    Never raises for a failure of the search or a backend; `CancelledError` propagates.
    """
    record, tree = await _search_once(
        problem, env, generator, config, worker=worker, attempts=attempts, events=events, seed=seed
    )
    if tree_path is not None:
        await _write_tree(tree, tree_path)
    return record


_FINAL = frozenset({SearchStatus.PROVED.value, SearchStatus.ENV_ERROR.value, SearchStatus.INVALID_STATEMENT.value})
"""Outcomes after which `search_attempts` makes no further attempt: another seed would not change them."""


def _attempt_summary(record: EvalRecord, seed: int) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "seed": seed,
        "status": record.status,
        "expansions": record.expansions,
        "wall_seconds": record.wall_seconds,
    }
    if record.proof is not None:
        summary["proof"] = record.proof
    return summary


async def search_attempts(
    problem: Problem,
    env: LeanEnv,
    generator: TacticGenerator,
    config: SearchConfig,
    *,
    attempts: int = 1,
    seed: int = 0,
    worker: str = "",
    events: EventListener | None = None,
    tree_dir: Path | None = None,
) -> EvalRecord:
    """Up to `attempts` searches of `problem`, attempt `i` seeded `seed + i`, stopping at the first proof.

    The record is the last attempt's, with `seed` and `search_attempts` added and `started_at` the
    first attempt's (see the module docstring). Never raises for a failure of a search.
    """
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"search_attempts.attempts: must be an integer >= 1, got {attempts!r}")
    made: list[dict[str, Any]] = []
    started_at: float | None = None
    record: EvalRecord | None = None
    for number in range(attempts):
        attempt_seed = seed + number
        record, tree = await _search_once(
            problem, env, generator, config, worker=worker, attempts=1, events=events, seed=attempt_seed
        )
        started_at = record.started_at if started_at is None else started_at
        made.append(_attempt_summary(record, attempt_seed))
        last = record.status in _FINAL or number == attempts - 1
        if tree_dir is not None:
            await _write_tree(tree, tree_file(tree_dir, problem.name, None if last else number))
        if last:
            break
    assert record is not None and started_at is not None
    data = record.model_dump()
    data.update(seed=made[-1]["seed"], search_attempts=made, started_at=started_at)
    return EvalRecord.model_validate(data)


def local_attempt(
    env: LeanEnv,
    generator: TacticGenerator,
    config: SearchConfig,
    *,
    worker: str | None = None,
    events: EventListener | None = None,
    attempts: int = 1,
    seed: int | None = None,
    tree_dir: Path | None = None,
) -> AttemptProblem:
    """An `AttemptProblem` that searches in this process over `env` and `generator` (shared by every lane).

    With a `seed` (or more than one attempt, or a `tree_dir`) it is `search_attempts`; without, one
    plain `prove_problem` whose requests carry no seed.
    """
    worker_name = worker if worker is not None else default_worker_name()
    if attempts == 1 and seed is None and tree_dir is None:

        async def attempt(problem: Problem) -> EvalRecord:
            return await prove_problem(problem, env, generator, config, worker=worker_name, events=events)

        return attempt

    async def attempt_seeded(problem: Problem) -> EvalRecord:
        return await search_attempts(
            problem,
            env,
            generator,
            config,
            attempts=attempts,
            seed=seed or 0,
            worker=worker_name,
            events=events,
            tree_dir=tree_dir,
        )

    return attempt_seeded


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
        publish(self.events, event)

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
    attempts: int = 1,
    seed: int | None = None,
    tree_dir: Path | None = None,
) -> EvalOutcome:
    """Attempt every problem not in `skip` in this process, up to `concurrency` at once, sharing `env` and `generator`.

    `events` hears the run's events (`prover.evaluation.events`) and every search's own. See
    `run_problems` for records, events and the abort rule, and the module docstring for
    `attempts` and `seed` (pass@k) and `tree_dir`. Neither `env` nor `generator` is closed here;
    they belong to the caller.
    """
    config = search.to_config() if isinstance(search, SearchSettings) else search
    attempt = local_attempt(
        env, generator, config, worker=worker, events=events, attempts=attempts, seed=seed, tree_dir=tree_dir
    )
    return await run_problems(
        problems,
        attempt,
        concurrency=concurrency,
        writer=writer,
        skip=skip,
        events=events,
        max_consecutive_env_errors=max_consecutive_env_errors,
    )

"""`JobRunner`: claims jobs from the store and runs them with one shared Lean env and one shared model.

A runner holds `workers` claim loops and one lease loop. A claim loop takes the oldest queued job it
can run, runs it as a task of its own, streams the job's events to the store and finishes the job
exactly once. The lease loop looks for cancellation requests every `service.cancel_poll_s` (a read
of the job), renews each lease every `service.heartbeat_s` (with the job's latest counters) and
re-queues jobs whose leases expired, whoever held them, so the jobs of a vanished worker come back.

What a job may rely on:

- events are buffered and written at most every `service.event_interval_s`; of the `expansion`
  events of one interval only the latest is kept, every other event is kept, in order; the
  buffered events are written before the job is finished (the store then writes `finished`);
- a cancellation request stops the job's task within `cancel_poll_s` plus the time the search
  takes to unwind, and the job ends `cancelled` with its partial counters as `result`;
- a lease the store took away (`Heartbeat.owned` False) stops the task and nothing more is written;
- `stop()` stops every job without finishing it: the jobs stay `running` until their lease expires
  or `JobStore.requeue_abandoned` (called by `start()` for this host) re-queues them.

The store is synchronous; every call goes through `JobStore.run` (the store's own thread pools).
The claim loops of one runner share their idle polling: when a claim finds nothing, no loop of this
runner asks again before `service.poll_s` has passed, unless `notify()` (the app calls it when it
queues a job) says a job was queued; so an idle runner reads the store once per `poll_s`, not once
per loop, and a job queued in this process starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from prover.service.jobs import Job, JobKind, JobState

if TYPE_CHECKING:
    from lean_env.protocol import LeanEnv
    from lean_env.types import Problem
    from prover.config import ProverSettings
    from prover.models.text import TextGenerator
    from prover.service.store import JobStore
    from search.types import SearchConfig, TacticGenerator

logger = logging.getLogger(__name__)

BEST_OPEN_COUNT = 5
"""Open states a `best_open` event lists."""

VERIFY_CONCURRENCY = 8
"""Items of one `verify` job checked at once (the env's pool bounds the real parallelism)."""

_MIN_FLUSH_S = 0.02
"""How often buffered events are written when `event_interval_s` is 0 (no throttling)."""

_slot_numbers = itertools.count()
"""Numbers the claim loops of every runner in this process, so two runners never share a worker id."""


class JobRequestError(ValueError):
    """A job's request cannot be run (a malformed statement, a budget above the caps); the job fails."""


@dataclass(frozen=True, slots=True)
class RunnerStats:
    """What a runner has done since it was built, for `/metrics`."""

    busy: int
    """Claim loops running a job now."""
    free: int
    """Claim loops waiting for a job."""
    expansions_total: int
    """Search expansions of every job this runner ran (also those cancelled or lost)."""
    candidates_total: int
    """Tactic candidates those expansions got from the model."""
    verdicts_by_judge: dict[str, int]
    """Accepting verdicts (proved `prove` jobs, valid `verify` items) by the judge that gave them."""
    jobs_finished_by_state: dict[str, int]
    """Jobs this runner finished, by terminal state."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: JobState
    result: dict[str, Any] | None
    error: str | None = None


@dataclass(eq=False)
class _RunningJob:
    """One claimed job: its task, its buffered events and its latest counters (event-loop only)."""

    job: Job
    worker_id: str
    throttle: bool
    task: asyncio.Task[_Outcome] | None = None
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    latest_expansion: dict[str, Any] | None = None
    """The newest `expansion` event not yet moved to `pending` (only the latest of an interval is kept)."""
    expanded_since_best_open: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    partial: Callable[[], dict[str, Any]] = dict
    """The result of the job if it were cancelled now (its counters so far)."""
    best_open: Callable[[int], Any] | None = None
    last_heartbeat: float = 0.0
    cancel_requested: bool = False
    lost: bool = False
    """The store took the lease away: write nothing more."""
    discard: bool = False
    """The runner is stopping: write nothing more."""
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "expansion" and self.throttle:
            self.latest_expansion = data
            return
        self._release_expansion()
        self.pending.append((kind, data))

    def _release_expansion(self) -> None:
        """Move the held expansion to `pending`, followed by a `best_open` when the search moved since the last."""
        if self.latest_expansion is not None:
            self.pending.append(("expansion", self.latest_expansion))
            self.latest_expansion = None
        if self.best_open is not None and self.expanded_since_best_open:
            self.expanded_since_best_open = False
            states = _best_open_states(self.best_open)
            if states is not None:
                self.pending.append(("best_open", {"states": states}))

    def take_batch(self) -> list[tuple[str, dict[str, Any]]]:
        """Everything buffered, oldest first."""
        self._release_expansion()
        batch, self.pending = self.pending, []
        return batch


def _best_open_states(best_open: Callable[[int], Any]) -> list[dict[str, Any]] | None:
    try:
        return [{"state": str(state), "score": float(score)} for state, score in best_open(BEST_OPEN_COUNT)]
    except Exception:
        logger.exception("best_open failed; the event is skipped")
        return None


def _budget(request: dict[str, Any], key: str, default: float, cap: float) -> float:
    """`request[key]` (or `default` when absent), at most `cap`; raises `JobRequestError` for a non-positive value."""
    value = request.get(key)
    if value is None:
        return min(default, cap)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise JobRequestError(f"`{key}` must be a positive number, got {value!r}")
    return min(value, cap)


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class JobRunner:
    """Runs `prove`, `verify` and (with a text generator) `formalize` jobs from `store`.

    `env` and `generator` are shared by every job and belong to the caller (the runner never closes
    them). `workers` jobs run at once. Worker ids are `<prefix>:<n>`, the prefix defaulting to
    `<host>:<pid>` (the form `JobStore.requeue_abandoned` reads); give another prefix only with the
    same `<host>:<pid>` shape, or jobs it abandons come back only by lease expiry.
    """

    def __init__(
        self,
        store: JobStore,
        settings: ProverSettings,
        *,
        env: LeanEnv,
        generator: TacticGenerator,
        text: TextGenerator | None = None,
        workers: int,
        worker_prefix: str | None = None,
    ) -> None:
        if workers < 0:
            raise ValueError(f"JobRunner.workers: must be >= 0, got {workers}")
        self.store = store
        self.settings = settings
        self.env = env
        self.generator = generator
        self.text = text
        self.workers = workers
        self._host = socket.gethostname()
        self.worker_prefix = worker_prefix if worker_prefix is not None else f"{self._host}:{os.getpid()}"
        kinds = [JobKind.PROVE, JobKind.VERIFY]
        if text is not None:
            kinds.append(JobKind.FORMALIZE)
        self.kinds: tuple[JobKind, ...] = tuple(kinds)
        """The job kinds this runner claims: `formalize` only with a text generator."""
        self._running: dict[str, _RunningJob] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._expansions = 0
        self._candidates = 0
        self._verdicts: dict[str, int] = {}
        self._finished: dict[str, int] = {}
        self._started = False
        self._idle_until = 0.0
        """Monotonic time before which no claim loop asks the store (a claim found nothing)."""
        self._wake: asyncio.Event | None = None

    # --- life cycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Re-queue this host's abandoned and every expired job, then start the claim and lease loops."""
        if self._started:
            raise RuntimeError("JobRunner.start: already started")
        self._started = True
        if self.worker_prefix.startswith(f"{self._host}:"):
            requeued = await self.store.run(self.store.requeue_abandoned, self._host)
            if requeued:
                logger.info("re-queued %d job(s) abandoned by dead workers on %s", len(requeued), self._host)
        await self._requeue_expired()
        self._wake = asyncio.Event()
        for _ in range(self.workers):
            worker_id = f"{self.worker_prefix}:{next(_slot_numbers)}"
            self._loops.append(asyncio.create_task(self._claim_loop(worker_id), name=f"job-runner {worker_id}"))
        self._loops.append(asyncio.create_task(self._lease_loop(), name="job-runner leases"))

    async def stop(self) -> None:
        """Cancel every loop and job task without finishing the jobs (they stay `running`). Safe to call twice."""
        for running in self._running.values():
            running.discard = True
        loops, self._loops = self._loops, []
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    def notify(self) -> None:
        """A job was queued: idle claim loops look for it now instead of at their next poll."""
        self._idle_until = 0.0
        if self._wake is not None:
            wake, self._wake = self._wake, asyncio.Event()
            wake.set()

    async def _idle(self) -> None:
        """Wait until the shared idle poll is due or `notify()` is called."""
        delay = self._idle_until - time.monotonic()
        if delay <= 0 or self._wake is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    @property
    def stats(self) -> RunnerStats:
        """A snapshot of the counters (see `RunnerStats`)."""
        busy = len(self._running)
        return RunnerStats(
            busy=busy,
            free=max(self.workers - busy, 0),
            expansions_total=self._expansions,
            candidates_total=self._candidates,
            verdicts_by_judge=dict(self._verdicts),
            jobs_finished_by_state=dict(self._finished),
        )

    # --- claiming and finishing -----------------------------------------------------------------------

    async def _claim_loop(self, worker_id: str) -> None:
        service = self.settings.service
        while True:
            await self._idle()
            try:
                job = await self.store.run(self.store.claim, worker_id, service.lease_s, self.kinds)
            except Exception:
                logger.exception("claiming a job failed; retrying in %.2f s", service.poll_s)
                job = None
            if job is None:
                # Every loop of this runner waits out the poll interval (or a `notify`).
                self._idle_until = max(self._idle_until, time.monotonic() + service.poll_s)
                continue
            running = _RunningJob(job, worker_id, throttle=service.event_interval_s > 0)
            running.last_heartbeat = time.monotonic()
            self._running[job.id] = running
            try:
                await self._supervise(running)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The store failed while finishing; the lease runs out and the job comes back.
                logger.exception("job %s: could not be finished", job.id)
            finally:
                self._running.pop(job.id, None)

    async def _supervise(self, running: _RunningJob) -> None:
        job = running.job
        logger.info("job %s (%s) started by %s, attempt %d", job.id, job.kind.value, running.worker_id, job.attempts)
        # `started` is written by `JobStore.claim` itself.
        running.task = asyncio.create_task(self._work(running), name=f"job {job.id}")
        flusher = asyncio.create_task(self._flush_loop(running), name=f"job {job.id} events")
        try:
            await asyncio.wait({running.task})
        except asyncio.CancelledError:
            # stop(): leave the job running in the store.
            running.discard = True
            running.task.cancel()
            running.done.set()
            await asyncio.gather(running.task, flusher, return_exceptions=True)
            raise
        task = running.task
        outcome: _Outcome | None = None
        if task.cancelled():
            if running.cancel_requested and not running.lost:
                outcome = _Outcome(JobState.CANCELLED, {"status": "cancelled", **running.partial()})
        else:
            error = task.exception()
            if error is None:
                outcome = task.result()
            else:
                logger.error("job %s failed", job.id, exc_info=error)
                outcome = _Outcome(JobState.FAILED, running.partial() or None, _error_text(error))
        if running.lost or outcome is None:
            running.discard = True
        running.done.set()
        await flusher
        if running.discard or outcome is None:
            logger.info("job %s stopped without finishing (lease lost or runner stopping)", job.id)
            return
        finished = await self.store.run(
            self.store.finish, job.id, running.worker_id, outcome.state, result=outcome.result, error=outcome.error
        )
        if finished:
            self._finished[outcome.state.value] = self._finished.get(outcome.state.value, 0) + 1
            logger.info("job %s finished %s", job.id, outcome.state.value)
        else:
            logger.warning("job %s: the store refused the finish (the lease was lost)", job.id)

    async def _flush_loop(self, running: _RunningJob) -> None:
        interval = max(self.settings.service.event_interval_s, _MIN_FLUSH_S)
        while not running.done.is_set():
            await self._flush(running)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(running.done.wait(), interval)
        await self._flush(running)  # what the job emitted while the last flush was being written

    async def _flush(self, running: _RunningJob) -> None:
        async with running.flush_lock:
            if running.discard or running.lost:
                running.pending.clear()
                running.latest_expansion = None
                return
            batch = running.take_batch()
            if not batch:
                return
            try:
                await self.store.run(self.store.append_events, running.job.id, running.worker_id, batch)
            except Exception:
                logger.exception("job %s: %d event(s) could not be stored", running.job.id, len(batch))

    # --- leases, cancellation, expiry -----------------------------------------------------------------

    async def _lease_loop(self) -> None:
        service = self.settings.service
        last_requeue = time.monotonic()
        while True:
            await asyncio.sleep(service.cancel_poll_s)
            now = time.monotonic()
            jobs = [running for running in self._running.values() if not running.done.is_set()]
            due = [running for running in jobs if now - running.last_heartbeat >= service.heartbeat_s]
            polled = [running for running in jobs if running not in due]
            # Summaries are copied here, on the loop, never read from the store's thread.
            beats = [(running, dict(running.summary)) for running in due]
            try:
                answers = await self.store.run(self._check_leases, beats, polled)
            except Exception:
                logger.exception("checking the leases failed; retrying")
                continue
            for running in due:
                running.last_heartbeat = now
            for running, owned, cancel_requested in answers:
                if running.task is None or running.task.done():
                    continue
                if not owned:
                    logger.warning("job %s: lease lost; stopping it without writing", running.job.id)
                    running.lost = True
                    running.task.cancel()
                elif cancel_requested and not running.cancel_requested:
                    logger.info("job %s: cancel requested", running.job.id)
                    running.cancel_requested = True
                    running.task.cancel()
            if now - last_requeue >= service.heartbeat_s:
                last_requeue = now
                await self._requeue_expired()

    def _check_leases(
        self, beats: Sequence[tuple[_RunningJob, dict[str, Any]]], polled: Sequence[_RunningJob]
    ) -> list[tuple[_RunningJob, bool, bool]]:
        """(job, owned, cancel requested) for each job: a heartbeat for `beats`, a read for `polled`."""
        lease_s = self.settings.service.lease_s
        answers: list[tuple[_RunningJob, bool, bool]] = []
        # One transaction for every heartbeat and one read for every poll, however many jobs run.
        renewed = self.store.heartbeats(
            [(running.job.id, running.worker_id, summary) for running, summary in beats], lease_s
        )
        for (running, _), beat in zip(beats, renewed, strict=True):
            answers.append((running, beat.owned, beat.cancel_requested))
        status = self.store.lease_status([(running.job.id, running.worker_id) for running in polled])
        for running, beat in zip(polled, status, strict=True):
            answers.append((running, beat.owned, beat.cancel_requested))
        return answers

    async def _requeue_expired(self) -> None:
        try:
            requeued = await self.store.run(self.store.requeue_expired)
        except Exception:
            logger.exception("re-queueing expired jobs failed")
            return
        if requeued:
            logger.info("re-queued %d job(s) whose lease expired: %s", len(requeued), ", ".join(requeued))

    # --- the jobs -------------------------------------------------------------------------------------

    async def _work(self, running: _RunningJob) -> _Outcome:
        kind = running.job.kind
        try:
            if kind is JobKind.PROVE:
                return await self._prove(running)
            if kind is JobKind.VERIFY:
                return await self._verify(running)
            if kind is JobKind.FORMALIZE:
                return await self._formalize(running)
        except JobRequestError as error:
            return _Outcome(JobState.FAILED, None, f"invalid request: {error}")
        raise JobRequestError(f"unknown job kind {kind!r}")  # pragma: no cover - JobKind is closed

    def _problem(self, statement: Any, header: Any, name: Any = None) -> Problem:
        from prover.statements import MINIF2F_HEADER, StatementError, theorem_from_statement

        if not isinstance(statement, str):
            raise JobRequestError("`statement` must be a string")
        if header is not None and not isinstance(header, str):
            raise JobRequestError("`header` must be a string")
        if name is not None and not isinstance(name, str):
            raise JobRequestError("`name` must be a string")
        try:
            return theorem_from_statement(
                statement,
                header=header if header is not None else MINIF2F_HEADER,
                name=name or None,
                policy=self.settings.lean.policy,
            )
        except StatementError as error:
            raise JobRequestError(str(error)) from error

    def _search_config(self, request: dict[str, Any]) -> SearchConfig:
        """The settings' search budget with the request's `expansions`, `samples` and `timeout_s`,
        each capped by `service.limits` (so is the default when the request leaves a field out)."""
        limits = self.settings.service.limits
        config = self.settings.search.to_config()
        return replace(
            config,
            max_expansions=int(_budget(request, "expansions", config.max_expansions, limits.max_expansions)),
            num_samples=int(_budget(request, "samples", config.num_samples, limits.max_samples)),
            wall_clock_s=float(_budget(request, "timeout_s", config.wall_clock_s, limits.max_timeout_s)),
        )

    async def _prove(self, running: _RunningJob) -> _Outcome:
        from search import BestFirstSearch, ExpansionDone, ProofFound, ProofRejected, SearchStatus

        request = running.job.request
        problem = self._problem(request.get("statement"), request.get("header"), request.get("name"))
        config = self._search_config(request)
        candidates_so_far = 0

        def listen(event: object) -> None:
            nonlocal candidates_so_far
            if isinstance(event, ExpansionDone):
                stats = event.stats.to_dict()
                candidates_so_far += event.candidates
                self._expansions += 1
                self._candidates += event.candidates
                running.expanded_since_best_open = True
                running.summary = {
                    "expansions": event.expansion,
                    "nodes": stats["nodes"],
                    "edges": stats["edges"],
                    "frontier": event.frontier,
                    "candidates": candidates_so_far,
                    "tactics_tried": stats["tactics_tried"],
                    "wall_seconds": stats["wall_seconds"],
                }
                running.emit(
                    "expansion",
                    {
                        "expansion": event.expansion,
                        "node": getattr(event, "node", None),
                        "parent": getattr(event, "parent", None),
                        "state": event.state,
                        "candidates": event.candidates,
                        "frontier": event.frontier,
                        "stats": stats,
                    },
                )
            elif isinstance(event, ProofFound):
                running.emit("proof_found", {"proof": event.proof, "tactics": list(event.tactics)})
            elif isinstance(event, ProofRejected):
                running.emit("proof_rejected", {"proof": event.proof, "reason": event.reason})

        search = BestFirstSearch(problem, self.env, self.generator, config, events=listen)
        running.partial = lambda: {"stats": search.stats.to_dict(), "summary": dict(running.summary)}
        running.best_open = getattr(search, "best_open", None)
        result = await search.run()
        record = result.to_dict()
        running.emit(
            "verdict",
            {
                "status": result.status.value,
                "proof": result.proof,
                "judge": result.judge,
                "reason": result.failure_reason,
            },
        )
        if result.status is SearchStatus.PROVED and result.judge:
            self._verdicts[result.judge] = self._verdicts.get(result.judge, 0) + 1
        if result.status is SearchStatus.ENV_ERROR:
            return _Outcome(JobState.FAILED, record, result.failure_reason or "the Lean backend or the model failed")
        return _Outcome(JobState.COMPLETED, record)

    async def _verify(self, running: _RunningJob) -> _Outcome:
        request = running.job.request
        items = request.get("items")
        limits = self.settings.service.limits
        if not isinstance(items, list) or not items:
            raise JobRequestError("`items` must be a non-empty list")
        if len(items) > limits.max_verify_items:
            raise JobRequestError(f"{len(items)} items is above this server's cap of {limits.max_verify_items}")
        timeout = _budget(request, "timeout_s", self.settings.search.verify_timeout_s, limits.max_timeout_s)
        done: dict[int, dict[str, Any]] = {}
        running.partial = lambda: {"items": [done[index] for index in sorted(done)]}
        slots = asyncio.Semaphore(VERIFY_CONCURRENCY)

        async def check(index: int, item: Any) -> None:
            async with slots:
                verdict = await self._verify_item(item, float(timeout))
            entry = {"index": index, **verdict}
            done[index] = entry
            running.summary = {"items_done": len(done), "items_total": len(items)}
            running.emit("item", entry)
            if verdict["status"] == "valid" and verdict["judge"]:
                self._verdicts[verdict["judge"]] = self._verdicts.get(verdict["judge"], 0) + 1

        await _gather_or_cancel([check(index, item) for index, item in enumerate(items)])
        ordered = [done[index] for index in range(len(items))]
        return _Outcome(
            JobState.COMPLETED, {"items": ordered, "all_valid": all(entry["status"] == "valid" for entry in ordered)}
        )

    async def _verify_item(self, item: Any, timeout: float) -> dict[str, Any]:
        """`{status, judge, reason}` of one item; a malformed item is `invalid_request`, never raised."""
        if not isinstance(item, dict):
            return {"status": "invalid_request", "judge": None, "reason": "an item must be an object"}
        proof = item.get("proof")
        if not isinstance(proof, str) or not proof.strip():
            return {"status": "invalid_request", "judge": None, "reason": "`proof` must be a non-empty string"}
        try:
            problem = self._problem(item.get("statement"), item.get("header"))
        except JobRequestError as error:
            return {"status": "invalid_request", "judge": None, "reason": str(error)}
        result = await self.env.verify(problem, proof, timeout)
        return {"status": result.status.value, "judge": result.judge, "reason": result.reason}

    async def _formalize(self, running: _RunningJob) -> _Outcome:
        from lean_env.errors import LeanEnvError
        from prover.informal.lean_backend import LeanSketchBackend
        from prover.informal.pipeline import formalize
        from prover.informal.prompts import PromptSet
        from prover.models.base import GenerationError

        if self.text is None:  # pragma: no cover - such a runner never claims formalize jobs
            raise JobRequestError("this worker has no text generator")
        request = running.job.request
        language = request.get("language", "lean4")
        if language != "lean4":
            raise JobRequestError(f"language {language!r}: this service formalizes in Lean 4 only")
        problem = self._problem(request.get("formal_statement"), request.get("header"))
        informal_statement = request.get("informal_statement")
        informal_proof = request.get("informal_proof")
        if not isinstance(informal_statement, str) or not informal_statement.strip():
            raise JobRequestError("`informal_statement` must be a non-empty string")
        if informal_proof is not None and not isinstance(informal_proof, str):
            raise JobRequestError("`informal_proof` must be a string")
        problem = replace(problem, informal_statement=informal_statement, informal_proof=informal_proof)
        settings = self.settings
        config = settings.informal.to_config()
        try:
            prompts = (
                PromptSet.default()
                if settings.informal.prompts is None
                else PromptSet.from_file(settings.informal.prompts)
            )
        except (OSError, ValueError) as error:
            raise JobRequestError(f"informal.prompts: {error}") from error
        backend = LeanSketchBackend(self.env, self.generator, self._search_config(request), config)
        try:
            result = await formalize(problem, self.text, backend, config, prompts=prompts)
        except (GenerationError, LeanEnvError) as error:
            logger.warning("job %s: formalizing failed: %s", running.job.id, error)
            return _Outcome(JobState.FAILED, None, _error_text(error))
        finally:
            await backend.close()
        record = result.to_dict()
        proof, judge = result.proof, result.judge
        running.emit(
            "verdict",
            {
                "status": "proved" if result.proved else "failed",
                "proof": proof,
                "judge": judge,
                "reason": None if result.proved else "no attempt verified",
            },
        )
        if judge:
            self._verdicts[judge] = self._verdicts.get(judge, 0) + 1
        return _Outcome(JobState.COMPLETED, record)


async def _gather_or_cancel(coroutines: Collection[Any]) -> None:
    """Run `coroutines` together; the first exception (or a cancellation) cancels the rest and propagates."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""Distributed evaluation with Ray: problems spread over Ray workers, each with its own Lean pool.

The run itself is `runner.run_problems`, the same lanes, skipping, durable records, events and abort
rule as a local run; this module only supplies its `AttemptProblem`, which dispatches a problem to
a worker actor (`_WorkerPool.attempt`). The driver (the process running `prover eval`) owns the
results file: workers return records and the driver writes them, so a distributed run streams into
the same `results.jsonl` and resumes the same way as a local one. Each worker is an async Ray actor
running up to `concurrency_per_worker` searches at once over a Lean backend it builds itself
(`env_factory`). The model is either one generator per node, hosted by an actor pinned to that node
and shared by the node's workers (a GPU model), or one generator per worker (a client of a remote
OpenAI-compatible server that is already shared).

A worker that dies (its process crashed, its node was lost) is replaced while the restart
allowance lasts, and only the problem whose work killed it is charged an attempt. A death with
several problems in flight says nothing about which one caused it, so each of them becomes a
suspect and is re-run alone: on a worker with no other work beside it, one suspect at a time per
worker. A problem is charged an attempt only when a worker dies while it is the only problem on
it; after `max_attempts` charged attempts it is recorded as `env_error`. An innocent problem that
shared a worker with a killer is therefore re-run, never charged, and recorded normally.

Ray is imported only when a distributed run starts. Search-level events stay in the workers; the
driver publishes the problem-level ones (`prover.evaluation.events`), plus `WorkerLost`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lean_env.errors import MissingDependency
from lean_env.protocol import LeanEnv
from lean_env.types import Problem, ProofState
from prover.evaluation.events import ProblemStarted, WorkerLost
from prover.evaluation.results import EvalRecord, ResultsWriter
from prover.evaluation.runner import (
    EvalAborted,
    EvalOutcome,
    env_error_record,
    plan,
    prove_problem,
    run_problems,
)
from search.events import EventListener, publish
from search.types import GenerationRequest, SearchConfig, TacticCandidate, TacticGenerator

logger = logging.getLogger(__name__)

EnvFactory = Callable[[], LeanEnv]
"""Builds a worker's Lean backend inside the worker process; must be picklable (e.g. a `functools.partial`)."""
GeneratorFactory = Callable[[], TacticGenerator]
"""Builds a tactic generator inside the process that hosts it; must be picklable."""


@dataclass(frozen=True, slots=True)
class RayOptions:
    """How a distributed evaluation uses the Ray cluster."""

    address: str | None = None
    """Cluster to join (`auto`, `ray://host:10001`); None starts a local Ray instance. Ignored when Ray is
    already initialised in this process."""
    workers: int = 2
    """Worker actors, each with its own Lean pool."""
    concurrency_per_worker: int = 8
    """Searches in flight in one worker."""
    generator_mode: Literal["node", "worker"] = "node"
    """`node`: one generator per node shared by its workers; `worker`: each worker builds its own."""
    generator_num_gpus: float = 1.0
    """GPUs reserved by each per-node generator actor (0 for a CPU model)."""
    worker_num_cpus: float = 1.0
    """CPUs reserved by each worker actor (its Lean processes run inside its reservation)."""
    max_attempts: int = 3
    """Charged attempts of one problem (a worker died while it ran alone) before it is recorded as `env_error`."""
    max_worker_restarts: int | None = None
    """Replacement workers started after losses; None means `2 * workers`."""
    init_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra arguments of `ray.init` when this run starts Ray itself."""

    def __post_init__(self) -> None:
        for name in ("workers", "concurrency_per_worker", "max_attempts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RayOptions.{name}: must be an integer >= 1, got {value!r}")
        if self.generator_mode not in ("node", "worker"):
            raise ValueError(f"RayOptions.generator_mode: must be 'node' or 'worker', got {self.generator_mode!r}")
        if self.max_worker_restarts is not None and self.max_worker_restarts < 0:
            raise ValueError(f"RayOptions.max_worker_restarts: must be >= 0 or None, got {self.max_worker_restarts}")


def _portable(request: GenerationRequest) -> GenerationRequest:
    # Backend handles (a REPL state id, a LeanDojo TacticState) mean nothing in another process and
    # may not pickle; the generator reads only the text.
    return dataclasses.replace(request, state=ProofState(pp=request.state.pp, goals=request.state.goals))


class RemoteGenerator:
    """A `TacticGenerator` that forwards to a generator hosted by a Ray actor (`GeneratorHost`)."""

    def __init__(self, host: Any) -> None:
        self._host = host

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        result: list[list[TacticCandidate]] = await self._host.generate.remote([_portable(r) for r in requests])
        return result

    async def close(self) -> None:
        return None  # the host belongs to the driver, which closes it once every worker is done


class GeneratorHost:
    """Ray actor body: one generator per node, shared by that node's workers (their calls merge into batches)."""

    def __init__(self, generator_factory: GeneratorFactory) -> None:
        self._factory = generator_factory
        self._generator: TacticGenerator | None = None
        self._lock: asyncio.Lock | None = None

    async def _ensure(self) -> TacticGenerator:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._generator is None:
                # Loading a model blocks for a long time; keep the actor's event loop responsive.
                self._generator = await asyncio.to_thread(self._factory)
        return self._generator

    async def generate(self, requests: list[GenerationRequest]) -> list[list[TacticCandidate]]:
        generator = await self._ensure()
        return await generator.generate(requests)

    async def ready(self) -> bool:
        await self._ensure()
        return True

    async def close(self) -> None:
        if self._generator is not None:
            await self._generator.close()
            self._generator = None


class EvalWorker:
    """Ray actor body: a Lean backend and a generator (local or the node's host) running searches."""

    def __init__(
        self, env_factory: EnvFactory, generator_factory: GeneratorFactory | None, config: SearchConfig
    ) -> None:
        self._env_factory = env_factory
        self._generator_factory = generator_factory
        self._config = config
        self._env: LeanEnv | None = None
        self._generator: TacticGenerator | None = None
        self._host: Any = None
        self._lock: asyncio.Lock | None = None
        self._name = f"ray:{_node_ip()}:{os.getpid()}"

    def name(self) -> str:
        return self._name

    def node_id(self) -> str:
        import ray

        node: str = ray.get_runtime_context().get_node_id()
        return node

    def attach_generator(self, host: Any) -> None:
        self._host = host

    async def _ensure(self) -> tuple[LeanEnv, TacticGenerator]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._env is None:
                self._env = self._env_factory()
            if self._generator is None:
                if self._host is not None:
                    self._generator = RemoteGenerator(self._host)
                elif self._generator_factory is not None:
                    self._generator = await asyncio.to_thread(self._generator_factory)
                else:
                    raise RuntimeError("EvalWorker: no generator attached and no generator factory")
        return self._env, self._generator

    async def prove(self, problem: Problem, attempts: int) -> dict[str, Any]:
        env, generator = await self._ensure()
        record = await prove_problem(problem, env, generator, self._config, worker=self._name, attempts=attempts)
        return record.model_dump(mode="json")

    async def close(self) -> None:
        if self._generator is not None:
            await self._generator.close()
            self._generator = None
        if self._env is not None:
            await self._env.close()
            self._env = None


def _node_ip() -> str:
    try:
        import ray.util

        address: str = ray.util.get_node_ip_address()
        return address
    except Exception:  # informational only
        return "unknown"


class _Worker:
    """The driver's view of one worker actor: what runs on it now."""

    def __init__(self, number: int, handle: Any, name: str) -> None:
        self.number = number
        self.handle = handle
        self.name = name
        self.in_flight: set[str] = set()
        self.alone = False
        """Running one suspect with nothing beside it."""
        self.draining = False
        """Reserved for a suspect: takes no new work until what runs on it is done."""
        self.died_with: frozenset[str] | None = None
        """The problems in flight when its death was first noticed (None while it lives)."""


class _WorkerPool:
    """The Ray workers of one run, and the `AttemptProblem` that dispatches to them (`attempt`).

    Placement: an ordinary problem goes to the live worker with the fewest problems in flight
    among those with a free slot and no suspect on or waiting for it. A suspect (a problem that
    was in flight when its worker died beside others) waits for a worker with nothing in flight:
    for each waiting suspect one worker is reserved (`draining`) until it empties.
    """

    def __init__(
        self,
        ray: Any,
        env_factory: EnvFactory,
        generator_factory: GeneratorFactory,
        config: SearchConfig,
        options: RayOptions,
        events: EventListener | None,
    ) -> None:
        self.ray = ray
        self.env_factory = env_factory
        self.generator_factory = generator_factory
        self.config = config
        self.options = options
        self.events = events
        self.workers: dict[int, _Worker] = {}
        self.hosts: dict[str, Any] = {}
        self.starting = 0
        """Workers spawned whose activation has not finished."""
        self.suspects_waiting = 0
        self.changed = asyncio.Condition()
        self.background: set[asyncio.Task[None]] = set()
        self.next_number = 0
        self.restarts_left = (
            options.max_worker_restarts if options.max_worker_restarts is not None else 2 * options.workers
        )
        self.actor_errors: tuple[type[BaseException], ...] = (ray.exceptions.RayActorError,)
        self.task_error: type[BaseException] = ray.exceptions.RayTaskError

    # Workers: starting, losing, replacing.

    def start(self) -> None:
        """Spawn every worker at once, so their processes (and Lean pools) start in parallel."""
        for _ in range(self.options.workers):
            self._spawn()

    def _spawn(self) -> None:
        worker_cls = self.ray.remote(EvalWorker).options(
            num_cpus=self.options.worker_num_cpus,
            max_concurrency=self.options.concurrency_per_worker + 4,
            max_restarts=0,
            scheduling_strategy="SPREAD",
        )
        per_worker = self.generator_factory if self.options.generator_mode == "worker" else None
        handle = worker_cls.remote(self.env_factory, per_worker, self.config)
        self.starting += 1
        task = asyncio.create_task(self._activate(handle))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _activate(self, handle: Any) -> None:
        """Give a spawned worker its node's generator (per-node mode), then open it to work."""
        try:
            if self.options.generator_mode == "node":
                node = await handle.node_id.remote()
                await handle.attach_generator.remote(self._host_for(node))
            name = await handle.name.remote()
        except self.actor_errors as error:
            logger.warning("a Ray worker died while starting: %s", error)
            async with self.changed:
                self.starting -= 1
                self._replace()
                self.changed.notify_all()
            return
        except BaseException:
            async with self.changed:
                self.starting -= 1
                self.changed.notify_all()
            raise
        async with self.changed:
            self.starting -= 1
            number = self.next_number
            self.next_number += 1
            self.workers[number] = _Worker(number, handle, name)
            self.changed.notify_all()

    def _host_for(self, node: str) -> Any:
        host = self.hosts.get(node)
        if host is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            host_cls = self.ray.remote(GeneratorHost).options(
                num_cpus=0,
                num_gpus=self.options.generator_num_gpus,
                max_concurrency=1000,
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
            )
            host = host_cls.remote(self.generator_factory)
            self.hosts[node] = host
        return host

    def _replace(self) -> None:
        if self.restarts_left > 0:
            self.restarts_left -= 1
            self._spawn()

    def _lost(self, worker: _Worker) -> frozenset[str]:
        """Note `worker`'s death (once) and start a replacement; returns what was in flight on it."""
        if worker.died_with is None:
            worker.died_with = frozenset(worker.in_flight)
            self.workers.pop(worker.number, None)
            try:
                self.ray.kill(worker.handle, no_restart=True)
            except Exception:  # already gone
                pass
            self._replace()
        return worker.died_with

    # Placement.

    def _placeable(self, alone: bool) -> _Worker | None:
        live = sorted(self.workers.values(), key=lambda w: (len(w.in_flight), w.number))
        if alone:
            for worker in live:
                if not worker.in_flight and not worker.alone:
                    return worker
            reserved = sum(1 for w in live if w.draining)
            if reserved < self.suspects_waiting:
                candidates = [w for w in live if not w.draining and not w.alone]
                if candidates:
                    candidates[0].draining = True
            return None
        for worker in live:
            if not worker.alone and not worker.draining and len(worker.in_flight) < self.options.concurrency_per_worker:
                return worker
        return None

    async def _acquire(self, name: str, alone: bool) -> _Worker:
        async with self.changed:
            if alone:
                self.suspects_waiting += 1
            try:
                while True:
                    worker = self._placeable(alone)
                    if worker is not None:
                        break
                    if not self.workers and not self.starting:
                        raise EvalAborted(
                            "every Ray worker was lost and no restart is left; finished problems are saved, "
                            "resume to continue"
                        )
                    await self.changed.wait()
            finally:
                if alone:
                    self.suspects_waiting -= 1
            if alone:
                worker.alone, worker.draining = True, False
            worker.in_flight.add(name)
            return worker

    async def _release(self, worker: _Worker, name: str) -> None:
        async with self.changed:
            worker.in_flight.discard(name)
            if worker.alone and not worker.in_flight:
                worker.alone = False
            self.changed.notify_all()

    # The attempt.

    async def attempt(self, problem: Problem) -> EvalRecord:
        """Run `problem` on some worker until it has a record; see the module docstring for charging."""
        charged = 0
        suspect = False
        while True:
            worker = await self._acquire(problem.name, alone=suspect)
            try:
                data = await worker.handle.prove.remote(problem, charged + 1)
            except self.actor_errors as error:
                async with self.changed:
                    died_with = self._lost(worker)
                    self.changed.notify_all()
                alone = died_with == {problem.name}
                if alone:
                    charged += 1
                self._publish(WorkerLost(worker.name, tuple(sorted(died_with)), problem.name if alone else None))
                if not alone:
                    logger.warning(
                        "Ray worker %s died with %d problems in flight; re-running %s alone",
                        worker.name,
                        len(died_with),
                        problem.name,
                    )
                    suspect = True
                    continue
                if charged >= self.options.max_attempts:
                    logger.error("giving up on %s: it killed its Ray worker %d times", problem.name, charged)
                    return env_error_record(
                        problem,
                        f"Ray worker lost {charged} times while running it alone; "
                        f"last: {type(error).__name__}: {error}",
                        worker=worker.name,
                        attempts=charged,
                    )
                logger.warning("%s killed its Ray worker (attempt %d); trying it again alone", problem.name, charged)
                suspect = True
                self._publish(ProblemStarted(problem.name, charged + 1))
                continue
            except self.task_error as error:
                cause = getattr(error, "cause", None)
                if isinstance(cause, MissingDependency):
                    raise cause from None
                return env_error_record(
                    problem,
                    f"Ray worker failed: {cause!r}" if cause else str(error),
                    worker=worker.name,
                    attempts=charged + 1,
                )
            finally:
                await self._release(worker, problem.name)
            return EvalRecord.model_validate(data)

    def _publish(self, event: object) -> None:
        publish(self.events, event)

    async def shutdown(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        handles = [worker.handle for worker in self.workers.values()]
        closing = [handle.close.remote() for handle in handles]
        closing += [host.close.remote() for host in self.hosts.values()]
        if closing:
            try:
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout=60)
            except TimeoutError:
                logger.warning("some Ray workers did not close within 60 s; killing them")
        for handle in [*handles, *self.hosts.values()]:
            try:
                self.ray.kill(handle, no_restart=True)
            except Exception:
                pass


async def run_distributed(
    problems: Sequence[Problem],
    *,
    env_factory: EnvFactory,
    generator_factory: GeneratorFactory,
    search: SearchConfig,
    options: RayOptions,
    writer: ResultsWriter | None = None,
    skip: Collection[str] = (),
    events: EventListener | None = None,
    max_consecutive_env_errors: int | None = None,
) -> EvalOutcome:
    """Like `runner.run_evaluation`, over Ray workers: same runner, records, results file, resume and events.

    Starts Ray (`options.address`) unless it is already initialised, and shuts it down again only if it
    started it. Raises `MissingDependency` when Ray is not installed or a worker lacks Lean or the model,
    and `EvalAborted` when too many problems in a row fail or every worker is lost.
    """
    try:
        import ray
    except ImportError as error:
        raise MissingDependency("Ray", "Install it with: pip install 'llemma-prover[ray]'") from error
    todo, _ = plan(problems, skip)
    if not todo:  # everything already recorded: no cluster needed
        return await run_problems(problems, _nothing_to_attempt, concurrency=1, skip=skip, events=events)
    started_ray = False
    if not ray.is_initialized():
        await asyncio.to_thread(ray.init, address=options.address, **dict(options.init_kwargs))
        started_ray = True
    pool = _WorkerPool(ray, env_factory, generator_factory, search, options, events)
    try:
        pool.start()
        return await run_problems(
            problems,
            pool.attempt,
            concurrency=options.workers * options.concurrency_per_worker,
            writer=writer,
            skip=skip,
            events=events,
            max_consecutive_env_errors=max_consecutive_env_errors,
        )
    finally:
        await pool.shutdown()
        if started_ray:
            ray.shutdown()


async def _nothing_to_attempt(problem: Problem) -> EvalRecord:
    raise AssertionError(f"{problem.name}: nothing should be attempted in a run with everything skipped")

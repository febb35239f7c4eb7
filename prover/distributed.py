"""Distributed evaluation with Ray: theorems spread over Ray workers, each with its own Lean pool.

The driver (the process running `prover eval`) owns the results file: workers return records and the
driver writes them, so a distributed run streams into the same `results.jsonl` and resumes the same
way as a local one. Each worker is an async Ray actor running up to `concurrency_per_worker` searches
at once over a Lean backend it builds itself (`env_factory`). The model is either one generator per
node, hosted by an actor pinned to that node and shared by the node's workers (a GPU model), or one
generator per worker (a client of a remote OpenAI-compatible server that is already shared).

A worker that dies (its process crashed, its node was lost) has its in-flight theorems put back in
the queue and tried on another worker, up to `max_attempts` times each; a replacement worker is
started while the restart allowance lasts. Ray is imported only when a distributed run starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lean_env.errors import MissingDependency
from lean_env.protocol import LeanEnv
from lean_env.types import ProofState, Theorem
from prover.evaluation.results import EvalRecord, ResultsWriter
from prover.evaluation.runner import (
    EvalAborted,
    EvalObserver,
    EvalOutcome,
    env_error_record,
    prove_problem,
    unique_problems,
)
from prover.minif2f.dataset import Problem
from search.types import GenerationRequest, SearchConfig, SearchStatus, TacticCandidate, TacticGenerator

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
    """Times one theorem is tried before a lost worker is recorded as its `env_error`."""
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


def _portable(request: GenerationRequest) -> GenerationRequest:
    # Backend handles (a REPL state id, a LeanDojo TacticState) mean nothing in another process and
    # may not pickle; the generator reads only the text.
    state = ProofState(pp=request.state.pp, goals=request.state.goals)
    theorem = request.theorem
    if theorem is not None and theorem.location is not None:
        theorem = Theorem(name=theorem.name, header=theorem.header, formal_statement=theorem.formal_statement)
    return GenerationRequest(state=state, num_samples=request.num_samples, theorem=theorem)


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


class _Driver:
    """The driver's side of one distributed run: the queue, the workers, the results."""

    def __init__(
        self,
        ray: Any,
        todo: list[Problem],
        env_factory: EnvFactory,
        generator_factory: GeneratorFactory,
        config: SearchConfig,
        options: RayOptions,
        writer: ResultsWriter | None,
        observer: EvalObserver | None,
        max_consecutive_env_errors: int | None,
    ) -> None:
        self.ray = ray
        self.env_factory = env_factory
        self.generator_factory = generator_factory
        self.config = config
        self.options = options
        self.writer = writer
        self.observer = observer
        self.max_errors = max_consecutive_env_errors
        self.queue: asyncio.Queue[tuple[Problem, int]] = asyncio.Queue()
        for problem in todo:
            self.queue.put_nowait((problem, 1))
        self.remaining = len(todo)
        self.done = asyncio.Event()
        if not todo:
            self.done.set()
        self.failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.records: list[EvalRecord] = []
        self.consecutive_errors = 0
        self.workers: dict[int, Any] = {}
        self.lost: set[int] = set()
        self.hosts: dict[str, Any] = {}
        self.lanes: set[asyncio.Task[None]] = set()
        self.next_worker_id = 0
        self.restarts_left = (
            options.max_worker_restarts if options.max_worker_restarts is not None else 2 * options.workers
        )
        self.actor_errors: tuple[type[BaseException], ...] = (ray.exceptions.RayActorError,)
        self.task_error: type[BaseException] = ray.exceptions.RayTaskError

    def spawn_worker(self) -> Any:
        """Create a worker actor (its process starts in the background)."""
        worker_cls = self.ray.remote(EvalWorker).options(
            num_cpus=self.options.worker_num_cpus,
            max_concurrency=self.options.concurrency_per_worker + 4,
            max_restarts=0,
            scheduling_strategy="SPREAD",
        )
        per_worker = self.generator_factory if self.options.generator_mode == "worker" else None
        return worker_cls.remote(self.env_factory, per_worker, self.config)

    async def activate_worker(self, handle: Any) -> None:
        """Give a spawned worker its node's generator (per-node mode) and start feeding it theorems."""
        if self.options.generator_mode == "node":
            node = await handle.node_id.remote()
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
            await handle.attach_generator.remote(host)
        worker_id = self.next_worker_id
        self.next_worker_id += 1
        self.workers[worker_id] = handle
        for _ in range(self.options.concurrency_per_worker):
            task = asyncio.create_task(self.lane(worker_id, handle))
            self.lanes.add(task)
            task.add_done_callback(self.lanes.discard)

    async def lane(self, worker_id: int, handle: Any) -> None:
        try:
            while not self.done.is_set():
                problem, attempt = await self.queue.get()
                if worker_id in self.lost:  # this worker died while the lane waited: hand the theorem on
                    self.queue.put_nowait((problem, attempt))
                    return
                if self.observer is not None and attempt == 1:
                    self.observer.on_theorem_start(problem.name)
                try:
                    data = await handle.prove.remote(problem, attempt)
                except self.actor_errors as error:
                    await self.worker_lost(worker_id, problem, attempt, error)
                    return
                except self.task_error as error:
                    cause = getattr(error, "cause", None)
                    if isinstance(cause, MissingDependency):
                        raise cause from None
                    await self.finish(
                        env_error_record(
                            problem, f"Ray worker failed: {cause!r}" if cause else str(error), attempts=attempt
                        )
                    )
                    continue
                await self.finish(EvalRecord.model_validate(data))
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            if not self.failure.done():
                self.failure.set_exception(error)

    async def worker_lost(self, worker_id: int, problem: Problem, attempt: int, error: BaseException) -> None:
        if attempt >= self.options.max_attempts:
            logger.error("giving up on %s: its Ray worker was lost %d times", problem.name, attempt)
            await self.finish(
                env_error_record(
                    problem,
                    f"Ray worker lost {attempt} times while proving it; last: {type(error).__name__}: {error}",
                    attempts=attempt,
                )
            )
        else:
            logger.warning("Ray worker lost while proving %s; trying it again elsewhere", problem.name)
            self.queue.put_nowait((problem, attempt + 1))
        if worker_id in self.lost:
            return
        self.lost.add(worker_id)
        handle = self.workers.pop(worker_id, None)
        if handle is not None:
            try:
                self.ray.kill(handle, no_restart=True)
            except Exception:  # already gone
                pass
        if self.restarts_left > 0 and not self.done.is_set():
            self.restarts_left -= 1
            await self.activate_worker(self.spawn_worker())
        elif not self.workers and not self.done.is_set():
            raise EvalAborted(
                "every Ray worker was lost and no restart is left; finished theorems are saved, resume to continue",
                self.records,
            )

    async def finish(self, record: EvalRecord) -> None:
        if self.writer is not None:
            await asyncio.to_thread(self.writer.write, record)
        self.records.append(record)
        self.remaining -= 1
        if self.observer is not None:
            self.observer.on_theorem_done(record)
        if self.remaining <= 0:
            self.done.set()
        self.consecutive_errors = self.consecutive_errors + 1 if record.status == SearchStatus.ENV_ERROR.value else 0
        if self.max_errors is not None and self.consecutive_errors >= self.max_errors:
            raise EvalAborted(
                f"stopped after {self.consecutive_errors} theorems in a row failed with an infrastructure error; "
                f"last: {record.name}: {record.failure_reason}",
                self.records,
            )

    async def run(self) -> None:
        # Spawn every worker before waiting on any, so their processes (and Lean pools) start in parallel.
        handles = [self.spawn_worker() for _ in range(self.options.workers)]
        for handle in handles:
            await self.activate_worker(handle)
        waiter = asyncio.ensure_future(self.done.wait())
        watched: list[asyncio.Future[Any]] = [waiter, self.failure]
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self.failure.done():
            self.failure.result()

    async def shutdown(self) -> None:
        for task in list(self.lanes):
            task.cancel()
        await asyncio.gather(*self.lanes, return_exceptions=True)
        closing = [handle.close.remote() for handle in self.workers.values()]
        closing += [host.close.remote() for host in self.hosts.values()]
        if closing:
            try:
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout=60)
            except TimeoutError:
                logger.warning("some Ray workers did not close within 60 s; killing them")
        for handle in [*self.workers.values(), *self.hosts.values()]:
            try:
                self.ray.kill(handle, no_restart=True)
            except Exception:
                pass


async def run_distributed(
    problems: Sequence[Problem | Theorem],
    *,
    env_factory: EnvFactory,
    generator_factory: GeneratorFactory,
    search: SearchConfig,
    options: RayOptions,
    writer: ResultsWriter | None = None,
    skip: Collection[str] = (),
    observer: EvalObserver | None = None,
    max_consecutive_env_errors: int | None = None,
) -> EvalOutcome:
    """Like `runner.run_evaluation`, over Ray workers: same records, same results file, same resume.

    Starts Ray (`options.address`) unless it is already initialised, and shuts it down again only if it
    started it. Raises `MissingDependency` when Ray is not installed or a worker lacks Lean or the model,
    and `EvalAborted` when too many theorems in a row fail or every worker is lost.
    """
    try:
        import ray
    except ImportError as error:
        raise MissingDependency("Ray", "Install it with: pip install 'llemma-prover[ray]'") from error
    items = unique_problems(problems)
    skipped = tuple(problem.name for problem in items if problem.name in skip)
    todo = [problem for problem in items if problem.name not in skip]
    if observer is not None:
        observer.on_start(len(todo), len(skipped))
    loop = asyncio.get_running_loop()
    started = loop.time()
    if not todo:  # everything already recorded: no cluster needed
        return EvalOutcome(records=(), skipped=skipped, wall_seconds=0.0)
    started_ray = False
    if not ray.is_initialized():
        await asyncio.to_thread(ray.init, address=options.address, **dict(options.init_kwargs))
        started_ray = True
    driver = _Driver(
        ray, todo, env_factory, generator_factory, search, options, writer, observer, max_consecutive_env_errors
    )
    try:
        await driver.run()
    except EvalAborted as error:
        raise EvalAborted(str(error), driver.records) from None
    finally:
        await driver.shutdown()
        if started_ray:
            ray.shutdown()
    return EvalOutcome(records=tuple(driver.records), skipped=skipped, wall_seconds=loop.time() - started)

"""A pool of REPL workers keyed by import header.

Each worker elaborates one header (`import Mathlib` plus the `open` lines) once, at start, and
serves every theorem with that header from the resulting environment. At most `config.workers`
processes run at once, across headers; when the pool is full and only workers of another header
are idle, one of those is replaced.

Leases: `acquire(header)` hands out an idle worker of that header (starting one when there is
room) or waits, first come first served; `acquire(header, pinned=worker)` waits for that exact
worker, because proof states live inside one process; `try_acquire(header)` takes an idle worker
only if one is idle right now and nobody waits (sessions run a tactic there while their own worker
is busy), and `idle_signal(header)` tells when one turns idle. A wait longer than `acquire_timeout_s`
raises `PoolExhausted` (back-pressure; time spent waiting for a worker being started for the
caller is not counted against it). `release` returns the worker; it is recycled instead when it
has served `max_requests_per_worker` requests, when its resident memory passes the limit, or when
it died. Waiters pinned to a worker that goes away get `WorkerGone` and replay elsewhere.

Memory. Each worker's resident memory (not its address space: Mathlib's `.olean` files are
memory-mapped) is measured by a watchdog while a request runs and after every `memory_check_every`
requests; a worker past `max_worker_memory_mb` is recycled at its next release, one past
`memory_kill_ratio` times that is killed mid-request (`lean_env.repl.process`).

Cancelled requests (the search found a proof and cancels the tactics still running elsewhere). A
released worker whose request is still on the wire is not handed out until that request's reply has
been read and dropped: a reply of the cancelled command read as the answer to the next one would be a
soundness bug, so the wire, not the lease, decides. The reply is awaited for at most `cancel_drain_s`
(most tactics answer within it, and the worker then goes back with its proof states intact); past
that the process is killed and replaced like a recycled one, so a cancelled slow tactic holds its slot
for `cancel_drain_s` plus a restart, never for the rest of its own timeout. Killing at once would free
the slot no sooner (the replacement elaborates the header again) and would lose every session's
states on that worker.

Retired workers are replaced at once (the next request should not wait for `import Mathlib`);
after crashes and failed starts the replacement waits `restart_backoff_s`, doubling per
consecutive failure up to `max_restart_backoff_s`.

Verification workers (`acquire_fresh`, `discard`) are apart from all of that: a whole-proof check
elaborates untrusted text, and code run while elaborating can write to the process's output or
leave state behind, so each check gets a process that has elaborated only the header, served
nobody, and is never handed out again. To keep checks from waiting for `import Mathlib`, up to
`verify_spares` such workers per header are started ahead (from the header alone: a warm template
in the sense that nothing but the header ran in it) and each one taken is replaced in the
background; at most `max_verify_workers` exist at once, beyond `workers`. Sessions, `check` and
`try_acquire` never see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import statistics
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Any

from lean_env.errors import BackendCrashed, BackendStartError, PoolExhausted
from lean_env.repl.config import ReplConfig
from lean_env.repl.process import ReplProcess

logger = logging.getLogger(__name__)


class WorkerGone(BackendCrashed):
    """The worker a caller was pinned to was recycled, killed or crashed; its proof states are gone."""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of the pool's counters (cumulative since the pool was built) and its occupancy."""

    workers: int
    busy: int
    starting: int
    waiting: int
    requests: int
    timeouts: int
    crashes: int
    starts: int
    restarts: int
    start_failures: int
    recycled: int
    acquire_timeouts: int
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    verify_workers: int = 0
    """Verification workers alive now (spares, starting, checking)."""
    verify_starts: int = 0
    """Verification workers started so far (one per check, plus the spares still waiting)."""
    verify_requests: int = 0
    """Requests sent to verification workers (not counted in `requests` and the latency figures)."""


@dataclass(eq=False, slots=True)
class _Waiter:
    seq: int
    header: str
    future: asyncio.Future[ReplProcess]


class ReplPool:
    """Up to `config.workers` REPL processes shared by every session and verification.

    Safe to build outside an event loop; processes start on first use (or `warm_up`). All
    methods must be called from one event loop.
    """

    def __init__(self, config: ReplConfig) -> None:
        self.config = config
        self._workers: list[ReplProcess] = []
        self._starting: dict[str, int] = {}
        self._waiters: dict[str, deque[_Waiter]] = {}
        self._pinned: dict[ReplProcess, deque[_Waiter]] = {}
        self._idle_signals: dict[str, asyncio.Future[None]] = {}
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[object]] = set()
        self._closed = False
        self._failures = 0
        self._latencies: deque[float] = deque(maxlen=4096)
        self._latency_sum = 0.0
        self._requests = 0
        self._timeouts = 0
        self._crashes = 0
        self._starts = 0
        self._restarts = 0
        self._start_failures = 0
        self._recycled = 0
        self._acquire_timeouts = 0
        # Verification workers: ready spares per header, starts in flight, callers waiting, all alive.
        self._spares: dict[str, deque[ReplProcess]] = {}
        self._fresh_starting: dict[str, int] = {}
        self._fresh_waiters: dict[str, deque[asyncio.Future[ReplProcess]]] = {}
        self._fresh: set[ReplProcess] = set()
        self._fresh_starts = 0
        self._verify_requests = 0

    # -- leases ---------------------------------------------------------------------------------

    async def acquire(
        self, header: str, *, pinned: ReplProcess | None = None, timeout: float | None = None
    ) -> ReplProcess:
        """A worker with `header` elaborated, leased to the caller until `release`.

        With `pinned`, exactly that worker (raises `WorkerGone` if it is or goes away).
        Raises `PoolExhausted` after `timeout` (default `acquire_timeout_s`) of waiting and
        `BackendStartError` when a worker started for this header fails to start.
        """
        if self._closed:
            raise BackendCrashed("the Lean REPL pool is closed")
        wait_s = self.config.acquire_timeout_s if timeout is None else timeout
        if pinned is not None:
            if not self._usable(pinned):
                raise WorkerGone(f"Lean REPL worker {pinned.id} is gone ({pinned.death or 'recycled'})")
            if not pinned.leased:
                pinned.leased = True
                return pinned
            waiter = self._new_waiter(header)
            self._pinned.setdefault(pinned, deque()).append(waiter)
        else:
            idle = self._idle_worker(header)
            if idle is not None:
                idle.leased = True
                return idle
            waiter = self._new_waiter(header)
            self._waiters.setdefault(header, deque()).append(waiter)
            self._ensure_capacity()
            if self._starting.get(header, 0) > 0:
                # A worker is being started for this header: that is start-up, not back-pressure.
                wait_s += self.config.start_timeout_s + self._backoff()
        return await self._wait(waiter, wait_s)

    def try_acquire(self, header: str, *, prefer: Collection[ReplProcess] = ()) -> ReplProcess | None:
        """An idle worker of `header` leased to the caller now, or None; never waits and never starts one.

        Returns None while any caller waits for a worker (of any header): the idle workers then
        belong to those callers (hand-off or replacement), so this never takes one from a waiter.
        Among idle workers, one in `prefer` is chosen first, then the least used.
        """
        if self._closed or any(self._head(q) is not None for q in self._waiters.values()):
            return None
        best: ReplProcess | None = None
        for worker in self._workers:
            usable = worker.header == header and not worker.leased and not worker.retiring and worker.alive
            if not usable or self._head(self._pinned.get(worker)) is not None:
                continue
            if best is None or (worker not in prefer, worker.requests) < (best not in prefer, best.requests):
                best = worker
        if best is not None:
            best.leased = True
        return best

    def idle_signal(self, header: str) -> asyncio.Future[None]:
        """A future that completes the next time a worker of `header` is left idle (or the pool closes).

        Lets a caller that waits for one exact worker notice another one it could `try_acquire`.
        """
        signal = self._idle_signals.get(header)
        if signal is None or signal.done():
            signal = asyncio.get_running_loop().create_future()
            self._idle_signals[header] = signal
        return signal

    def release(self, worker: ReplProcess) -> None:
        """Give a leased worker back. If a request is still on the wire, the release happens when it ends."""
        inflight = worker.inflight
        if inflight is not None and not inflight.done():
            inflight.add_done_callback(lambda _: self._release_now(worker))
            return
        self._release_now(worker)

    @contextlib.asynccontextmanager
    async def lease(self, header: str, *, pinned: ReplProcess | None = None) -> AsyncIterator[ReplProcess]:
        """`acquire` and `release` around a block."""
        worker = await self.acquire(header, pinned=pinned)
        try:
            yield worker
        finally:
            self.release(worker)

    async def warm_up(self, header: str, workers: int | None = None) -> None:
        """Start workers for `header` now (up to `workers`, default the pool size), so searches need not wait."""
        want = min(self.config.workers if workers is None else workers, self.config.workers)
        have = sum(1 for w in self._workers if w.header == header) + self._starting.get(header, 0)
        total = len(self._workers) + sum(self._starting.values())
        tasks = [self._spawn(header, 0.0) for _ in range(max(0, min(want - have, self.config.workers - total)))]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def stats(self) -> PoolStats:
        """Counters of requests, timeouts, crashes, restarts, recycling, back-pressure and latency."""
        latencies = sorted(self._latencies)
        count = self._requests

        def quantile(q: float) -> float:
            if not latencies:
                return 0.0
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

        return PoolStats(
            workers=len(self._workers),
            busy=sum(1 for w in self._workers if w.leased),
            starting=sum(self._starting.values()),
            waiting=sum(self._live_count(q) for q in self._waiters.values())
            + sum(self._live_count(q) for q in self._pinned.values()),
            requests=count,
            timeouts=self._timeouts,
            crashes=self._crashes,
            starts=self._starts,
            restarts=self._restarts,
            start_failures=self._start_failures,
            recycled=self._recycled,
            acquire_timeouts=self._acquire_timeouts,
            latency_mean_ms=(self._latency_sum / count * 1000) if count else 0.0,
            latency_p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
            latency_p95_ms=quantile(0.95),
            latency_max_ms=latencies[-1] * 1000 if latencies else 0.0,
            verify_workers=len(self._fresh) + sum(self._fresh_starting.values()),
            verify_starts=self._fresh_starts,
            verify_requests=self._verify_requests,
        )

    @property
    def workers(self) -> tuple[ReplProcess, ...]:
        """The live workers (for tests and diagnostics)."""
        return tuple(self._workers)

    async def close(self) -> None:
        """Stop every process and fail every waiter. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        closed = BackendCrashed("the Lean REPL pool was closed")
        for queue in (*self._waiters.values(), *self._pinned.values()):
            for waiter in queue:
                if not waiter.future.done():
                    waiter.future.set_exception(closed)
        for futures in self._fresh_waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(closed)
        self._fresh_waiters.clear()
        self._spares.clear()
        self._waiters.clear()
        self._pinned.clear()
        self._signal_idle(*self._idle_signals)
        for task in list(self._tasks):
            task.cancel()
        workers, self._workers = self._workers, []
        fresh, self._fresh = list(self._fresh), set()
        await asyncio.gather(*(w.close() for w in (*workers, *fresh)), return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- verification workers -------------------------------------------------------------------

    async def acquire_fresh(self, header: str, *, timeout: float | None = None) -> ReplProcess:
        """A worker that has elaborated only `header` and served nobody, for one check; give it to `discard`.

        It is a ready spare when there is one (and a replacement starts in the background), else one
        started for the caller; never a shared worker, never one used before. Raises
        `BackendStartError` when it fails to start, `PoolExhausted` when none is ready within
        `timeout` (default `acquire_timeout_s`) plus `start_timeout_s`.
        """
        if self._closed:
            raise BackendCrashed("the Lean REPL pool is closed")
        ready = self._spares.setdefault(header, deque())
        while ready:
            worker = ready.popleft()
            if worker.alive:
                worker.leased = True
                self._top_up_fresh()
                return worker
            self._drop_fresh(worker)
        future: asyncio.Future[ReplProcess] = asyncio.get_running_loop().create_future()
        self._fresh_waiters.setdefault(header, deque()).append(future)
        self._top_up_fresh()
        wait_s = (self.config.acquire_timeout_s if timeout is None else timeout) + self.config.start_timeout_s
        return await self._await_handover(
            future,
            wait_s,
            give_back=self.discard,
            exhausted=lambda: (
                f"no fresh Lean REPL worker for verification within {wait_s:g} s "
                f"({len(self._fresh)} of {self.config.max_verify_workers} in use)"
            ),
        )

    def discard(self, worker: ReplProcess) -> None:
        """Retire a worker from `acquire_fresh` for good (stopping it if still running); safe twice."""
        self._drop_fresh(worker)
        self._top_up_fresh()

    def _drop_fresh(self, worker: ReplProcess) -> None:
        worker.retiring = True
        worker.leased = False
        if worker in self._fresh:
            self._fresh.discard(worker)
            if worker.alive:
                self._track(worker.kill("closed"))

    def prepare_fresh(self, header: str) -> None:
        """Start the `verify_spares` spare verification workers of `header` in the background."""
        self._spares.setdefault(header, deque())
        self._top_up_fresh()

    def _top_up_fresh(self) -> None:
        """Start verification workers: one per waiting caller first, then spares, within the cap."""
        if self._closed:
            return
        callers: list[tuple[str, int]] = []
        spares: list[tuple[str, int]] = []
        for header in list(self._spares.keys() | self._fresh_waiters.keys()):
            waiting = sum(1 for future in self._fresh_waiters.get(header, ()) if not future.done())
            starting = self._fresh_starting.get(header, 0)
            # Starts in flight go to callers first; what is left over becomes spares.
            left_over = len(self._spares.get(header, ())) + starting - waiting
            callers.append((header, max(0, -left_over)))
            spares.append((header, max(0, self.config.verify_spares - max(0, left_over))))
        for wanted, for_caller in ((callers, True), (spares, False)):
            for header, count in wanted:
                for _ in range(count):
                    full = len(self._fresh) + sum(self._fresh_starting.values()) >= self.config.max_verify_workers
                    if full and (not for_caller or not self._evict_spare(header)):
                        break
                    self._fresh_starting[header] = self._fresh_starting.get(header, 0) + 1
                    self._track(self._start_fresh(header))

    def _evict_spare(self, header: str) -> bool:
        """Stop a ready spare of another header to make room for a caller of `header`."""
        for other, ready in self._spares.items():
            if other != header and ready:
                self._drop_fresh(ready.popleft())
                return True
        return False

    async def _start_fresh(self, header: str) -> ReplProcess:
        worker = ReplProcess(self.config, header, observer=self._observe_fresh)
        try:
            await worker.start()
        except BackendStartError as error:
            self._fresh_starting[header] -= 1
            self._start_failures += 1
            logger.warning("Lean REPL verification worker failed to start: %s", error.message)
            for future in self._fresh_waiters.pop(header, deque()):
                if not future.done():
                    future.set_exception(error)
            raise
        except BaseException:
            self._fresh_starting[header] -= 1
            await worker.kill("closed")
            raise
        self._fresh_starting[header] -= 1
        self._fresh_starts += 1
        if self._closed:
            await worker.close()
            raise BackendCrashed("the Lean REPL pool was closed")
        self._fresh.add(worker)
        waiters = self._fresh_waiters.get(header)
        while waiters:
            future = waiters.popleft()
            if not future.done():
                worker.leased = True
                future.set_result(worker)
                return worker
        self._spares.setdefault(header, deque()).append(worker)
        return worker

    def _observe_fresh(self, seconds: float, outcome: str) -> None:
        self._verify_requests += 1
        if outcome == "timeout":
            self._timeouts += 1
        elif outcome not in ("ok", "cancelled"):
            self._crashes += 1

    # -- internals ------------------------------------------------------------------------------

    def _new_waiter(self, header: str) -> _Waiter:
        return _Waiter(next(self._seq), header, asyncio.get_running_loop().create_future())

    async def _wait(self, waiter: _Waiter, wait_s: float) -> ReplProcess:
        def exhausted() -> str:
            stats = self.stats()
            return (
                f"no Lean REPL worker became free within {wait_s:g} s "
                f"({stats.busy} busy of {self.config.workers}, {stats.waiting} waiting)"
            )

        return await self._await_handover(waiter.future, wait_s, give_back=self.release, exhausted=exhausted)

    async def _await_handover(
        self,
        future: asyncio.Future[ReplProcess],
        wait_s: float,
        *,
        give_back: Callable[[ReplProcess], None],
        exhausted: Callable[[], str],
    ) -> ReplProcess:
        """The worker handed to `future` within `wait_s`, else `PoolExhausted(exhausted())`.

        A worker handed over just as the wait ends is still taken; one handed over to a caller that
        was cancelled meanwhile goes back through `give_back`, so no worker is ever lost.
        """
        try:
            async with asyncio.timeout(wait_s):
                return await asyncio.shield(future)
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()
            future.cancel()
            self._acquire_timeouts += 1
            raise PoolExhausted(exhausted()) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                give_back(future.result())
            else:
                future.cancel()
            raise

    def _usable(self, worker: ReplProcess) -> bool:
        return worker.alive and not worker.retiring and worker in self._workers

    def _idle_worker(self, header: str) -> ReplProcess | None:
        best: ReplProcess | None = None
        for worker in self._workers:
            usable = worker.header == header and not worker.leased and not worker.retiring and worker.alive
            if usable and (best is None or worker.requests < best.requests):
                best = worker
        return best

    @staticmethod
    def _live_count(queue: deque[_Waiter]) -> int:
        return sum(1 for w in queue if not w.future.done())

    @staticmethod
    def _head(queue: deque[_Waiter] | None) -> _Waiter | None:
        while queue:
            if not queue[0].future.done():
                return queue[0]
            queue.popleft()
        return None

    def _release_now(self, worker: ReplProcess) -> None:
        if not worker.leased:
            return
        worker.leased = False
        if self._closed:
            self._track(worker.close())
            return
        if not worker.alive:
            self._retire(worker, crashed=worker.death == "crash")
            return
        if worker.requests >= self.config.max_requests_per_worker:
            logger.info("recycling Lean REPL worker %s after %s requests", worker.id, worker.requests)
            self._recycled += 1
            self._retire(worker, crashed=False)
            return
        if worker.over_memory:
            logger.info("recycling Lean REPL worker %s: its resident memory passed max_worker_memory_mb", worker.id)
            self._recycled += 1
            self._retire(worker, crashed=False)
            return
        self._schedule_memory_check(worker)
        self._failures = 0  # a lease that ends on a healthy worker ends a run of crashes
        self._hand_off(worker)

    def _schedule_memory_check(self, worker: ReplProcess) -> None:
        limit = self.config.recycle_rss_bytes
        if limit is None or worker.requests - worker.memory_checked_at < self.config.memory_check_every:
            return
        worker.memory_checked_at = worker.requests
        self._track(self._check_memory(worker, limit))

    async def _check_memory(self, worker: ReplProcess, limit: int) -> None:
        # Off the event loop: psutil reads /proc, which takes milliseconds on a busy machine.
        rss = await asyncio.to_thread(worker.rss_bytes)
        worker.last_rss = rss
        if rss <= limit or not worker.alive:
            return
        logger.info(
            "recycling Lean REPL worker %s: resident memory %.0f MiB is past max_worker_memory_mb (%.0f MiB)",
            worker.id,
            rss / 2**20,
            limit / 2**20,
        )
        worker.over_memory = True
        if not worker.leased and worker in self._workers and not self._closed:
            self._recycled += 1
            self._retire(worker, crashed=False)

    def _hand_off(self, worker: ReplProcess) -> None:
        """Give an idle, healthy worker to the longest-waiting caller that can use it, or park it."""
        pinned = self._head(self._pinned.get(worker))
        general = self._head(self._waiters.get(worker.header))
        chosen = pinned if general is None or (pinned is not None and pinned.seq < general.seq) else general
        if chosen is not None:
            queue = self._pinned[worker] if chosen is pinned else self._waiters[worker.header]
            queue.popleft()
            worker.leased = True
            chosen.future.set_result(worker)
            return
        if not self._pinned.get(worker):
            self._pinned.pop(worker, None)
        self._signal_idle(worker.header)
        # Idle. If callers of another header wait on a full pool, make room for them.
        if any(self._head(q) is not None for q in self._waiters.values()):
            self._ensure_capacity()

    def _signal_idle(self, *headers: str) -> None:
        for header in headers:
            signal = self._idle_signals.pop(header, None)
            if signal is not None and not signal.done():
                signal.set_result(None)

    def _retire(self, worker: ReplProcess, *, crashed: bool) -> None:
        worker.retiring = True
        if worker in self._workers:
            self._workers.remove(worker)
        gone = WorkerGone(
            f"Lean REPL worker {worker.id} was retired ({worker.death or 'recycled'})", stderr=worker.stderr_tail()
        )
        for waiter in self._pinned.pop(worker, deque()):
            if not waiter.future.done():
                waiter.future.set_exception(gone)
        if crashed:
            self._failures += 1
        self._track(worker.close())
        if not self._closed:
            self._restarts += 1
            self._spawn(worker.header, self._backoff())
        self._ensure_capacity()

    def _backoff(self) -> float:
        if self._failures == 0:
            return 0.0
        delay = self.config.restart_backoff_s * 2 ** (self._failures - 1)
        return float(min(self.config.max_restart_backoff_s, delay))

    def _ensure_capacity(self) -> None:
        """Start workers for headers that have callers waiting and nothing being started for them."""
        if self._closed:
            return
        heads = [(head.seq, header) for header, q in self._waiters.items() if (head := self._head(q)) is not None]
        for _, header in sorted(heads):
            needed = self._live_count(self._waiters[header]) - self._starting.get(header, 0)
            while needed > 0:
                if len(self._workers) + sum(self._starting.values()) >= self.config.workers:
                    victim = self._evictable(header)
                    if victim is None:
                        break
                    logger.info("replacing idle Lean REPL worker %s (another header) for %r", victim.id, header[:60])
                    victim.retiring = True
                    self._workers.remove(victim)
                    self._track(victim.close())
                self._spawn(header, self._backoff())
                needed -= 1

    def _evictable(self, header: str) -> ReplProcess | None:
        for worker in self._workers:
            if worker.header != header and not worker.leased and not self._head(self._pinned.get(worker)):
                return worker
        return None

    def _spawn(self, header: str, delay: float) -> asyncio.Task[object]:
        self._starting[header] = self._starting.get(header, 0) + 1
        return self._track(self._start_worker(header, delay))

    def _track(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    async def _start_worker(self, header: str, delay: float) -> ReplProcess:
        worker = ReplProcess(self.config, header, observer=self._observe)
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            await worker.start()
        except BackendStartError as error:
            self._starting[header] -= 1
            self._failures += 1
            self._start_failures += 1
            logger.warning("Lean REPL worker failed to start: %s", error.message)
            # A header that does not elaborate fails for everyone who waits on it.
            for waiter in self._waiters.pop(header, deque()):
                if not waiter.future.done():
                    waiter.future.set_exception(error)
            raise
        except BaseException:
            self._starting[header] -= 1
            await worker.kill("closed")
            raise
        self._starting[header] -= 1
        self._starts += 1
        if self._closed:
            await worker.close()
            raise BackendCrashed("the Lean REPL pool was closed")
        self._workers.append(worker)
        self._hand_off(worker)
        return worker

    def _observe(self, seconds: float, outcome: str) -> None:
        self._requests += 1
        self._latency_sum += seconds
        self._latencies.append(seconds)
        if outcome == "timeout":
            self._timeouts += 1
        elif outcome not in ("ok", "cancelled"):
            self._crashes += 1


def _log_failure(task: asyncio.Task[object]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, BackendStartError | BackendCrashed):
        logger.error("Lean REPL pool task failed", exc_info=error)

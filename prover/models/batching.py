"""Merging the text calls of concurrent callers into batched calls of one backend.

Each search asks for one state at a time; a GPU is efficient only when many prompts share one
model call. `MergingGenerator` queues `complete` calls, waits `window_ms` after the first one for
others to arrive, and sends everything queued (up to a cost budget, in arrival order) to the inner
text generator as one call. One inner call runs at a time: calls that arrive meanwhile are merged
into the next. Tactic, draft and sketch prompts over one `MergingGenerator` share its batches.

The queueing itself (`BatchMerger`) is generic over what a request and its result are, so a
benchmark can put it in front of a stand-in generator of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prover.models.base import GenerationError, PromptTooLong
from prover.models.text import Completion, TextGenerator, TextRequest

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")


@dataclass(eq=False)
class _Call(Generic[RequestT, ResultT]):
    requests: list[RequestT]
    future: asyncio.Future[list[ResultT]]
    cost: int


@dataclass
class MergingStats:
    """What the merger did; read by tests and benchmarks."""

    calls: int = 0
    """Calls received (`complete` calls for `MergingGenerator`)."""
    inner_calls: int = 0
    """Batched calls made to the inner generator."""
    batch_sizes: list[int] = field(default_factory=list)
    """Requests per inner call, in order."""


class BatchMerger(Generic[RequestT, ResultT]):
    """Merges concurrent `submit` calls into batched calls of `run` (one result per request, same order).

    `cost(request)` estimates what a request occupies in one batch (for the `hf` backend: its
    prompt tokens plus completions times new tokens); a batch takes queued calls in arrival order
    while their summed cost stays within `max_batch_cost` (always at least one call, however
    large). A failure of `run` is raised to every caller in that batch, except a `PromptTooLong`
    naming its requests, which fails only the callers that sent them (the others are retried). A
    caller cancelled while queued is dropped from the queue. `close` fails queued calls and awaits
    `on_close`.
    """

    def __init__(
        self,
        run: Callable[[list[RequestT]], Awaitable[Sequence[ResultT]]],
        on_close: Callable[[], Awaitable[None]],
        *,
        cost: Callable[[RequestT], int],
        window_ms: float = 5.0,
        max_batch_cost: int = 65536,
        name: str = "MergingGenerator",
    ) -> None:
        if window_ms < 0:
            raise ValueError(f"{name}.window_ms: must be >= 0, got {window_ms}")
        if max_batch_cost < 1:
            raise ValueError(f"{name}.max_batch_cost: must be >= 1, got {max_batch_cost}")
        self._inner_run = run
        self._on_close = on_close
        self.window_s = window_ms / 1000.0
        self.max_batch_cost = max_batch_cost
        self._cost = cost
        self.stats = MergingStats()
        self._queue: deque[_Call[RequestT, ResultT]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def submit(self, requests: Sequence[RequestT]) -> list[ResultT]:
        """The results for `requests`, computed in a batch shared with concurrent callers."""
        if self._closed:
            raise GenerationError("the generator is closed")
        if not requests:
            return []
        self.stats.calls += 1
        loop = asyncio.get_running_loop()
        self._ensure_dispatcher(loop)
        assert self._wakeup is not None
        future: asyncio.Future[list[ResultT]] = loop.create_future()
        call = _Call(list(requests), future, sum(max(1, self._cost(r)) for r in requests))
        self._queue.append(call)
        self._wakeup.set()
        try:
            return await call.future
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._queue.remove(call)
            raise

    async def close(self) -> None:
        """Stop dispatching, fail queued calls, await `on_close`."""
        self._closed = True
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._dispatcher
        while self._queue:
            call = self._queue.popleft()
            if not call.future.done():
                call.future.set_exception(GenerationError("the generator was closed before this request ran"))
        await self._on_close()

    def _ensure_dispatcher(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            # A new event loop (e.g. a second asyncio.run): loop-bound primitives start afresh.
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._queue = deque(call for call in self._queue if not call.future.done())
            self._dispatcher = None
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = loop.create_task(self._dispatch(), name="batch-merger")

    async def _dispatch(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._queue:
                continue
            if self.window_s > 0:
                await asyncio.sleep(self.window_s)
            while self._queue:
                batch = self._take_batch()
                if batch:
                    await self._run(batch)

    def _take_batch(self) -> list[_Call[RequestT, ResultT]]:
        batch: list[_Call[RequestT, ResultT]] = []
        total = 0
        while self._queue:
            call = self._queue[0]
            if call.future.done():  # cancelled while queued
                self._queue.popleft()
                continue
            if batch and total + call.cost > self.max_batch_cost:
                break
            batch.append(self._queue.popleft())
            total += call.cost
        return batch

    async def _run(self, batch: list[_Call[RequestT, ResultT]]) -> None:
        flat = [request for call in batch for request in call.requests]
        self.stats.inner_calls += 1
        self.stats.batch_sizes.append(len(flat))
        try:
            results = await self._inner_run(flat)
        except PromptTooLong as error:
            if not error.indices:
                self._fail(batch, error)
                return
            bad = set(error.indices)
            keep: list[_Call[RequestT, ResultT]] = []
            offset = 0
            for call in batch:
                span = range(offset, offset + len(call.requests))
                offset += len(call.requests)
                if bad.intersection(span):
                    own = [index - span.start for index in sorted(bad.intersection(span))]
                    self._fail([call], PromptTooLong(str(error), indices=own))
                else:
                    keep.append(call)
            if keep:
                await self._run(keep)
            return
        except asyncio.CancelledError:
            self._fail(batch, GenerationError("the generator was closed while this request ran"))
            raise
        except Exception as error:
            logger.debug("inner generator failed on a batch of %d requests: %s", len(flat), error)
            self._fail(batch, error)
            return
        if len(results) != len(flat):
            message = f"inner generator returned {len(results)} lists for {len(flat)} requests"
            self._fail(batch, GenerationError(message))
            return
        offset = 0
        for call in batch:
            part = list(results[offset : offset + len(call.requests)])
            offset += len(call.requests)
            if not call.future.done():
                call.future.set_result(part)

    @staticmethod
    def _fail(batch: Sequence[_Call[RequestT, ResultT]], error: BaseException) -> None:
        for call in batch:
            if not call.future.done():
                call.future.set_exception(error)


class MergingGenerator:
    """A `TextGenerator` that merges concurrent `complete` calls into batched calls of `inner`.

    The batching rules are `BatchMerger`'s: calls wait up to `window_ms` for company, a batch holds
    queued calls in arrival order within `max_batch_cost` (summed `cost(request)`, by default the
    number of completions asked for), a failure reaches every caller of its batch except a
    `PromptTooLong` naming requests, which fails only their callers. `stats` counts calls and batches.
    """

    def __init__(
        self,
        inner: TextGenerator,
        *,
        window_ms: float = 5.0,
        max_batch_cost: int = 65536,
        cost: Callable[[TextRequest], int] | None = None,
    ) -> None:
        self.inner = inner
        self._merger: BatchMerger[TextRequest, list[Completion]] = BatchMerger(
            inner.complete,
            inner.close,
            cost=cost if cost is not None else (lambda request: request.n),
            window_ms=window_ms,
            max_batch_cost=max_batch_cost,
        )

    @property
    def stats(self) -> MergingStats:
        return self._merger.stats

    @property
    def window_s(self) -> float:
        return self._merger.window_s

    @property
    def max_batch_cost(self) -> int:
        return self._merger.max_batch_cost

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        """Completions for `requests`, computed in a batch shared with concurrent callers."""
        return await self._merger.submit(requests)

    async def close(self) -> None:
        """Stop dispatching, fail queued calls, close the inner generator."""
        await self._merger.close()

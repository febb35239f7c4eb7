"""What a running search reports: a stream of immutable events, and a hub to subscribe to them.

A search publishes, in order: `SearchStarted`, one `ExpansionDone` per expansion (with a frozen
snapshot of the counters at that moment, never the live object), `ProofFound` or `ProofRejected`
whenever a closing tactic sequence is re-checked, and `SearchFinished` with the result (not when
the search is cancelled or raises: there is no result then; `BestFirstSearch.stats` still gives
the counters). An evaluation adds its own problem-level events (`prover.evaluation.events`) to the
same hub, so the CLI's progress display, a report and the service's live page all read one stream.

Listeners run on the event loop, synchronously, in subscription order: they must not block. A
listener that raises is logged and dropped for that event; it never breaks the search.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.types import SearchResult, SearchStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SearchStarted:
    problem_name: str
    at: float
    """Wall-clock time (`time.time()`)."""


@dataclass(frozen=True, slots=True)
class ExpansionDone:
    """One node was expanded: its state, how many candidates it got, and the counters after it."""

    problem_name: str
    expansion: int
    state: str
    """The expanded state's pretty-printed text."""
    candidates: int
    frontier: int
    """Open nodes left to expand after this one."""
    stats: SearchStats
    """A frozen copy of the counters at this moment."""
    node: int = -1
    """The expanded node's id in the search tree (`Node.id`; the root is 0)."""
    parent: int | None = None
    """The id of the node it was reached from on its best path; None for the root."""


@dataclass(frozen=True, slots=True)
class ProofFound:
    """A tactic sequence closed the goal and the whole-file re-check accepted it."""

    problem_name: str
    proof: str
    tactics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProofRejected:
    """A tactic sequence closed every goal step by step, but the whole-file re-check refused it."""

    problem_name: str
    proof: str
    reason: str


@dataclass(frozen=True, slots=True)
class SearchFinished:
    problem_name: str
    result: SearchResult


SearchEvent = SearchStarted | ExpansionDone | ProofFound | ProofRejected | SearchFinished
"""Everything a search publishes."""

EventListener = Callable[[Any], None]
"""Receives each published event; runs on the event loop and must not block."""


def publish(listener: EventListener | None, event: object) -> None:
    """Give `event` to `listener` (if any); a listener that raises is logged, never propagated.

    Every publisher (a search, an evaluation, the Ray pool, `EventHub`) goes through this, so a
    faulty display can never stop the work it watches.
    """
    if listener is None:
        return
    try:
        listener(event)
    except Exception:
        logger.exception("event listener %r failed on %s", listener, type(event).__name__)


class EventHub:
    """Fan-out of immutable events to listeners and to async subscribers.

    `subscribe(listener)` registers a callback and returns a function that removes it.
    `stream()` yields every event published after the call, for `async for` consumers (a web page's
    server-sent events); each stream has its own queue, so a slow consumer never slows a search
    (its queue grows instead; `maxsize` bounds it, dropping the oldest events when full).
    """

    def __init__(self) -> None:
        self._listeners: list[EventListener] = []

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: object) -> None:
        for listener in tuple(self._listeners):
            publish(listener, event)

    def stream(self, maxsize: int = 10_000) -> EventStream:
        """An `EventStream` of every event published from this call on (it subscribes at once)."""
        return EventStream(self, maxsize)

    def __call__(self, event: object) -> None:
        """An `EventHub` is itself a listener, so hubs can be chained."""
        self.publish(event)


class EventStream:
    """The events a hub published since this stream was opened, for `async for`.

    It subscribes when it is created (not on the first `anext`, so nothing published in between is
    lost) and unsubscribes on `aclose()` or on leaving `async with`; a consumer that stops early
    must close it, or the hub keeps queueing for it (up to `maxsize` events, oldest dropped).
    """

    def __init__(self, hub: EventHub, maxsize: int) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._maxsize = maxsize
        self._unsubscribe = hub.subscribe(self._put)

    def _put(self, event: object) -> None:
        if self._queue.qsize() >= self._maxsize:
            self._queue.get_nowait()
        self._queue.put_nowait(event)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> object:
        return await self._queue.get()

    async def aclose(self) -> None:
        """Stop receiving events. Safe to call twice."""
        self._unsubscribe()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

"""Keeps the cyclic garbage collector from re-walking the search trees of running searches.

A search keeps every node, edge and state until it ends, and the collector's full collections walk
every tracked object of the process, one more time each time the heap has grown by a quarter: the
tree alone costs a large search more CPU than its own bookkeeping. While searches run, they move
what exists into `gc.freeze()`'s permanent generation now and then (an O(1) splice), so later
collections look at new objects only; when the last running search ends, `gc.unfreeze()` hands
everything back to the oldest generation and the next full collection frees the finished trees.

Objects that became cyclic garbage while frozen are freed only then. So that a process where some
search is always running (the service) does not hold such garbage forever, the frozen set is handed
back and collected once it has doubled since the last time: garbage stays bounded by the live heap,
and the collector walks the heap once per doubling instead of once per quarter.

A process that freezes objects itself (before forking workers, say) should turn this off with
`SearchConfig.freeze_gc=False`: the unfreeze when searches end hands back its objects too.
"""

from __future__ import annotations

import gc

_REFREEZE_EVERY = 256
"""Expansions of one search between two freezes."""
_MIN_COLLECT_AT = 200_000
"""Frozen objects below which the doubling rule never collects (a small heap costs little)."""

_active = 0
_collect_at = _MIN_COLLECT_AT


def enter() -> None:
    """A search that freezes has started."""
    global _active
    _active += 1


def checkpoint(expansions: int) -> None:
    """Called after each expansion of a search that `enter`ed; freezes every `_REFREEZE_EVERY`."""
    global _collect_at
    if expansions % _REFREEZE_EVERY:
        return
    gc.freeze()
    frozen = gc.get_freeze_count()
    if frozen >= _collect_at:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _collect_at = max(2 * gc.get_freeze_count(), _MIN_COLLECT_AT)


def leave() -> None:
    """A search that `enter`ed has ended (however it ended)."""
    global _active, _collect_at
    _active -= 1
    if _active == 0:
        gc.unfreeze()
        _collect_at = _MIN_COLLECT_AT

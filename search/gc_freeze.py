"""Keeps the cyclic garbage collector from re-walking the search trees of running searches.

A search keeps every node, edge and state until it ends, and the collector's full collections walk
every tracked object of the process, one more time each time the heap has grown by a quarter: the
tree alone costs a large search more CPU than its own bookkeeping. While searches run, they move
what exists into `gc.freeze()`'s permanent generation now and then (an O(1) splice), so later
collections look at new objects only; when the last running search ends, `gc.unfreeze()` hands
everything back to the oldest generation and the next full collection frees the finished trees.

Objects that became cyclic garbage while frozen are freed only then. The garbage that matters is
the tree of a search that ended while another still runs (the service, where some search is always
running): once that has happened, the frozen set is handed back and collected when the heap has
doubled since the last time, so garbage stays bounded by the live heap and the collector walks
the heap once per doubling instead of once per quarter. While no search has ended, nothing is
collected: a growing heap is then the running searches' own live trees, which a collection would
walk for nothing, and what else a freeze can catch alive and see die later is what one expansion of
each running search had in flight at that moment (a freeze comes between two expansions), a few
objects per freeze.

The heap is measured in `sys.getallocatedblocks()`, not `gc.get_freeze_count()`: the latter walks
the whole frozen list (milliseconds for a large search, more than the searches' own work between
two freezes).

A process that freezes objects itself (before forking workers, say) should turn this off with
`SearchConfig.freeze_gc=False`: the unfreeze when searches end hands back its objects too.
"""

from __future__ import annotations

import gc
import sys

_REFREEZE_EVERY = 256
"""Expansions of one search between two freezes."""
_MIN_COLLECT_AT = 400_000
"""Allocated blocks below which the doubling rule never collects (a small heap costs little)."""

_active = 0
_collected_at = 0
"""`sys.getallocatedblocks()` after the last collection (or when the first search entered)."""
_ended = False
"""Whether a search has ended, while another kept the heap frozen, since the last collection."""


def enter() -> None:
    """A search that freezes has started."""
    global _active, _collected_at
    if _active == 0:
        _collected_at = sys.getallocatedblocks()
    _active += 1


def checkpoint(expansions: int) -> None:
    """Called after each expansion of a search that `enter`ed; freezes every `_REFREEZE_EVERY`."""
    global _collected_at, _ended
    if expansions % _REFREEZE_EVERY:
        return
    gc.freeze()
    if not _ended:
        return
    blocks = sys.getallocatedblocks()
    if blocks >= _MIN_COLLECT_AT and blocks >= 2 * _collected_at:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _collected_at = sys.getallocatedblocks()
        _ended = False


def leave() -> None:
    """A search that `enter`ed has ended (however it ended)."""
    global _active, _ended
    _active -= 1
    if _active == 0:
        gc.unfreeze()
        _ended = False
    else:
        _ended = True  # its tree may be garbage inside the frozen set now

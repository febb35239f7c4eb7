"""Ending the losers of a race: cancel the tasks still running and wait until they have unwound.

Used wherever the pipeline runs candidates side by side and the first success wins (the gaps of a
sketch, the sketches of a problem, the automation tactics or heuristics on one gap): a cancelled
check must release its session or worker before the next one starts, so nothing leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel every task of `tasks` that is not done, then wait for each to finish unwinding."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task

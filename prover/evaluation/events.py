"""What a running evaluation reports: immutable problem-level events, on the same stream as the searches'.

An evaluation publishes, in order: `EvaluationStarted`; for each problem attempted,
`ProblemStarted` then (once its record is on disk) `ProblemFinished`; and `EvaluationFinished`,
also when the run is aborted, fails or is cancelled. A local run forwards every search's own events
(`search.events`) to the same listener, between its problem's `ProblemStarted` and
`ProblemFinished`; a Ray run reports problem-level events only (searches run in other processes),
plus `WorkerLost` when a worker dies.

Pass any callable as the listener; a `search.events.EventHub` fans the stream out to a progress
display, a report and a live page at once. Listeners run on the event loop and must not block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prover.evaluation.results import EvalRecord


@dataclass(frozen=True, slots=True)
class EvaluationStarted:
    """A run begins: `total` problems will be attempted now, `skipped` were already recorded (resume).

    `recorded` is the results file records go to (None when they are only returned).
    """

    total: int
    skipped: int
    recorded: str | None = None


@dataclass(frozen=True, slots=True)
class ProblemStarted:
    """A problem's attempt number `attempt` begins (2 and more only on Ray, after a worker it killed)."""

    name: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class ProblemFinished:
    """A problem has its record, already written to the results file."""

    record: EvalRecord


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """A Ray worker died. `in_flight` are the problems it was running; `charged` the one charged an
    attempt for it (the problem it ran alone), None when the others become suspects, re-run alone."""

    worker: str
    in_flight: tuple[str, ...]
    charged: str | None


@dataclass(frozen=True, slots=True)
class EvaluationFinished:
    """The run is over: `attempted` records written (`proved` of them proved) in `wall_seconds`.

    `stopped` is None when every problem was attempted; otherwise why the run stopped early (the
    abort message, `cancelled`, or the error that ended it).
    """

    attempted: int
    proved: int
    wall_seconds: float
    stopped: str | None = None


EvaluationEvent = EvaluationStarted | ProblemStarted | ProblemFinished | WorkerLost | EvaluationFinished
"""Everything an evaluation publishes besides its searches' events."""

"""The events a formalization run publishes while it runs: immutable values, in order per attempt.

For one problem: `FormalizationStarted`, then per attempt `AttemptStarted`, `DraftWritten` (only when the
model wrote the informal proof), `SketchWritten`, one `GapClosed` per gap that was worked on to the end
(closed or left open), `AttemptFinished`; finally `FormalizationFinished` with the result. Attempts and
problems interleave. Pass any callable as `events=` (a `search.events.EventHub` fans out to several).
"""

from __future__ import annotations

from dataclasses import dataclass

from prover.informal.types import Attempt, FormalizeResult, GapOutcome


@dataclass(frozen=True, slots=True)
class FormalizationStarted:
    problem_name: str
    language: str
    attempts: int


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    problem_name: str
    number: int
    sampled: bool
    """False for the greedy attempt 0; True for the sampled ones."""
    seed: int | None


@dataclass(frozen=True, slots=True)
class DraftWritten:
    problem_name: str
    number: int
    draft: str


@dataclass(frozen=True, slots=True)
class SketchWritten:
    problem_name: str
    number: int
    sketch: str


@dataclass(frozen=True, slots=True)
class GapClosed:
    """One gap was worked on to the end: `outcome.closed` says whether it was closed, and how."""

    problem_name: str
    number: int
    outcome: GapOutcome


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    problem_name: str
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class FormalizationFinished:
    result: FormalizeResult


InformalEvent = (
    FormalizationStarted
    | AttemptStarted
    | DraftWritten
    | SketchWritten
    | GapClosed
    | AttemptFinished
    | FormalizationFinished
)

"""The vocabulary of the informal-to-formal pipeline: draft, sketch, gaps, attempts, results.

One pipeline (`prover.informal.pipeline`) serves both languages. What differs per language sits
behind `SketchBackend`: finding a sketch's gaps (Isabelle `sledgehammer` steps, Lean `sorry`s),
closing one gap (Isabelle: the Llemma heuristic list, then Sledgehammer; Lean: an automation battery,
then our best-first search), assembling the closed gaps back into the sketch, and the final check by
the strongest judge available. Everything here is a frozen value; results are records a run writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from lean_env.types import Problem, VerifyResult


class GapMethod(StrEnum):
    """How a gap was closed (or that it was not)."""

    HEURISTIC = "heuristic"
    """Isabelle: one of the Llemma harness's fixed tactics (`by auto`, `by simp`, ...)."""
    SLEDGEHAMMER = "sledgehammer"
    """Isabelle: Sledgehammer found a proof."""
    AUTOMATION = "automation"
    """Lean: one tactic of the automation battery (`omega`, `linarith`, ...) closed the hole."""
    SEARCH = "search"
    """Lean: our best-first search closed the hole."""
    OPEN = "open"
    """Nothing closed it within its budget."""


@dataclass(frozen=True, slots=True)
class Gap:
    """One gap of a sketch: its index (in text order), its text span and what it must prove.

    `start`/`end` are character offsets into the sketch text of the gap's own text (`sledgehammer`,
    `sorry`); `goal` is the goal where the backend knows it (Lean), else the empty string.
    `handle` is the backend's own reference (a `lean_env.types.Hole` for Lean).
    """

    index: int
    start: int
    end: int
    goal: str = ""
    handle: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class GapOutcome:
    """What happened to one gap: the method and the text that closes it (None when still open)."""

    index: int
    method: GapMethod
    closing: str | None
    """The proof text put in the gap's place (`by auto`; Lean tactics joined by newlines)."""
    tried: tuple[str, ...] = ()
    """The candidates tried, in order (for the report of how gaps were closed)."""
    seconds: float = 0.0

    @property
    def closed(self) -> bool:
        return self.closing is not None


@dataclass(frozen=True, slots=True)
class Timings:
    """Where an attempt's time went, in seconds."""

    draft: float = 0.0
    sketch: float = 0.0
    prove: float = 0.0
    check: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One sketch of a problem and its fate. `proof` is set only when the final check accepted it."""

    number: int
    """0 is the greedy sketch; later attempts sample."""
    draft: str | None
    """The informal proof the model wrote (None when the problem came with one)."""
    sketch: str
    gaps: tuple[GapOutcome, ...]
    proof: str | None
    """The whole verified formal proof text (statement and proof), when verified."""
    verdict: VerifyResult | None
    """The final check's verdict (None when a gap stayed open and nothing was checked)."""
    timings: Timings
    failure: str | None = None

    @property
    def verified(self) -> bool:
        return self.proof is not None

    def to_dict(self) -> dict[str, Any]:
        """As JSON: draft, sketch, every gap's fate, the proof, the verdict, the time split."""
        verdict = self.verdict
        return {
            "number": self.number,
            "draft": self.draft,
            "sketch": self.sketch,
            "gaps": [
                {
                    "index": gap.index,
                    "method": gap.method.value,
                    "closing": gap.closing,
                    "tried": list(gap.tried),
                    "seconds": gap.seconds,
                }
                for gap in self.gaps
            ],
            "proof": self.proof,
            "verified": self.verified,
            "verdict": None
            if verdict is None
            else {"status": verdict.status.value, "reason": verdict.reason, "judge": verdict.judge},
            "timings": dataclasses.asdict(self.timings),
            "failure": self.failure,
        }


@dataclass(frozen=True, slots=True)
class FormalizeResult:
    """All attempts on one problem, by attempt number; the problem is proved when one of them verified.

    Attempts run concurrently: when one verifies, those still running are cancelled and recorded with
    `failure` starting `cancelled`; attempts never started are not recorded. `error` is set (by
    `formalize_many`) when the model or the checker failed and the problem could not be worked on.
    """

    problem_name: str
    language: str
    attempts: tuple[Attempt, ...]
    wall_seconds: float = 0.0
    error: str | None = None

    @property
    def proved(self) -> bool:
        return any(attempt.verified for attempt in self.attempts)

    @property
    def proof(self) -> str | None:
        return next((attempt.proof for attempt in self.attempts if attempt.proof is not None), None)

    @property
    def judge(self) -> str | None:
        """The judge that accepted the verified attempt's proof (None when none verified)."""
        winner = next((attempt for attempt in self.attempts if attempt.verified), None)
        return None if winner is None or winner.verdict is None else str(winner.verdict.judge)

    def to_dict(self) -> dict[str, Any]:
        """As JSON (`prover formalize --json`, a record's `informal` field, a service job's result)."""
        return {
            "problem": self.problem_name,
            "language": self.language,
            "proved": self.proved,
            "proof": self.proof,
            "wall_seconds": self.wall_seconds,
            "error": self.error,
            "attempts": [attempt.to_dict() for attempt in self.attempts],
        }


class SketchRejected(Exception):
    """Raised by `SketchBackend.gaps` when a sketch has no usable gaps (Lean errors besides the holes).

    A value-like failure of one attempt, not of the infrastructure: the pipeline records `reason` as the
    attempt's `failure` and goes on with the other attempts.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class SketchBackend(Protocol):
    """What the pipeline needs from one language. Implementations: `prover.informal.isabelle_backend`
    (Isabelle server) and `prover.informal.lean_backend` (a `LeanEnv` plus our search).

    `language` is `lean4` or `isabelle`. `gaps(problem, sketch)` lists the sketch's gaps (it may check
    the sketch: Lean needs `check` to learn holes and goals) and raises `SketchRejected` when the
    sketch itself is unusable. `close_gap` works on one gap and never raises for a gap that stays open
    (infrastructure failures raise `LeanEnvError`). `assemble` puts the closings back; `final_check`
    verifies the whole proof with the strongest judge available and
    rejects any text with `sorry`/`oops` itself.
    """

    @property
    def language(self) -> str: ...

    def full_text(self, problem: Problem, sketch: str) -> str:
        """The sketch as a whole file/theory (header, statement, the model's proof)."""
        ...

    async def gaps(self, problem: Problem, sketch: str) -> Sequence[Gap]: ...

    async def close_gap(self, problem: Problem, sketch: str, gap: Gap) -> GapOutcome: ...

    def assemble(self, problem: Problem, sketch: str, gaps: Sequence[Gap], outcomes: Sequence[GapOutcome]) -> str: ...

    async def final_check(self, problem: Problem, text: str) -> VerifyResult: ...

    async def close(self) -> None: ...

"""The Isabelle side of draft-sketch-prove: every `sledgehammer` step of a sketch is a gap.

As in the Llemma harness, a gap is closed by the first of a fixed list of methods that works
(`by auto`, `by simp`, ..., `by (auto simp: field_simps)`), then by Sledgehammer itself. The harness
stepped through the proof with PISA; with Isabelle's plain server we check variants of the theory
instead: the gap replaced by one candidate and every other gap by `sorry` (the server checks in
interactive mode, where `sorry` is accepted), so each gap is judged on its own and all gaps of a
sketch, and all candidates of a gap, are checked concurrently. Among the candidates that succeed the
earliest-listed one wins, the one the sequential harness would have picked; later ones still running
are cancelled once every earlier one has failed.

Sledgehammer runs through a variant with `sledgehammer` kept in front of a `sorry` at the gap, checked
with the longer `sledgehammer_timeout_s`: its "Try this: ..." suggestions come back among the theory's
messages, and the first suggestion whose own variant checks closes the gap. The final check is the
checker's `verify_theory`, which refuses `sorry`/`oops` itself.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import Protocol

from lean_env.isabelle.checker import mask_isabelle
from lean_env.types import Problem, VerifyResult
from prover.informal.concurrency import cancel_and_wait
from prover.informal.pipeline import InformalConfig
from prover.informal.types import Gap, GapMethod, GapOutcome


class TheoryResult(Protocol):
    """What `check_theory` returns (`lean_env.isabelle.checker.TheoryCheck`)."""

    @property
    def ok(self) -> bool: ...

    @property
    def errors(self) -> Sequence[str]: ...

    @property
    def messages(self) -> Sequence[str]: ...

    @property
    def timed_out(self) -> bool: ...


class TheoryChecker(Protocol):
    """The part of `lean_env.isabelle.IsabelleChecker` this backend uses."""

    async def check_theory(self, theory_text: str, *, name_hint: str, timeout: float) -> TheoryResult: ...

    async def verify_theory(self, theory_text: str, timeout: float) -> VerifyResult: ...

    async def close(self) -> None: ...


GAP = re.compile(r"(?<![\w'.])sledgehammer(?![\w'])")
"""A `sledgehammer` step of a sketch (matched on masked text, so not inside comments or strings)."""
TRY_THIS = re.compile(r"Try this:\s*(.+?)(?:\s+\([^()]*\d+(?:\.\d+)?\s*(?:ms|s)\))?\s*$", re.MULTILINE)


def mask(text: str) -> str:
    """`text` with Isabelle comments, strings and cartouches blanked, offsets kept (the checker's own masker)."""
    return mask_isabelle(text)


class IsabelleSketchBackend:
    """`SketchBackend` for Isabelle over an `IsabelleChecker` (or anything with its API)."""

    def __init__(self, checker: TheoryChecker, config: InformalConfig) -> None:
        self.checker = checker
        self.config = config

    @property
    def language(self) -> str:
        return "isabelle"

    def full_text(self, problem: Problem, sketch: str) -> str:
        """Header, statement, the model's proof, `end` (a trailing `end` the model wrote is dropped)."""
        body = sketch.rstrip()
        if re.search(r"(?:^|\n)\s*end\Z", body):
            body = body[: body.rstrip().rfind("end")].rstrip()
        if body and not body[0].isspace():
            body = "\n" + body
        return f"{problem.header}{problem.formal_statement}{body}\n\nend\n"

    async def gaps(self, problem: Problem, sketch: str) -> Sequence[Gap]:
        """Every `sledgehammer` outside comments, strings and cartouches, in text order."""
        text = self.full_text(problem, sketch)
        masked = mask(text)
        return [
            Gap(index=index, start=found.start(), end=found.end())
            for index, found in enumerate(GAP.finditer(masked, len(problem.header)))
        ]

    def variant(self, text: str, gaps: Sequence[Gap], gap: Gap, candidate: str) -> str:
        """`text` with `gap` replaced by `candidate` and every other gap by `sorry`."""
        for other in sorted(gaps, key=lambda g: g.start, reverse=True):
            replacement = candidate if other.index == gap.index else "sorry"
            text = text[: other.start] + replacement + text[other.end :]
        return text

    async def _checks(self, problem: Problem, variants: Sequence[str], timeout: float) -> int | None:
        """Check all `variants` at once; the index of the earliest-listed one that passes, or None."""
        tasks = [
            asyncio.create_task(self.checker.check_theory(text, name_hint=problem.name, timeout=timeout))
            for text in variants
        ]
        try:
            for index, task in enumerate(tasks):
                result = await task
                if result.ok and not result.errors and not result.timed_out:
                    return index
            return None
        finally:
            await cancel_and_wait(tasks)

    async def close_gap(self, problem: Problem, sketch: str, gap: Gap) -> GapOutcome:
        started = time.monotonic()
        text = self.full_text(problem, sketch)
        gaps = await self.gaps(problem, sketch)
        heuristics = self.config.heuristics
        variants = [self.variant(text, gaps, gap, candidate) for candidate in heuristics]
        winner = await self._checks(problem, variants, self.config.heuristic_timeout_s) if variants else None
        if winner is not None:
            return GapOutcome(
                gap.index,
                GapMethod.HEURISTIC,
                heuristics[winner],
                tried=heuristics[: winner + 1],
                seconds=time.monotonic() - started,
            )
        tried: tuple[str, ...] = heuristics
        if self.config.sledgehammer:
            tried = (*tried, "sledgehammer")
            probe = self.variant(text, gaps, gap, "sledgehammer sorry")
            result = await self.checker.check_theory(
                probe, name_hint=problem.name, timeout=self.config.sledgehammer_timeout_s
            )
            suggestions = list(
                dict.fromkeys(found.group(1).strip() for m in result.messages for found in TRY_THIS.finditer(str(m)))
            )
            if suggestions:
                found_at = await self._checks(
                    problem,
                    [self.variant(text, gaps, gap, suggestion) for suggestion in suggestions],
                    self.config.heuristic_timeout_s,
                )
                if found_at is not None:
                    return GapOutcome(
                        gap.index,
                        GapMethod.SLEDGEHAMMER,
                        suggestions[found_at],
                        tried=(*tried, *suggestions[: found_at + 1]),
                        seconds=time.monotonic() - started,
                    )
                tried = (*tried, *suggestions)
        return GapOutcome(gap.index, GapMethod.OPEN, None, tried=tried, seconds=time.monotonic() - started)

    def assemble(self, problem: Problem, sketch: str, gaps: Sequence[Gap], outcomes: Sequence[GapOutcome]) -> str:
        """The theory with each closed gap replaced by its method (open ones stay `sledgehammer`)."""
        text = self.full_text(problem, sketch)
        by_index = {outcome.index: outcome for outcome in outcomes}
        for gap in sorted(gaps, key=lambda g: g.start, reverse=True):
            outcome = by_index.get(gap.index)
            if outcome is not None and outcome.closing is not None:
                text = text[: gap.start] + outcome.closing + text[gap.end :]
        return text

    async def final_check(self, problem: Problem, text: str) -> VerifyResult:
        """`verify_theory` of the assembled theory (it refuses `sorry`/`oops` itself)."""
        return await self.checker.verify_theory(text, self.config.verify_timeout_s)

    async def close(self) -> None:
        """The checker belongs to the caller."""
        return None

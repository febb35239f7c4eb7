"""The Lean 4 side of draft-sketch-prove: every `sorry` of a sketch is a hole for our search.

The sketch (the model's tactic block after the statement's `:= by`) is checked with `env.check`; each
hole's goal is opened as a session. A hole is tried first with the automation battery, all tactics in
parallel, the first that closes it winning (the rest are cancelled); then by `BestFirstSearch` on the
hole under the per-hole budget, whose found proofs are judged by splicing them into the sketch and
checking that the hole is gone with no new error. Closed holes are spliced back with `env.syntax.splice`
and the whole proof goes to `env.verify`, the strongest judge the env has (a `JudgedEnv` puts the
comparator behind it where it is installed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

from lean_env.lean_syntax import offset_of, statement_head
from lean_env.protocol import LeanEnv
from lean_env.types import (
    CheckResult,
    Hole,
    InvalidStatement,
    Problem,
    ProofClosed,
    VerifyResult,
    VerifyStatus,
)
from prover.informal.concurrency import cancel_and_wait
from prover.informal.pipeline import InformalConfig
from prover.informal.types import Gap, GapMethod, GapOutcome, SketchRejected
from search.best_first import BestFirstSearch
from search.types import SearchConfig, SearchStatus, TacticGenerator

_CHECKS_KEPT = 512
"""Sketch checks remembered for `close_gap` (oldest dropped first); a forgotten one is re-derived."""


class LeanSketchBackend:
    """`SketchBackend` for Lean 4 over any `LeanEnv`, with our search as the prover of every hole.

    `search` is the search's configuration; its expansion and wall-clock budgets are replaced by the
    per-hole budget of `config`. The env and the generator are shared with whoever else uses them.
    """

    def __init__(self, env: LeanEnv, generator: TacticGenerator, search: SearchConfig, config: InformalConfig) -> None:
        self.env = env
        self.generator = generator
        self.config = config
        self.search = replace(
            search, max_expansions=config.hole_search_expansions, wall_clock_s=config.hole_search_wall_clock_s
        )
        self._checks: dict[str, CheckResult] = {}
        """The check of each sketch's full text, so `close_gap` knows every hole of the sketch."""

    @property
    def language(self) -> str:
        return "lean4"

    def full_text(self, problem: Problem, sketch: str) -> str:
        body = sketch.rstrip()
        if body and not body[0].isspace():
            body = "\n  " + body
        return f"{problem.header}{problem.formal_statement}{body}\n"

    async def gaps(self, problem: Problem, sketch: str) -> Sequence[Gap]:
        """Every `sorry` of the sketch with its goal; `SketchRejected` when Lean reports an error."""
        text = self.full_text(problem, sketch)
        result = await self.env.check(text, self.config.check_timeout_s, header=problem.header)
        if not result.ok:
            first = "; ".join(f"line {m.line}: {m.text}" for m in result.errors[:3])
            raise SketchRejected(f"Lean reports errors in the sketch: {first}")
        self._checks[text] = result
        while len(self._checks) > _CHECKS_KEPT:
            self._checks.pop(next(iter(self._checks)))
        gaps = []
        for hole in result.holes:
            start, end = offset_of(text, hole.start), offset_of(text, hole.end)
            gaps.append(Gap(index=hole.index, start=start, end=end, goal=hole.goal, handle=hole))
        return gaps

    async def close_gap(self, problem: Problem, sketch: str, gap: Gap) -> GapOutcome:
        started = time.monotonic()
        hole: Hole = gap.handle
        closing = await self._battery(problem, hole)
        tried = self.config.automation
        if closing is not None:
            return GapOutcome(gap.index, GapMethod.AUTOMATION, closing, tried=tried, seconds=time.monotonic() - started)
        text = self.full_text(problem, sketch)
        holes_before = len(self._checks[text].holes) if text in self._checks else None

        async def verify(tactics: tuple[str, ...]) -> VerifyResult:
            spliced = self.env.syntax.splice(text, [hole], [list(tactics)])
            result = await self.env.check(spliced, self.config.check_timeout_s, header=problem.header)
            if not result.ok:
                reason = "; ".join(message.text for message in result.errors[:3])
                return VerifyResult(VerifyStatus.LEAN_ERROR, reason=reason, checked_text=spliced)
            expected = (holes_before if holes_before is not None else len(result.holes) + 1) - 1
            if len(result.holes) != expected:
                return VerifyResult(
                    VerifyStatus.SORRY,
                    reason=f"{len(result.holes)} holes after splicing, expected {expected}",
                    checked_text=spliced,
                )
            return VerifyResult(VerifyStatus.VALID, checked_text=spliced)

        search = BestFirstSearch(problem, self.env, self.generator, self.search, hole=hole, verify=verify)
        result = await search.run()
        seconds = time.monotonic() - started
        if result.status is SearchStatus.PROVED and result.tactics:
            return GapOutcome(
                gap.index, GapMethod.SEARCH, "\n".join(result.tactics), tried=(*tried, "search"), seconds=seconds
            )
        if result.status is SearchStatus.ENV_ERROR:
            # The search swallowed an infrastructure failure into its status; the gap is open either way.
            return GapOutcome(
                gap.index, GapMethod.OPEN, None, tried=(*tried, f"search: {result.failure_reason}"), seconds=seconds
            )
        return GapOutcome(
            gap.index, GapMethod.OPEN, None, tried=(*tried, f"search: {result.status.value}"), seconds=seconds
        )

    async def _battery(self, problem: Problem, hole: Hole) -> str | None:
        """Every automation tactic on the hole at once; the first to close it wins, the rest are cancelled."""
        if not self.config.automation:
            return None
        session = await self.env.start(problem, hole=hole)
        if isinstance(session, InvalidStatement):
            return None
        try:
            state = session.initial_state

            async def run(tactic: str) -> tuple[str, object]:
                return tactic, await session.run_tactic(state, tactic, self.config.automation_timeout_s)

            tasks = [asyncio.create_task(run(tactic)) for tactic in self.config.automation]
            winner: str | None = None
            try:
                for next_done in asyncio.as_completed(tasks):
                    tactic, outcome = await next_done
                    if isinstance(outcome, ProofClosed):
                        winner = tactic
                        break
            finally:
                await cancel_and_wait(tasks)
            return winner
        finally:
            await session.close()

    def assemble(self, problem: Problem, sketch: str, gaps: Sequence[Gap], outcomes: Sequence[GapOutcome]) -> str:
        """The sketch with every closed hole replaced by its tactics (open ones stay `sorry`)."""
        text = self.full_text(problem, sketch)
        by_index = {outcome.index: outcome for outcome in outcomes}
        holes: list[Hole] = []
        proofs: list[list[str]] = []
        for gap in gaps:
            outcome = by_index.get(gap.index)
            if outcome is not None and outcome.closing is not None:
                holes.append(gap.handle)
                proofs.append([outcome.closing])
        return self.env.syntax.splice(text, holes, proofs) if holes else text

    async def final_check(self, problem: Problem, text: str) -> VerifyResult:
        """`env.verify` of the proof part of `text` (everything after the statement's `:=`)."""
        prefix = problem.header + problem.formal_statement
        if not text.startswith(prefix):
            return VerifyResult(
                VerifyStatus.STATEMENT_CHANGED, reason="the text does not start with the problem's statement"
            )
        head = statement_head(problem.formal_statement)
        tail = problem.formal_statement[len(head) :].lstrip()
        if not tail.startswith(":="):
            return VerifyResult(VerifyStatus.STATEMENT_CHANGED, reason="the statement does not end with `:=`")
        proof = (tail[2:] + text[len(prefix) :]).strip()
        return await self.env.verify(problem, proof, self.config.verify_timeout_s)

    async def close(self) -> None:
        """The env and the generator belong to the caller; only the cached checks are dropped."""
        self._checks.clear()

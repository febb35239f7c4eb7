"""`JudgedEnv`: a `LeanEnv` whose `verify` ends with a trusted final judge.

Everything but `verify` goes to the inner backend unchanged (sessions, tactics, `check`, syntax).
`verify` first runs the inner backend's own whole-file check (fast, pooled, with the text guard);
only a proof it accepts goes to the final judge (comparator), whose verdict is the one returned.
So a proof is accepted only when both accept it, and the verdict's `judge` names the judge that
accepted it (`comparator`), or the one that rejected it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lean_env.protocol import LeanEnv, ProofLanguage, ProofSession
from lean_env.types import CheckResult, Hole, InvalidStatement, Problem, VerifyResult


@runtime_checkable
class FinalJudge(Protocol):
    """A judge of whole proofs whose verdict does not come from a process that elaborated the proof."""

    @property
    def name(self) -> str:
        """The `lean_env.types.Judge` value its verdicts carry."""
        ...

    async def judge(self, problem: Problem, proof: str, timeout: float | None = None) -> VerifyResult: ...


class JudgedEnv:
    """Delegates to `inner`; `verify` = inner verify, then `final.judge` on what the inner check accepts.

    The final judge runs under its own timeout (its settings), not the one given to `verify`: a
    comparator run (two sandboxed builds) takes longer than a REPL re-check.
    """

    def __init__(self, inner: LeanEnv, final: FinalJudge) -> None:
        self.inner = inner
        self.final = final

    @property
    def syntax(self) -> ProofLanguage:
        return self.inner.syntax

    async def start(self, problem: Problem, *, hole: Hole | None = None) -> ProofSession | InvalidStatement:
        return await self.inner.start(problem, hole=hole)

    async def check(self, text: str, timeout: float, *, header: str | None = None) -> CheckResult:
        return await self.inner.check(text, timeout, header=header)

    async def verify(self, problem: Problem, proof: str, timeout: float) -> VerifyResult:
        """The inner verdict when it rejects; else the final judge's verdict (accepting or not)."""
        first = await self.inner.verify(problem, proof, timeout)
        if not first.ok:
            return first
        return await self.final.judge(problem, proof)

    async def close(self) -> None:
        await self.inner.close()

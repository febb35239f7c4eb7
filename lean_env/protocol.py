"""The protocols every proof-assistant backend implements: what the search and the pipelines need.

A backend opens one `ProofSession` per problem, or per hole of a checked text (the REPL pool pins
it to a worker, LeanDojo opens a `Dojo`), runs tactics on states of that session, checks whole
texts for messages and holes, and verifies whole proofs in a fresh environment. Every method is a
coroutine; blocking backends go behind `asyncio.to_thread` inside their adapter. Hundreds of
sessions may be open at once in one event loop.

The backend also owns its language (`ProofLanguage`): callers never build proof-assistant text
themselves, they ask `env.syntax` to render a tactic sequence, build a proof file or splice proofs
into holes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from lean_env.types import (
    CheckResult,
    Hole,
    InvalidStatement,
    Language,
    Problem,
    ProofState,
    TacticOutcome,
    VerifyResult,
)


@runtime_checkable
class ProofLanguage(Protocol):
    """The syntax rules of one proof assistant (`lean_env.lean_syntax.LEAN` for Lean 4)."""

    @property
    def language(self) -> Language: ...

    def render_tactics(self, tactics: Sequence[str]) -> str:
        """The proof text that runs `tactics` in order (Lean: a `by` block)."""
        ...

    def proof_file(self, problem: Problem, proof: str) -> str:
        """The whole file: `problem`'s header and unchanged statement, followed by `proof`."""
        ...

    def splice(self, text: str, holes: Sequence[Hole], proofs: Sequence[Sequence[str]]) -> str:
        """`text` with each of `holes` replaced by the tactics of the matching entry of `proofs`."""
        ...


@runtime_checkable
class ProofSession(Protocol):
    """Tactic-mode access to one goal: a problem's statement, or one hole of a checked text.

    `initial_state` is the goal before any tactic. `run_tactic` applies one tactic to a state
    previously returned by this session and returns its outcome; tactic failures (including its own
    `timeout`) are values, infrastructure failures raise `LeanEnvError`. A session may be used
    concurrently: several tactics on different (or the same) states can be in flight.
    """

    @property
    def theorem(self) -> Problem: ...

    @property
    def initial_state(self) -> ProofState: ...

    async def run_tactic(self, state: ProofState, tactic: str, timeout: float) -> TacticOutcome: ...

    async def close(self) -> None:
        """Release what the session holds. Safe to call twice."""
        ...


@runtime_checkable
class LeanEnv(Protocol):
    """A proof-assistant backend: opens sessions, checks texts, verifies whole proofs.

    `start(problem)` opens the problem's statement; `start(problem, hole=h)` opens a hole `h` that
    `check` reported. A statement (or header) that does not elaborate is returned as an
    `InvalidStatement` value; only failures of the backend itself raise `LeanEnvError`.

    `check(text)` elaborates a whole text and reports Lean's messages and every hole with its goal.
    `header` is the part of `text` the backend may share between checks (imports); when None the
    backend splits it off itself.

    `verify` re-checks `syntax.proof_file(problem, proof)` from scratch and accepts it only when
    Lean reports no error, the statement is unchanged, no `sorry`/`admit` is used and only the
    standard axioms appear. It never raises for a bad proof; it raises `LeanEnvError` only when the
    backend fails.
    """

    @property
    def syntax(self) -> ProofLanguage: ...

    async def start(self, problem: Problem, *, hole: Hole | None = None) -> ProofSession | InvalidStatement: ...

    async def check(self, text: str, timeout: float, *, header: str | None = None) -> CheckResult: ...

    async def verify(self, problem: Problem, proof: str, timeout: float) -> VerifyResult: ...

    async def close(self) -> None:
        """Stop every process the backend owns. Safe to call twice."""
        ...

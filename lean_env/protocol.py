"""The `LeanEnv` protocol: what the search needs from any Lean backend.

A backend opens one `ProofSession` per theorem (the REPL pool pins it to a worker, LeanDojo opens
a `Dojo`), runs tactics on states of that session, and checks whole proofs in a fresh environment.
Every method is a coroutine; blocking backends go behind `asyncio.to_thread` inside their adapter.
Hundreds of sessions may be open at once in one event loop.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lean_env.types import ProofState, TacticOutcome, Theorem, VerifyResult


@runtime_checkable
class ProofSession(Protocol):
    """Tactic-mode access to one theorem.

    `initial_state` is the theorem's goal before any tactic. `run_tactic` applies one tactic to a
    state previously returned by this session and returns its outcome; tactic failures (including
    its own `timeout`) are values, infrastructure failures raise `LeanEnvError`. A session may be
    used concurrently: several tactics on different (or the same) states can be in flight.
    """

    @property
    def theorem(self) -> Theorem: ...

    @property
    def initial_state(self) -> ProofState: ...

    async def run_tactic(self, state: ProofState, tactic: str, timeout: float) -> TacticOutcome: ...

    async def close(self) -> None:
        """Release what the session holds. Safe to call twice."""
        ...


@runtime_checkable
class LeanEnv(Protocol):
    """A Lean backend: opens proof sessions and verifies whole proofs.

    `verify` re-checks `theorem.file_text(proof)` from scratch and accepts it only when Lean reports
    no error, the statement is unchanged, no `sorry`/`admit` is used and only the standard axioms
    appear. It never raises for a bad proof; it raises `LeanEnvError` only when the backend fails.
    """

    async def start(self, theorem: Theorem) -> ProofSession: ...

    async def verify(self, theorem: Theorem, proof: str, timeout: float) -> VerifyResult: ...

    async def close(self) -> None:
        """Stop every process the backend owns. Safe to call twice."""
        ...

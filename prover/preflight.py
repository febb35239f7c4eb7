"""Checking that Lean and the model answer before a run spends its first problem on them.

Without this, a REPL command that does not exist or a model server that is down turns every problem
of a run into an `env_error`, one after the other. `preflight` opens the first problem once and asks
the model for one candidate of a trivial state; a failure raises `PreflightError` with one line that
names the part that failed and what to do, which the CLI prints and exits 2 on.
"""

from __future__ import annotations

from lean_env.errors import LeanEnvError
from lean_env.protocol import LeanEnv
from lean_env.types import InvalidStatement, Problem, ProofState
from search.types import GenerationRequest, TacticGenerator

_TRIVIAL_STATE = ProofState.from_goals(["⊢ True"])


class PreflightError(RuntimeError):
    """Lean or the model did not answer the preflight check; the message says which and how to fix it."""


async def check_lean(env: LeanEnv, problem: Problem) -> None:
    """Open `problem` once (a statement Lean rejects is fine: Lean answered). Raises `PreflightError`."""
    try:
        opened = await env.start(problem)
    except LeanEnvError as error:
        raise PreflightError(
            f"Lean did not start: {error}. Check --repl-command / --project-dir, or run `prover setup` "
            "(`prover doctor` shows what is missing)."
        ) from error
    if not isinstance(opened, InvalidStatement):
        await opened.close()


async def check_model(generator: TacticGenerator) -> None:
    """Ask for one candidate of a trivial goal. Raises `PreflightError` when the model fails."""
    try:
        await generator.generate([GenerationRequest(state=_TRIVIAL_STATE, num_samples=1)])
    except Exception as error:  # any failure of the model is what this check is for
        raise PreflightError(
            f"the model did not answer: {type(error).__name__}: {error}. Check --backend / --base-url / --model "
            "(is the server up?)."
        ) from error


async def preflight(env: LeanEnv, generator: TacticGenerator, problem: Problem) -> None:
    """Lean first (the cheaper thing to find missing), then the model."""
    await check_lean(env, problem)
    await check_model(generator)

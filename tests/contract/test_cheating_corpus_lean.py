"""The cheating corpus against real Lean: every proof cheat is refused, every genuine proof is accepted.

Run with `pytest -m lean` on a machine where `prover setup` has built the miniF2F project (Mathlib)
and the REPL; it skips with the reason otherwise. The cheats are checked through the real REPL env's
`verify` (the guard stops most of them before Lean; the point here is that none comes back `ok`),
header cheats through `verify` of a genuine proof under the cheating header (the env must apply
`lean_env.source_policy.enforce_policy`), and the genuine proofs must come back VALID from real Lean.
`judge` cases are Lean's messages modelled in the default tier (tests/lean_env/test_verification.py)
and are not replayed here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from lean_env.errors import MissingDependency
from lean_env.protocol import LeanEnv
from lean_env.types import InvalidStatement, Problem, ProofClosed
from tests.lean_env.cheating_corpus import CHEATS, GENUINE_PROOFS, GENUINE_STATEMENTS, HEADER, STATEMENT

pytestmark = pytest.mark.lean

THEOREM = Problem(name="t", header=HEADER, formal_statement=STATEMENT)
VERIFY_TIMEOUT_S = 300


@pytest.fixture
async def env() -> AsyncIterator[LeanEnv]:
    from prover.config import load_settings
    from prover.wiring import build_env

    try:
        settings = load_settings(environ=os.environ, overrides={"lean": {"backend": "repl", "repl": {"workers": 2}}})
        project = settings.lean.project_dir
        if project is None or not (project / "lake-manifest.json").exists():
            pytest.skip(f"the miniF2F project is not set up at {project}; run `prover setup`")
        built = build_env(settings.lean)
    except MissingDependency as error:
        pytest.skip(f"{error.what} is not available: {error.how}")
    except ImportError as error:
        pytest.skip(f"the REPL backend is not importable: {error}")
    try:
        yield built
    finally:
        await built.close()


async def test_no_proof_cheat_verifies(env: LeanEnv) -> None:
    accepted = []
    for cheat in [c for c in CHEATS if c.kind == "proof"]:
        verdict = await asyncio.wait_for(env.verify(THEOREM, cheat.text, VERIFY_TIMEOUT_S), VERIFY_TIMEOUT_S + 60)
        if verdict.ok:
            accepted.append(cheat.name)
    assert accepted == []


async def test_no_tactic_cheat_closes_the_goal(env: LeanEnv) -> None:
    session = await env.start(THEOREM)
    assert not isinstance(session, InvalidStatement), session
    try:
        closed = []
        for cheat in [c for c in CHEATS if c.kind == "tactic"]:
            outcome = await session.run_tactic(session.initial_state, cheat.text, 30)
            if isinstance(outcome, ProofClosed):
                closed.append(cheat.name)
        assert closed == []
    finally:
        await session.close()


async def test_no_statement_or_header_cheat_starts_or_verifies(env: LeanEnv) -> None:
    got_through = []
    for cheat in [c for c in CHEATS if c.kind in ("statement", "header")]:
        if cheat.kind == "statement":
            problem = Problem(name="t", header=HEADER, formal_statement=cheat.text)
            started = await env.start(problem)
            if not isinstance(started, InvalidStatement):
                await started.close()
                got_through.append(cheat.name)
        else:
            problem = Problem(name="t", header=cheat.text, formal_statement=STATEMENT)
            verdict = await env.verify(problem, "by exact h.symm", VERIFY_TIMEOUT_S)
            if verdict.ok:
                got_through.append(cheat.name)
    assert got_through == []


async def test_every_genuine_odd_proof_verifies(env: LeanEnv) -> None:
    refused = {}
    for name, proof in GENUINE_PROOFS:
        theorem = Problem(name="t", header=HEADER, formal_statement=GENUINE_STATEMENTS.get(name, STATEMENT))
        verdict = await asyncio.wait_for(env.verify(theorem, proof, VERIFY_TIMEOUT_S), VERIFY_TIMEOUT_S + 60)
        if not verdict.ok:
            refused[name] = f"{verdict.status}: {verdict.reason}"
    assert refused == {}

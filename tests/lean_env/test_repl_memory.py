"""Resident-memory limits, the memory watchdog and cancelled tactics, on the stand-in REPL.

The stand-in's `--alloc-on TACTIC=MB` writes MB of memory (resident), `--reserve-on TACTIC=MB` maps MB of
address space without touching it (what Lean's memory-mapped `.olean` files do), `--slow-on TACTIC=S`
answers after S seconds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from lean_env.repl import ReplConfig, ReplLeanEnv, ReplSession
from lean_env.repl.config import WORKER_MEMORY_CEILING_MB, WORKER_MEMORY_FLOOR_MB, memory_plan
from lean_env.types import Progress, ProofClosed, ProofState, TacticError, TacticErrorKind, Theorem
from tests.stand_ins.fake_repl import ScriptTheorem, stand_in_config, write_script

HEADER = "import Mathlib\n\n"
GOAL = "a b : ℕ\nh : a = b\n⊢ b = a"
AFTER_SUBST = "a : ℕ\n⊢ a = a"
T = Theorem(name="t", header=HEADER, formal_statement="theorem t (a b : ℕ) (h : a = b) : b = a := by")
SCRIPT = ScriptTheorem(
    statement=T.formal_statement,
    goal=GOAL,
    states={
        GOAL: {
            "subst h": AFTER_SUBST,
            "exact h.symm": {"goals": []},
            "bad": {"error": "Unknown identifier `bad`"},
            "grow": AFTER_SUBST,
            "reserve": AFTER_SUBST,
            "slow": AFTER_SUBST,
            "very_slow": AFTER_SUBST,
            "balloon": AFTER_SUBST,
        },
        AFTER_SUBST: {"rfl": {"goals": []}},
    },
)
FLAGS = (
    "--alloc-on",
    "grow=160",
    "--reserve-on",
    "reserve=8192",
    "--slow-on",
    "slow=0.6",
    "--slow-on",
    "very_slow=60",
    "--alloc-on",
    "balloon=400",
    "--slow-on",
    "balloon=60",
)
AFTER = Progress(ProofState.from_goals([AFTER_SUBST]))


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "script.json", [SCRIPT])


def make_env(script: Path, **fields: Any) -> ReplLeanEnv:
    fields.setdefault("workers", 1)
    fields.setdefault("memory_limit_mb", None)
    fields.setdefault("memory_poll_s", 0.05)
    return ReplLeanEnv(stand_in_config(script=script, flags=FLAGS, **fields))


async def opened(env: ReplLeanEnv) -> ReplSession:
    session = await env.start(T)
    assert isinstance(session, ReplSession)
    return session


# -- memory ------------------------------------------------------------------------------------


async def test_a_worker_that_grows_past_its_limit_is_recycled_between_commands(script: Path) -> None:
    env = make_env(script, max_worker_memory_mb=100, memory_kill_ratio=20, memory_check_every=1)
    try:
        session = await opened(env)
        home = session.home
        assert await session.run_tactic(session.initial_state, "grow", 10) == AFTER
        deadline = time.monotonic() + 5
        while home is not None and home.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert home is not None and not home.alive, "the worker over its RSS limit was recycled"
        assert env.stats().recycled >= 1 and env.stats().crashes == 0
        # The session carries on on the replacement (its path replayed there).
        assert await session.run_tactic(session.initial_state, "exact h.symm", 10) == ProofClosed()
    finally:
        await env.close()


async def test_the_watchdog_kills_a_worker_that_grows_far_past_its_limit_mid_command(script: Path) -> None:
    env = make_env(script, max_worker_memory_mb=100, memory_kill_ratio=2.0)
    try:
        session = await opened(env)
        home = session.home
        started = time.monotonic()
        outcome = await session.run_tactic(session.initial_state, "balloon", 30)
        assert time.monotonic() - started < 10, "killed long before the tactic's own 60 s"
        assert isinstance(outcome, TacticError) and outcome.kind is TacticErrorKind.TIMEOUT
        assert "memory watchdog" in outcome.message and "past the kill level 200 MiB" in outcome.message
        assert home is not None and not home.alive and home.death == "memory"
        assert await session.run_tactic(session.initial_state, "exact h.symm", 10) == ProofClosed()
    finally:
        await env.close()


async def test_reserving_address_space_without_touching_it_is_not_killed(script: Path) -> None:
    # 8 GiB mapped, nothing written: like `import Mathlib`'s memory-mapped .olean files.
    env = make_env(script, max_worker_memory_mb=100, memory_kill_ratio=1.0, memory_check_every=1)
    try:
        session = await opened(env)
        home = session.home
        assert await session.run_tactic(session.initial_state, "reserve", 10) == AFTER
        assert await session.run_tactic(session.initial_state, "slow", 10) == AFTER  # the watchdog polls meanwhile
        await asyncio.sleep(0.3)
        assert home is not None and home.alive and not home.over_memory
        assert 0 < home.last_rss < 100 * 2**20
        assert env.stats().recycled == 0
    finally:
        await env.close()


async def test_an_address_space_limit_would_have_killed_the_same_worker(script: Path) -> None:
    """Why RLIMIT_AS is off by default: a mapping that uses no memory breaks it."""
    env = make_env(script, memory_limit_mb=2048, max_worker_memory_mb=0, crash_retries=0)
    try:
        session = await opened(env)
        with pytest.raises(Exception, match="MemoryError"):
            await session.run_tactic(session.initial_state, "reserve", 10)
    finally:
        await env.close()


def test_memory_defaults_are_resident_and_sized_from_the_machine() -> None:
    config = ReplConfig(workers=7, max_verify_workers=1)
    assert config.memory_limit_mb is None and config.address_space_bytes is None
    gib = 2**30
    assert config.worker_memory_mb(total_bytes=256 * gib) == int(256 * 1024 * 0.85 / 8)
    assert config.worker_memory_mb(total_bytes=16 * gib) == WORKER_MEMORY_FLOOR_MB
    assert config.worker_memory_mb(total_bytes=4096 * gib) == WORKER_MEMORY_CEILING_MB
    assert ReplConfig(max_worker_memory_mb=0).recycle_rss_bytes is None
    explicit = ReplConfig(max_worker_memory_mb=1000, memory_kill_ratio=1.5)
    assert explicit.recycle_rss_bytes == 1000 * 2**20 and explicit.kill_rss_bytes == 1500 * 2**20


def test_the_memory_plan_says_when_the_workers_do_not_fit() -> None:
    gib = 2**30
    roomy = memory_plan(ReplConfig(workers=7, max_verify_workers=1), total_bytes=256 * gib)
    assert roomy.fits and roomy.processes == 8 and "does not fit" not in roomy.describe()
    tight = memory_plan(ReplConfig(workers=15, max_verify_workers=2), total_bytes=64 * gib)
    assert not tight.fits
    assert "does not fit" in tight.describe() and "lean.repl.workers" in tight.describe()
    assert "17 Lean processes" in tight.describe()


# -- cancelled tactics --------------------------------------------------------------------------


async def test_a_cancelled_tactic_is_drained_and_the_next_one_gets_its_own_reply(script: Path) -> None:
    env = make_env(script, cancel_drain_s=5)
    try:
        session = await opened(env)
        home = session.home
        task = asyncio.ensure_future(session.run_tactic(session.initial_state, "slow", 10))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        started = time.monotonic()
        bad = await session.run_tactic(session.initial_state, "bad", 10)
        assert isinstance(bad, TacticError) and "Unknown identifier `bad`" in bad.message  # not `slow`'s reply
        assert time.monotonic() - started < 3
        assert session.home is home and home is not None and home.alive, "drained, not recycled"
        assert env.stats().crashes == 0 and env.stats().timeouts == 0
    finally:
        await env.close()


async def test_a_cancelled_slow_tactic_frees_its_worker_within_the_drain_bound(script: Path) -> None:
    env = make_env(script, cancel_drain_s=0.3)
    try:
        session = await opened(env)
        home = session.home
        task = asyncio.ensure_future(session.run_tactic(session.initial_state, "very_slow", 55))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        started = time.monotonic()
        closed = await session.run_tactic(session.initial_state, "exact h.symm", 10)
        assert closed == ProofClosed()
        assert time.monotonic() - started < 5, "capacity came back long before the 55 s of the cancelled tactic"
        assert home is not None and not home.alive and home.death == "cancelled"
        other = await env.start(T)
        assert isinstance(other, ReplSession)
        assert await other.run_tactic(other.initial_state, "subst h", 10) == AFTER
        assert env.stats().crashes == 0
    finally:
        await env.close()

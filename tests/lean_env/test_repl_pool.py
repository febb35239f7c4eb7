"""The worker pool: header reuse, back-pressure, replacement after timeouts and crashes, recycling, load."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lean_env.errors import BackendCrashed, BackendStartError, BackendTimeout, PoolExhausted
from lean_env.repl import CommandReply, ReplPool, WorkerGone
from tests.stand_ins.fake_repl import ScriptTheorem, linear_theorem, stand_in_config, write_script

HEADER = "import Mathlib\nopen BigOperators Real Nat Topology Rat\n\n"
OTHER_HEADER = "import Mathlib\n\n"
STATEMENT = "theorem t1 (p : Prop) (hp : p) : p := by"


def many_theorems(count: int) -> list[ScriptTheorem]:
    return [
        linear_theorem(f"theorem thm_{i} (n : ℕ) (h : n = {i}) : n + 0 = {i} := by", ["simp [h]"], goal=f"goal {i}")
        for i in range(count)
    ]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "script.json", [linear_theorem(STATEMENT, ["intro x", "exact hp"])])


async def open_theorem(pool: ReplPool, header: str = HEADER) -> int:
    async with pool.lease(header) as worker:
        reply = await worker.command(STATEMENT + " sorry", env=worker.header_env, timeout=5)
    assert isinstance(reply, CommandReply)
    return reply.sorries[-1].proof_state


async def test_back_pressure_raises_pool_exhausted_after_the_acquire_timeout(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1, acquire_timeout_s=0.2))
    try:
        held = await pool.acquire(HEADER)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(PoolExhausted, match=r"no Lean REPL worker became free within 0\.2 s"):
            await pool.acquire(HEADER)
        assert 0.15 <= loop.time() - began < 2
        assert pool.stats().acquire_timeouts == 1
        pool.release(held)
        again = await pool.acquire(HEADER)
        assert again is held  # the header is elaborated once and the worker reused
        pool.release(again)
        assert pool.stats().starts == 1
    finally:
        await pool.close()


async def test_waiters_are_served_in_arrival_order(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1))
    try:
        held = await pool.acquire(HEADER)
        order: list[int] = []

        async def take(index: int) -> None:
            async with pool.lease(HEADER):
                order.append(index)
                await asyncio.sleep(0.01)

        tasks = [asyncio.ensure_future(take(i)) for i in range(5)]
        await asyncio.sleep(0.05)
        assert pool.stats().waiting == 5
        pool.release(held)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]
    finally:
        await pool.close()


async def test_timeout_kills_the_worker_and_a_fresh_one_replaces_it(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1, flags=("--hang-on", "intro x")))
    try:
        proof_state = await open_theorem(pool)
        worker = await pool.acquire(HEADER)
        with pytest.raises(BackendTimeout):
            await worker.tactic("intro x", proof_state, timeout=0.3)
        pool.release(worker)
        assert not worker.alive
        fresh = await pool.acquire(HEADER)
        assert fresh is not worker and fresh.alive and fresh.pid != worker.pid
        assert worker not in pool.workers
        pool.release(fresh)
        stats = pool.stats()
        assert stats.timeouts == 1 and stats.restarts == 1 and stats.starts == 2
        # The killed worker is never handed out again, however often we ask.
        for _ in range(3):
            async with pool.lease(HEADER) as again:
                assert again is not worker
    finally:
        await pool.close()


async def test_crashed_worker_is_restarted_with_backoff(script: Path) -> None:
    # Request 2 of every process (the header is request 1) crashes in the middle of its reply.
    config = stand_in_config(
        script=script, workers=1, flags=("--crash-at-request", "2"), restart_backoff_s=0.3, max_restart_backoff_s=5
    )
    pool = ReplPool(config)
    loop = asyncio.get_running_loop()
    try:
        with pytest.raises(BackendCrashed) as caught:
            await open_theorem(pool)
        assert "INTERNAL PANIC" in caught.value.stderr
        began = loop.time()
        with pytest.raises(BackendCrashed):
            await open_theorem(pool)  # the replacement starts after 0.3 s and crashes the same way
        assert loop.time() - began >= 0.25
        began = loop.time()
        async with pool.lease(HEADER) as worker:  # after two crashes in a row the delay doubles
            assert worker.alive
        assert loop.time() - began >= 0.5
        stats = pool.stats()
        assert stats.crashes == 2 and stats.restarts == 2
    finally:
        await pool.close()


async def test_worker_is_recycled_after_max_requests(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1, max_requests_per_worker=3))
    try:
        seen = []
        for _ in range(5):
            async with pool.lease(HEADER) as worker:
                seen.append(worker)
                await worker.command(STATEMENT + " sorry", env=worker.header_env, timeout=5)
        # header + 2 commands reach 3 requests: the third command runs on a new process.
        assert seen[0] is seen[1] and seen[2] is not seen[1]
        assert all(w.requests <= 3 for w in seen)
        assert not seen[0].alive
        assert pool.stats().recycled == 2
    finally:
        await pool.close()


async def test_worker_is_recycled_when_its_memory_passes_the_limit(script: Path) -> None:
    config = stand_in_config(
        script=script, workers=1, flags=("--grow-mb-per-request", "40"), max_worker_memory_mb=150, memory_check_every=1
    )
    pool = ReplPool(config)
    try:
        first = None
        for _ in range(6):
            async with pool.lease(HEADER) as worker:
                first = first or worker
                await worker.command(STATEMENT + " sorry", env=worker.header_env, timeout=5)
        assert first is not None and not first.alive
        assert pool.stats().recycled >= 1
    finally:
        await pool.close()


async def test_pinned_waiters_learn_that_their_worker_is_gone(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=2))
    try:
        worker = await pool.acquire(HEADER)
        pinned = asyncio.ensure_future(pool.acquire(HEADER, pinned=worker))
        await asyncio.sleep(0.01)
        await worker.kill("crash")
        pool.release(worker)
        with pytest.raises(WorkerGone):
            await pinned
        with pytest.raises(WorkerGone):
            await pool.acquire(HEADER, pinned=worker)
    finally:
        await pool.close()


async def test_workers_are_keyed_by_header(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1))
    try:
        async with pool.lease(HEADER) as first:
            assert first.header == HEADER
        # The pool is full; the idle worker of another header makes room.
        async with pool.lease(OTHER_HEADER) as second:
            assert second.header == OTHER_HEADER and second is not first
        assert not first.alive
        assert pool.stats().workers == 1
    finally:
        await pool.close()


async def test_header_failure_fails_every_waiter_with_stderr(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1, flags=("--header-error", "unknown module Mathlib")))
    try:
        results = await asyncio.gather(*(pool.acquire(HEADER) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, BackendStartError) for r in results)
        assert "unknown module Mathlib" in str(results[0])
        assert pool.stats().start_failures >= 1
    finally:
        await pool.close()


async def test_concurrent_requests_each_get_exactly_their_own_answer(tmp_path: Path) -> None:
    theorems = many_theorems(240)
    script = write_script(tmp_path / "many.json", theorems)
    pool = ReplPool(stand_in_config(script=script, workers=4, flags=("--latency-ms", "1")))

    async def ask(theorem: ScriptTheorem) -> tuple[str, str, int]:
        async with pool.lease(HEADER) as worker:
            reply = await worker.command(theorem.statement + " sorry", env=worker.header_env, timeout=10)
            assert isinstance(reply, CommandReply)
            return theorem.goal, reply.sorries[-1].goal, worker.id

    try:
        answers = await asyncio.wait_for(asyncio.gather(*(ask(t) for t in theorems)), 60)
        assert [asked for asked, _, _ in answers] == [t.goal for t in theorems]
        assert all(asked == got for asked, got, _ in answers)
        assert len({worker for _, _, worker in answers}) == 4
        stats = pool.stats()
        assert stats.requests == len(theorems) + 4  # one header per worker; nothing lost, nothing twice
        assert stats.workers == 4 and stats.busy == 0 and stats.waiting == 0
        assert stats.latency_p50_ms > 0 and stats.latency_max_ms >= stats.latency_p95_ms >= stats.latency_p50_ms
    finally:
        await pool.close()


async def test_close_fails_waiters_and_stops_processes(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1))
    held = await pool.acquire(HEADER)
    waiting = asyncio.ensure_future(pool.acquire(HEADER))
    await asyncio.sleep(0.01)
    await pool.close()
    with pytest.raises(BackendCrashed, match="closed"):
        await waiting
    assert not held.alive
    with pytest.raises(BackendCrashed, match="closed"):
        await pool.acquire(HEADER)
    await pool.close()  # twice is fine


# --- verification workers: fresh, never reused, spares started ahead ------------------------------------


async def settle(pool: ReplPool, want: int, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while pool.stats().verify_workers != want or any(n for n in pool._fresh_starting.values()):
            await asyncio.sleep(0.01)


async def test_fresh_workers_are_never_shared_nor_reused(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1, verify_spares=1))
    try:
        await pool.warm_up(HEADER)
        seen = set()
        for _ in range(3):
            worker = await pool.acquire_fresh(HEADER)
            assert worker not in pool.workers and worker.id not in seen
            assert worker.requests == 1  # only the header ran in it
            seen.add(worker.id)
            pool.discard(worker)
            # A discarded worker never comes back, and its replacement is started in the background.
            await settle(pool, 1)
            assert not worker.alive
        assert pool.stats().verify_starts == 4  # three taken, one spare waiting
        assert all(w.requests == 1 for w in pool.workers)  # the shared worker served none of it
    finally:
        await pool.close()


async def test_a_spare_is_started_ahead_and_taken_without_waiting(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1, verify_spares=1))
    try:
        pool.prepare_fresh(HEADER)
        await settle(pool, 1)
        assert pool.stats().verify_starts == 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        worker = await pool.acquire_fresh(HEADER)
        assert loop.time() - started < 0.05  # no process start on this path
        pool.discard(worker)
    finally:
        await pool.close()


async def test_verification_workers_are_capped_and_callers_wait_their_turn(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, workers=1, verify_spares=0, max_verify_workers=1))
    try:
        first = await pool.acquire_fresh(HEADER)
        second = asyncio.ensure_future(pool.acquire_fresh(HEADER))
        await asyncio.sleep(0.3)
        assert not second.done() and pool.stats().verify_workers == 1
        pool.discard(first)
        worker = await asyncio.wait_for(second, 5)
        assert worker is not first and worker.alive
        pool.discard(worker)
        await settle(pool, 0)
    finally:
        await pool.close()


async def test_a_fresh_worker_whose_header_fails_raises_start_error(script: Path) -> None:
    pool = ReplPool(stand_in_config(script=script, flags=("--header-error", "unknown package 'Mathlib'")))
    try:
        with pytest.raises(BackendStartError, match="unknown package"):
            await pool.acquire_fresh(HEADER)
    finally:
        await pool.close()

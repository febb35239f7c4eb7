"""Throughput of the REPL pool, and the client's own overhead per request, against the REPL stand-in.

The stand-in (`tests/stand_ins/fake_repl.py`) answers every request after a set latency, like a
Lean REPL whose elaboration takes that long. Each request opens a theorem (`statement sorry` on the
header's environment), leased from the pool the way sessions and verification lease workers.

1. Requests per second through one `ReplProcess`, sequentially (the baseline: one REPL), then
   through `ReplPool` with 1, 2, 4 and 8 workers under enough concurrent callers to keep all busy.
2. Client overhead: at zero latency, the CPU time this process spends per request through the pool
   (lease, framing, JSON parsing into typed replies, release, counters) minus the CPU time of a
   bare asyncio round trip to the same stand-in (write the bytes, read up to the blank line,
   nothing else). CPU time of this process only, so the stand-in's own work and other load on the
   machine stay out of the figure; best of three. Wall-clock round trips are printed alongside.
3. Verification latency: wall-clock time of `ReplLeanEnv.verify` on a proof the stand-in accepts,
   one at a time, at the same stand-in latency (median and p95 of `--verify-requests` checks). Every
   check runs in a fresh worker discarded afterwards: taking a pre-started spare, three requests (the
   proof, the probe, a closing sentinel). Timed 0.25 s apart (the spare is
   replaced in between, as between a search's checks; the headline figure) and back to back (each
   check waits for a worker to start: the stand-in's start-up, `import Mathlib` for real Lean).

    .venv/bin/python bench/env_pool.py [--latency-ms 10] [--requests 400] [--overhead-requests 1000]
        [--verify-requests 100]

The last line is `pool_speedup_4_workers=<x> client_overhead_us=<n> verify_p50_ms=<m>`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lean_env.repl import CommandReply, ReplConfig, ReplLeanEnv, ReplPool, ReplProcess
from lean_env.repl.wire import REPLY_TERMINATOR, command_request, encode_request
from lean_env.types import Problem
from tests.stand_ins.fake_repl import linear_theorem, stand_in_command, write_script

HEADER = "import Mathlib\nset_option maxHeartbeats 400000\nopen BigOperators Real Nat Topology Rat\n\n"
STATEMENT = "theorem bench_t (x y : ℝ) (h₀ : 0 < x) (h₁ : x < y) : x ^ 2 < y ^ 2 := by"
WORKER_COUNTS = (1, 2, 4, 8)


def config_for(script: Path, latency_ms: float, workers: int) -> ReplConfig:
    flags = ("--latency-ms", str(latency_ms)) if latency_ms else ()
    return ReplConfig(
        command=stand_in_command(script=script, flags=flags),
        workers=workers,
        memory_limit_mb=2048,
        max_requests_per_worker=10**9,
        acquire_timeout_s=600.0,
        start_timeout_s=60.0,
    )


def check(reply: object) -> None:
    if not isinstance(reply, CommandReply) or not reply.sorries:
        raise RuntimeError(f"unexpected reply from the stand-in: {reply!r}")


async def one_process(script: Path, latency_ms: float, requests: int) -> float:
    """Requests per second through a single REPL process, one request at a time."""
    process = ReplProcess(config_for(script, latency_ms, 1), HEADER)
    await process.start()
    try:
        started = time.perf_counter()
        for _ in range(requests):
            check(await process.command(STATEMENT + " sorry", env=process.header_env, timeout=60))
        return requests / (time.perf_counter() - started)
    finally:
        await process.close()


async def through_pool(script: Path, latency_ms: float, workers: int, requests: int) -> tuple[float, float]:
    """Requests per second through a pool of `workers`, and the pool's median request latency (ms)."""
    pool = ReplPool(config_for(script, latency_ms, workers))
    await pool.warm_up(HEADER)
    callers = max(16, 4 * workers)
    remaining = requests

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with pool.lease(HEADER) as worker:
                check(await worker.command(STATEMENT + " sorry", env=worker.header_env, timeout=60))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed = time.perf_counter() - started
        return requests / elapsed, pool.stats().latency_p50_ms
    finally:
        await pool.close()


async def raw_round_trips(script: Path, requests: int) -> tuple[float, float]:
    """(wall, CPU) seconds per request of a bare asyncio round trip to the stand-in (no parsing, no pool)."""
    proc = await asyncio.create_subprocess_exec(
        *stand_in_command(script=script),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**26,
    )
    assert proc.stdin is not None and proc.stdout is not None
    header = encode_request(command_request(HEADER))
    proc.stdin.write(header)
    await proc.stdin.drain()
    await proc.stdout.readuntil(REPLY_TERMINATOR)
    data = encode_request(command_request(STATEMENT + " sorry", 0))
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            proc.stdin.write(data)
            await proc.stdin.drain()
            await proc.stdout.readuntil(REPLY_TERMINATOR)
        return (time.perf_counter() - started) / requests, (time.process_time() - cpu) / requests
    finally:
        proc.stdin.close()
        await proc.wait()


async def client_round_trips(script: Path, requests: int) -> tuple[float, float]:
    """(wall, CPU) seconds per request through the pool (one worker, one caller) at zero latency."""
    pool = ReplPool(config_for(script, 0.0, 1))
    await pool.warm_up(HEADER)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            async with pool.lease(HEADER) as worker:
                check(await worker.command(STATEMENT + " sorry", env=worker.header_env, timeout=60))
        return (time.perf_counter() - started) / requests, (time.process_time() - cpu) / requests
    finally:
        await pool.close()


async def verify_latencies(script: Path, latency_ms: float, requests: int, gap_s: float) -> tuple[float, float]:
    """(median, p95) wall-clock ms of `ReplLeanEnv.verify` on an accepted proof, one at a time.

    `gap_s` apart (not timed): with a gap the spare taken by one check is replaced before the next, as
    between the checks of a search; back to back (0) each check waits for a worker to start.
    """
    env = ReplLeanEnv(config_for(script, latency_ms, 2))
    problem = Problem(name="bench_t", header=HEADER, formal_statement=STATEMENT)
    proof = "by\n  nlinarith [h₀, h₁]"
    await env.warm_up(HEADER)
    try:
        first = await env.verify(problem, proof, 60)  # the first may wait for a spare to start
        if not first.ok:
            raise RuntimeError(f"the stand-in rejected the bench proof: {first.reason}")
        await asyncio.sleep(0.5)
        times = []
        for _ in range(requests):
            await asyncio.sleep(gap_s)
            started = time.perf_counter()
            verdict = await env.verify(problem, proof, 60)
            times.append((time.perf_counter() - started) * 1000)
            if not verdict.ok:
                raise RuntimeError(f"the stand-in rejected the bench proof: {verdict.reason}")
        times.sort()
        return times[len(times) // 2], times[min(len(times) - 1, int(0.95 * len(times)))]
    finally:
        await env.close()


async def run(
    latency_ms: float, requests: int, overhead_requests: int, verify_requests: int
) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as directory:
        script = write_script(Path(directory) / "bench.json", [linear_theorem(STATEMENT, ["nlinarith [h₀, h₁]"])])
        print(f"REPL stand-in at {latency_ms:g} ms per request, {requests} requests per configuration")
        print(f"{'configuration':<28}{'workers':>8}{'req/s':>10}{'speedup':>9}{'p50 ms':>9}")
        baseline = await one_process(script, latency_ms, requests)
        print(f"{'one REPL process':<28}{1:>8}{baseline:>10.1f}{1.0:>9.2f}{'':>9}")
        speedups: dict[int, float] = {}
        for workers in WORKER_COUNTS:
            rate, p50 = await through_pool(script, latency_ms, workers, requests)
            speedups[workers] = rate / baseline
            print(f"{'ReplPool':<28}{workers:>8}{rate:>10.1f}{speedups[workers]:>9.2f}{p50:>9.2f}")
        raws, clients = [], []
        for _ in range(3):  # interleaved, so both see the same machine
            raws.append(await raw_round_trips(script, overhead_requests))
            clients.append(await client_round_trips(script, overhead_requests))
        raw_wall, raw_cpu = min(w for w, _ in raws), min(c for _, c in raws)
        client_wall, client_cpu = min(w for w, _ in clients), min(c for _, c in clients)
        overhead_us = max(0.0, (client_cpu - raw_cpu) * 1e6)
        print(
            f"round trip at 0 ms latency, wall: bare asyncio {raw_wall * 1e6:.0f} µs, "
            f"through the pool {client_wall * 1e6:.0f} µs"
        )
        print(
            f"client CPU per request: bare asyncio {raw_cpu * 1e6:.0f} µs, through the pool {client_cpu * 1e6:.0f} µs "
            f"-> client overhead {overhead_us:.0f} µs"
        )
        verify_p50, verify_p95 = await verify_latencies(script, latency_ms, verify_requests, 0.25)
        print(
            f"verify, one at a time at {latency_ms:g} ms latency, 0.25 s apart: "
            f"p50 {verify_p50:.1f} ms, p95 {verify_p95:.1f} ms"
        )
        starved_p50, starved_p95 = await verify_latencies(script, latency_ms, verify_requests, 0.0)
        print(
            f"verify, back to back (each waits for a worker start): p50 {starved_p50:.1f} ms, p95 {starved_p95:.1f} ms"
        )
        return speedups[4], overhead_us, verify_p50


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--latency-ms", type=float, default=10.0, help="stand-in latency per request")
    parser.add_argument("--requests", type=int, default=400, help="requests per configuration")
    parser.add_argument("--overhead-requests", type=int, default=1000, help="requests per overhead measurement")
    parser.add_argument("--verify-requests", type=int, default=100, help="verifications timed one at a time")
    args = parser.parse_args(argv)
    if min(args.requests, args.overhead_requests, args.verify_requests) < 1 or args.latency_ms < 0:
        parser.error("--requests, --overhead-requests and --verify-requests must be >= 1, --latency-ms >= 0")
    speedup, overhead_us, verify_p50 = asyncio.run(
        run(args.latency_ms, args.requests, args.overhead_requests, args.verify_requests)
    )
    print(f"pool_speedup_4_workers={speedup:.2f} client_overhead_us={overhead_us:.0f} verify_p50_ms={verify_p50:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Load and faults on `prover serve`: many clients, thousands of jobs, the server SIGKILLed mid-run.

    python bench/service_load.py                     # 200 clients, 2,000 jobs, one SIGKILL + restart
    python bench/service_load.py --clients 20 --jobs 100 --workers 4     # a quick run
    python bench/service_load.py --dir /tmp/load --profile   # py-spy samples of the server and the bench

`--profile` (needs py-spy) writes collapsed stacks (`py-spy record --format raw --threads --idle`)
of each server start to `<dir>/profile-<n>.txt` and of the bench itself to `<dir>/profile-client.txt`.

The server is the real one (`prover serve --demo`: the REPL stand-in as Lean, the scripted model,
SQLite job store in WAL mode) on loopback, as a subprocess. Each client submits jobs (`POST
/v1/prove` with an `Idempotency-Key`, so a submission retried across the crash never makes a second
job), then polls `GET /v1/jobs/{id}` until the job is terminal. When a fraction of the jobs has been
submitted the server is SIGKILLed and started again on the same database; clients retry through the
outage. At the end the database itself is read: every accepted job must be terminal and have
exactly one `finished` event.

Submit and status latencies are of the requests that got an answer (the outage is counted in
retries, not in latency). Last line, for scripts: `service_jobs=<n> lost=<l> duplicated=<d> p99_submit_ms=<x>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from prover.demo import STATEMENTS
from prover.http_headers import retry_after

TERMINAL = {"completed", "failed", "cancelled"}
PROVABLE = [STATEMENTS["mathd_algebra_1"], STATEMENTS["mathd_numbertheory_2"], STATEMENTS["amc12a_2000_p3"]]
"""Two the stand-ins prove and one they cannot: jobs of both outcomes."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """`prover serve --demo` as a subprocess that can be killed and started again on the same store."""

    port: int
    database: Path
    home: Path
    workers: int
    log: Path
    profile: bool = False
    process: subprocess.Popen[bytes] | None = None
    profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    client_profiler: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        command = [sys.executable, "-m", "prover.cli.main", "serve", "--demo", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--db", f"sqlite:///{self.database}", "--workers", str(self.workers)]
        command += ["--set", "service.poll_s=0.05", "--set", f"service.max_queued={10**6}"]
        command += ["--set", "service.lease_s=10", "--set", "service.heartbeat_s=1"]
        command += ["--samples", "4", "--expansions", "8", "--timeout", "60"]
        env = {**os.environ, "PROVER_HOME": str(self.home)}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.starts += 1
        if self.profile:
            self._profile()

    def _profile(self) -> None:
        """py-spy (when installed) samples this start of the server into `<dir>/profile-<n>.txt` (collapsed stacks)."""
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(py_spy).exists():
            print("  --profile: py-spy is not installed; not profiling", flush=True)
            return
        assert self.process is not None
        self.profile_pid(self.process.pid, self.log.with_name(f"profile-{self.starts}.txt"))

    def profile_pid(self, pid: int, out: Path) -> subprocess.Popen[bytes]:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        command = [py_spy, "record", "--pid", str(pid), "--rate", "50", "--format", "raw"]
        command += ["--threads", "--idle", "--nonblocking", "-o", str(out)]
        with open(self.log.with_name("py-spy.log"), "ab") as log:
            profiler = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.profilers.append(profiler)
        return profiler

    def wait_profilers(self) -> None:
        for profiler in self.profilers:
            try:
                profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                profiler.terminate()

    async def wait_healthy(self, timeout: float = 60.0) -> float:
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
            while time.monotonic() - started < timeout:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log}")
                try:
                    if (await client.get("/health", timeout=1.0)).status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the server did not become healthy in {timeout} s; see {self.log}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Tally:
    submit_ms: list[float] = field(default_factory=list)
    status_ms: list[float] = field(default_factory=list)
    retries: int = 0
    accepted: dict[str, str] = field(default_factory=dict)
    """idempotency key -> job id."""
    final_state: dict[str, str] = field(default_factory=dict)
    """job id -> the terminal state a client saw."""
    submitted: int = 0


async def _request(client: httpx.AsyncClient, tally: Tally, method: str, url: str, **kwargs: object) -> httpx.Response:
    """The request, retried through the outage (connection errors, 5xx, 429) until it gets an answer."""
    delay = 0.05
    while True:
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code < 500 and response.status_code != 429:
            elapsed = (time.perf_counter() - started) * 1000
            (tally.submit_ms if method == "POST" else tally.status_ms).append(elapsed)
            return response
        tally.retries += 1
        if response is not None and response.status_code == 429:
            asked = retry_after(response)
            delay = 1.0 if asked is None else asked
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _client(base_url: str, next_job: list[int], jobs: int, tally: Tally, poll_s: float) -> None:
    # Each client has its own connection pool of one connection, as separate clients would: one
    # pool of 200 connections shared by every client costs httpcore a scan of all 200 per request,
    # which on a small machine made the bench's own event loop the bottleneck it was measuring.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        await _client_jobs(client, next_job, jobs, tally, poll_s)


async def _client_jobs(client: httpx.AsyncClient, next_job: list[int], jobs: int, tally: Tally, poll_s: float) -> None:
    while next_job[0] < jobs:
        index = next_job[0]
        next_job[0] += 1
        key = f"load-{index}"
        body = {"statement": PROVABLE[index % len(PROVABLE)], "expansions": 8, "samples": 4}
        response = await _request(client, tally, "POST", "/v1/prove", json=body, headers={"Idempotency-Key": key})
        if response.status_code not in (200, 202):
            raise RuntimeError(f"submit refused: {response.status_code} {response.text}")
        job_id = response.json()["id"]
        tally.accepted[key] = job_id
        tally.submitted += 1
        while True:
            await asyncio.sleep(poll_s)
            status = await _request(client, tally, "GET", f"/v1/jobs/{job_id}")
            state = status.json()["state"]
            if state in TERMINAL:
                tally.final_state[job_id] = state
                break


async def _killer(server: Server, tally: Tally, at: int, downtime_s: float) -> float:
    while tally.submitted < at:
        await asyncio.sleep(0.02)
    server.kill()
    print(f"  SIGKILLed the server after {tally.submitted} accepted jobs", flush=True)
    await asyncio.sleep(downtime_s)
    server.start()
    recovered = await server.wait_healthy()
    print(f"  restarted; healthy again {recovered:.2f} s after the restart", flush=True)
    return recovered


def _audit(database: Path, tally: Tally) -> tuple[int, int, int, dict[str, int]]:
    """(jobs in the store, lost, duplicated, jobs by state), read from the database itself."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT id, state, idempotency_key FROM jobs").fetchall()
        finished = dict(
            connection.execute("SELECT job_id, COUNT(*) FROM job_events WHERE type = 'finished' GROUP BY job_id")
        )
    by_id = {row[0]: row for row in rows}
    lost = sum(1 for job_id in tally.accepted.values() if by_id.get(job_id, (None, None))[1] not in TERMINAL)
    lost += sum(1 for job_id in tally.accepted.values() if finished.get(job_id, 0) == 0)
    duplicated = sum(1 for count in finished.values() if count > 1)
    duplicated += len(rows) - len({row[2] for row in rows})  # two jobs for one idempotency key
    states: dict[str, int] = {}
    for _, state, _ in rows:
        states[state] = states.get(state, 0) + 1
    return len(rows), lost, duplicated, states


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> int:
    work = Path(args.dir or tempfile.mkdtemp(prefix="prover-load-"))
    work.mkdir(parents=True, exist_ok=True)
    server = Server(
        _free_port(), work / "jobs.sqlite", work / "home", args.workers, work / "server.log", profile=args.profile
    )
    server.start()
    await server.wait_healthy()
    if args.profile and server.profilers:
        server.client_profiler = server.profile_pid(os.getpid(), work / "profile-client.txt")
    print(
        f"service_load: {args.clients} clients, {args.jobs} jobs, {args.workers} job workers; store {server.database}"
    )
    tally = Tally()
    base_url = f"http://127.0.0.1:{server.port}"
    started = time.monotonic()
    try:
        next_job = [0]
        clients = [_client(base_url, next_job, args.jobs, tally, args.poll_s) for _ in range(args.clients)]
        killer = _killer(server, tally, int(args.jobs * args.kill_at), args.downtime_s) if args.kill_at else None
        await asyncio.gather(*clients, *([killer] if killer is not None else []))
        elapsed = time.monotonic() - started
    finally:
        server.stop()
        if server.client_profiler is not None:
            server.client_profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        server.wait_profilers()
    stored, lost, duplicated, states = _audit(server.database, tally)
    print(f"  {len(tally.accepted)} jobs accepted, {stored} in the store, by state {states}")
    print(f"  {elapsed:.1f} s, {len(tally.final_state) / elapsed:.1f} jobs/s, {tally.retries} retried requests")
    print(
        f"  submit ms: p50 {statistics.median(tally.submit_ms):.1f} p99 {_percentile(tally.submit_ms, 0.99):.1f}   "
        f"status ms: p50 {statistics.median(tally.status_ms):.1f} p99 {_percentile(tally.status_ms, 0.99):.1f}"
    )
    print(
        f"service_jobs={len(tally.accepted)} lost={lost} duplicated={duplicated} "
        f"p99_submit_ms={_percentile(tally.submit_ms, 0.99):.1f}"
    )
    return 0 if lost == 0 and duplicated == 0 and len(tally.accepted) == args.jobs else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16, help="jobs the server runs at once")
    parser.add_argument("--kill-at", type=float, default=0.5, help="SIGKILL after this fraction is accepted; 0: never")
    parser.add_argument("--downtime-s", type=float, default=1.0)
    parser.add_argument("--poll-s", type=float, default=0.5, help="each client's status polling interval")
    parser.add_argument(
        "--profile", action="store_true", help="sample the server with py-spy into <dir>/profile-<n>.txt"
    )
    parser.add_argument("--dir", help="where the store and the server log go (default a temporary directory)")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())

"""The several-machine topology on a real PostgreSQL: `prover serve --workers 0` takes the jobs, two
`prover worker` processes run them, one is SIGKILLed while it holds jobs.

What a user of `compose.yaml` relies on: every accepted job ends exactly once (one `finished` event,
a terminal state), the dead worker's jobs come back when their lease expires and another worker
finishes them, and the jobs are spread over the workers by `FOR UPDATE SKIP LOCKED` claims.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from prover.demo import STATEMENTS
from prover.service.jobs import JobState
from prover.service.store import JobStore
from tests.service.live_server import free_socket
from tests.service.postgres import PostgresServer

LEASE = ["--set", "service.lease_s=2", "--set", "service.heartbeat_s=0.3", "--set", "service.poll_s=0.05"]


def _start(argv: list[str], home: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PROVER_HOME": str(home)}
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "prover.cli.main", *argv], stdout=handle, stderr=subprocess.STDOUT, env=env
        )


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not start:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_workers_on_postgresql_finish_every_job_once_though_one_is_killed(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    database = postgres_server.new_database()
    store = JobStore(database)
    store.migrate()
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    server_log, first_log, second_log = tmp_path / "serve.log", tmp_path / "w1.log", tmp_path / "w2.log"
    server = _start(
        ["serve", "--demo", "--port", str(port), "--db", database, "--workers", "0", *LEASE], tmp_path, server_log
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        _wait_healthy(url, server, server_log)
        statements = [STATEMENTS["mathd_algebra_1"], STATEMENTS["mathd_numbertheory_2"]]
        ids = []
        for index in range(12):
            body = {"statement": statements[index % 2], "expansions": 8, "samples": 4}
            response = httpx.post(f"{url}/v1/prove", json=body, headers={"Idempotency-Key": f"topology-{index}"})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        worker_argv = ["worker", "--demo", "--demo-latency-ms", "40", "--db", database, "--workers", "2", *LEASE]
        workers.append(_start(worker_argv, tmp_path, first_log))
        # The first worker holds jobs before the second starts: SIGKILL it while it does.
        deadline = time.monotonic() + 60
        while not any(job.state is JobState.RUNNING for job in map(store.get, ids) if job is not None):
            assert time.monotonic() < deadline, first_log.read_text()
            time.sleep(0.05)
        held = [job.id for job in map(store.get, ids) if job is not None and job.state is JobState.RUNNING]
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        workers.append(_start(worker_argv, tmp_path, second_log))
        workers.append(_start(worker_argv, tmp_path, tmp_path / "w3.log"))
        deadline = time.monotonic() + 120
        while True:
            jobs = [store.get(job_id) for job_id in ids]
            if all(job is not None and job.terminal for job in jobs):
                break
            assert time.monotonic() < deadline, (
                f"jobs left: {[job.state for job in jobs if job]}\n{second_log.read_text()}"
            )
            time.sleep(0.2)
    finally:
        for process in workers:
            _stop(process)
        _stop(server)
    final = {job_id: store.get(job_id) for job_id in ids}
    assert all(job is not None and job.state is JobState.COMPLETED for job in final.values())
    finished = Counter(event.job_id for job_id in ids for event in store.events(job_id) if event.type == "finished")
    assert finished == Counter({job_id: 1 for job_id in ids}), "every job must end exactly once"
    # The killed worker's jobs were re-queued by lease expiry and finished by another worker.
    for job_id in held:
        job = final[job_id]
        assert job is not None and job.attempts >= 2
        assert [event.type for event in store.events(job_id)].count("queued") >= 2
    runners = {
        event.data["worker"].rsplit(":", 1)[0]
        for job_id in ids
        for event in store.events(job_id)
        if event.type == "started"
    }
    assert len(runners) >= 2, "the jobs should have been spread over the worker processes"
    store.close()

"""The HTTP API over real HTTP on loopback, with scripted Lean and model (`tests.service.live_server`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.live_server import (
    CHEAT,
    PROOF,
    PROVABLE,
    SLOW,
    broken_env,
    free_socket,
    scripted_backends,
    serving,
    settings_for,
    sse_events,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def test_prove_job_end_to_end_streams_events_and_a_judged_proof(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path)) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        submitted = http.post("/v1/prove", json={"statement": PROVABLE, "expansions": 10})
        assert submitted.status_code == 202
        job = submitted.json()
        assert job["state"] == "queued" and job["kind"] == "prove"
        with http.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            body = "".join(stream.iter_text())
        events = sse_events(body)
        seqs = [seq for seq, _, _ in events]
        assert seqs == list(range(1, len(events) + 1))
        kinds = [kind for _, kind, _ in events]
        assert kinds[0] == "queued" and kinds[1] == "started" and kinds[-1] == "finished"
        assert kinds.count("finished") == 1
        assert "expansion" in kinds and "proof_rejected" in kinds and "proof_found" in kinds
        verdict = next(data for _, kind, data in events if kind == "verdict")
        assert verdict["status"] == "proved" and verdict["proof"] == PROOF and verdict["judge"] == "repl"
        finished = http.get(f"/v1/jobs/{job['id']}").json()
        assert finished["state"] == "completed"
        assert finished["result"]["proof"] == PROOF and finished["result"]["judge"] == "repl"

        # Replay: after N (query) or Last-Event-ID gives the rest and ends after `finished`.
        rest = sse_events(http.get(f"/v1/jobs/{job['id']}/events", params={"after": 3}).text)
        assert [seq for seq, _, _ in rest] == seqs[3:]
        tail = sse_events(http.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": str(seqs[-2])}).text)
        assert [kind for _, kind, _ in tail] == ["finished"]
        assert sse_events(http.get(f"/v1/jobs/{job['id']}/events", params={"after": seqs[-1]}).text) == []


def test_jobs_are_listed_newest_first_in_pages_and_filtered_by_state(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path, workers=0)) as server, httpx.Client(base_url=server.url) as http:
        ids = [http.post("/v1/prove", json={"statement": PROVABLE, "name": f"p{i}"}).json()["id"] for i in range(5)]
        http.delete(f"/v1/jobs/{ids[0]}")
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2, **({"before": cursor} if cursor else {})}
            page = http.get("/v1/jobs", params=params).json()
            assert len(page["jobs"]) <= 2
            seen += [job["id"] for job in page["jobs"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == list(reversed(ids)) and pages == 3
        queued = http.get("/v1/jobs", params={"state": "queued"}).json()["jobs"]
        assert {job["id"] for job in queued} == set(ids[1:])
        cancelled = http.get("/v1/jobs", params={"state": "cancelled"}).json()["jobs"]
        assert [job["id"] for job in cancelled] == [ids[0]]
        assert http.get("/v1/jobs", params={"state": "bogus"}).status_code == 422
        assert http.get("/v1/jobs/doesnotexist").status_code == 404


def test_delete_cancels_a_running_search_within_a_second(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path)) as server, httpx.Client(base_url=server.url) as http:
        job = http.post("/v1/prove", json={"statement": SLOW}).json()
        wait_for(lambda: http.get(f"/v1/jobs/{job['id']}").json()["state"] == "running")
        time.sleep(0.2)  # the search is inside its minute-long tactic
        started = time.monotonic()
        answer = http.delete(f"/v1/jobs/{job['id']}")
        assert answer.status_code == 200
        final = wait_for(lambda: (j := http.get(f"/v1/jobs/{job['id']}").json())["state"] == "cancelled" and j, 1.0)
        assert time.monotonic() - started < 1.0
        assert final["finished_at"] is not None
        events = sse_events(http.get(f"/v1/jobs/{job['id']}/events").text)
        assert [kind for _, kind, _ in events].count("finished") == 1
        assert events[-1][2]["state"] == "cancelled"
        # Cancelling a finished job changes nothing.
        assert http.delete(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"


def test_idempotency_key_replays_the_same_job_and_refuses_another_body(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path, workers=0)) as server, httpx.Client(base_url=server.url) as http:
        key = {"Idempotency-Key": "abc-123"}
        first = http.post("/v1/prove", json={"statement": PROVABLE}, headers=key)
        again = http.post("/v1/prove", json={"statement": PROVABLE}, headers=key)
        assert first.status_code == 202 and again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        conflict = http.post("/v1/prove", json={"statement": PROVABLE, "expansions": 3}, headers=key)
        assert conflict.status_code == 409 and "abc-123" in conflict.json()["detail"]
        assert len(http.get("/v1/jobs").json()["jobs"]) == 1


def test_verify_waits_for_the_verdicts_of_a_batch(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        items = [{"statement": PROVABLE, "proof": PROOF}, {"statement": PROVABLE, "proof": CHEAT}]
        answer = http.post("/v1/verify", params={"wait": "true"}, json={"items": items})
        assert answer.status_code == 200
        job = answer.json()
        assert job["state"] == "completed"
        statuses = [item["status"] for item in job["result"]["items"]]
        assert statuses == ["valid", "sorry"]
        queued = http.post("/v1/verify", json={"items": items[:1]})
        assert queued.status_code == 202


def test_metrics_expose_the_families(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path)) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        job = http.post("/v1/prove", json={"statement": PROVABLE}).json()
        http.get(f"/v1/jobs/{job['id']}/events")
        text = http.get("/metrics").text
    for family in (
        'prover_jobs{state="completed"} 1.0',
        "prover_queue_depth",
        "prover_expansions_total",
        "prover_candidates_total",
        "prover_expansions_per_second",
        "prover_candidates_per_second",
        'prover_lean_workers{state="busy"}',
        'prover_verdicts_total{judge="repl"} 1.0',
    ):
        assert family in text
    assert "python_gc" not in text  # a registry of its own, not the process-wide one


def test_two_apps_in_one_process_keep_their_own_metrics(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        serving(settings_for(tmp_path / "a", workers=0)) as a,
        serving(settings_for(tmp_path / "b", workers=0)) as b,
    ):
        httpx.post(f"{a.url}/v1/prove", json={"statement": PROVABLE})
        assert 'prover_jobs{state="queued"} 1.0' in httpx.get(f"{a.url}/metrics").text
        assert 'prover_jobs{state="queued"} 0.0' in httpx.get(f"{b.url}/metrics").text


def test_ready_is_200_with_working_backends_and_503_with_a_broken_env(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path)) as server:
        ready = httpx.get(f"{server.url}/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"
    with serving(settings_for(tmp_path), scripted_backends(build_env=broken_env)) as server:
        ready = httpx.get(f"{server.url}/ready")
        assert ready.status_code == 503
        assert "REPL binary is missing" in ready.json()["checks"]["lean"]
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}


def test_cors_headers_only_for_configured_origins(tmp_path: Path) -> None:
    origin = {"Origin": "https://example.org"}
    with serving(settings_for(tmp_path, workers=0)) as server:
        assert "access-control-allow-origin" not in httpx.get(f"{server.url}/health", headers=origin).headers
    with serving(settings_for(tmp_path, workers=0, cors_origins=["https://example.org"])) as server:
        allowed = httpx.get(f"{server.url}/health", headers=origin)
        assert allowed.headers["access-control-allow-origin"] == "https://example.org"
        other = httpx.get(f"{server.url}/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_openapi_lists_the_endpoints_and_the_page_is_served(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path, workers=0)) as server:
        paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
        assert httpx.get(f"{server.url}/docs").status_code == 200
        page = httpx.get(f"{server.url}/")
    assert {"/v1/prove", "/v1/formalize", "/v1/verify", "/v1/jobs", "/v1/jobs/{job_id}"} <= set(paths)
    assert {"/v1/jobs/{job_id}/events", "/health", "/ready", "/metrics"} <= set(paths)
    assert set(paths["/v1/jobs/{job_id}"]) == {"get", "delete"}
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


# --- restart: SIGKILL the server mid-run, start it again on the same database -----------------------


def _serve(db: Path, home: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "prover.cli.main", "serve", "--demo", "--demo-latency-ms", "100"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--db", f"sqlite:///{db}", "--workers", "3"]
    argv += ["--set", "service.poll_s=0.05", "--set", "service.heartbeat_s=0.2", "--set", "service.lease_s=3"]
    env = {**os.environ, "PROVER_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "prover serve exited"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("prover serve did not come up")


def test_restart_after_sigkill_finishes_every_accepted_job_exactly_once(tmp_path: Path) -> None:
    from prover.demo import STATEMENTS

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    db = tmp_path / "jobs.sqlite"
    statements = [STATEMENTS["mathd_algebra_1"], STATEMENTS["mathd_numbertheory_2"], STATEMENTS["amc12a_2000_p3"]]
    first = _serve(db, tmp_path, port)
    try:
        _wait_healthy(url, first)
        ids = [
            httpx.post(f"{url}/v1/prove", json={"statement": statements[i % 3], "name": f"job{i}"}).json()["id"]
            for i in range(6)
        ]
        wait_for(lambda: httpx.get(f"{url}/v1/jobs", params={"state": "running"}).json()["jobs"], 15)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    second = _serve(db, tmp_path, port)
    try:
        _wait_healthy(url, second)

        def all_done() -> bool:
            states = [httpx.get(f"{url}/v1/jobs/{job_id}").json()["state"] for job_id in ids]
            return all(state in ("completed", "failed", "cancelled") for state in states)

        wait_for(all_done, 40, 0.2)
        for job_id in ids:
            job = httpx.get(f"{url}/v1/jobs/{job_id}").json()
            assert job["state"] == "completed", job
            events = sse_events(httpx.get(f"{url}/v1/jobs/{job_id}/events", timeout=10).text)
            assert [kind for _, kind, _ in events].count("finished") == 1
            assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
        proved = [httpx.get(f"{url}/v1/jobs/{job_id}").json()["result"]["proved"] for job_id in ids]
        assert proved == [i % 3 != 2 for i in range(6)]
        assert len(httpx.get(f"{url}/v1/jobs", params={"limit": 100}).json()["jobs"]) == 6
    finally:
        second.terminate()
        try:
            second.wait(10)
        except subprocess.TimeoutExpired:
            second.kill()


@pytest.mark.parametrize("flag", ["--help"])
def test_serve_is_a_registered_command(flag: str) -> None:
    from click.testing import CliRunner

    from prover.cli.main import cli

    result = CliRunner().invoke(cli, ["serve", flag])
    assert result.exit_code == 0 and "--demo" in result.output and "--hash-token" in result.output

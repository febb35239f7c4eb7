"""Authentication, ownership, quotas, back-pressure, body limits and hostile input, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prover.service.app import create_app
from prover.service.auth import ExposureError
from prover.service.settings import hash_token
from tests.service.live_server import PROOF, PROVABLE, SLOW, serving, settings_for, sse_events

ALICE, BOB = "alice-secret-token", "bob-secret-token"


def tokens(**alice: Any) -> list[dict[str, Any]]:
    return [
        {"name": "alice", "sha256": hash_token(ALICE), **alice},
        {"name": "bob", "sha256": hash_token(BOB)},
    ]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def authed(tmp_path: Path) -> Iterator[str]:
    with serving(settings_for(tmp_path, workers=0, tokens=tokens(max_concurrent_jobs=3))) as server:
        yield server.url


def test_missing_or_bad_tokens_are_401_with_a_bearer_challenge(authed: str) -> None:
    for headers in ({}, bearer("wrong"), {"Authorization": "Basic YWxpY2U6eA=="}):
        answer = httpx.get(f"{authed}/v1/jobs", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{authed}/v1/prove", json={"statement": PROVABLE}).status_code == 401
    assert httpx.get(f"{authed}/v1/jobs", headers=bearer(ALICE)).status_code == 200
    assert httpx.get(f"{authed}/health").status_code == 200  # probes need no token


def test_another_owners_job_is_not_found(authed: str) -> None:
    job = httpx.post(f"{authed}/v1/prove", json={"statement": PROVABLE}, headers=bearer(ALICE)).json()
    assert job["owner"] == "alice"
    for method, path in (("GET", ""), ("GET", "/events"), ("DELETE", "")):
        answer = httpx.request(method, f"{authed}/v1/jobs/{job['id']}{path}", headers=bearer(BOB))
        assert answer.status_code == 404, (method, path)
    assert httpx.get(f"{authed}/v1/jobs", headers=bearer(BOB)).json()["jobs"] == []
    mine = httpx.get(f"{authed}/v1/jobs", headers=bearer(ALICE)).json()["jobs"]
    assert [j["id"] for j in mine] == [job["id"]]
    assert httpx.get(f"{authed}/v1/jobs/{job['id']}", headers=bearer(ALICE)).json()["state"] == "queued"
    # Idempotency keys are per owner: Bob's same key is his own new job.
    key = {"Idempotency-Key": "k1"}
    a = httpx.post(f"{authed}/v1/prove", json={"statement": PROVABLE}, headers={**bearer(ALICE), **key}).json()
    b = httpx.post(f"{authed}/v1/prove", json={"statement": PROVABLE}, headers={**bearer(BOB), **key}).json()
    assert a["id"] != b["id"] and b["owner"] == "bob"


def test_per_token_concurrency_is_429_with_retry_after(authed: str) -> None:
    ids = [
        httpx.post(f"{authed}/v1/prove", json={"statement": PROVABLE}, headers=bearer(ALICE)).json()["id"]
        for _ in range(3)
    ]
    refused = httpx.post(f"{authed}/v1/prove", json={"statement": PROVABLE}, headers=bearer(ALICE))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "max_concurrent_jobs" in refused.json()["detail"]
    assert httpx.post(f"{authed}/v1/prove", json={"statement": PROVABLE}, headers=bearer(BOB)).status_code == 202
    httpx.delete(f"{authed}/v1/jobs/{ids[0]}", headers=bearer(ALICE))  # a finished job frees its slot
    assert httpx.post(f"{authed}/v1/prove", json={"statement": PROVABLE}, headers=bearer(ALICE)).status_code == 202


def test_daily_quota_is_429(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, workers=0, tokens=tokens(daily_jobs=2, max_concurrent_jobs=10))
    with serving(settings) as server:
        for _ in range(2):
            job = httpx.post(f"{server.url}/v1/prove", json={"statement": PROVABLE}, headers=bearer(ALICE)).json()
            httpx.delete(f"{server.url}/v1/jobs/{job['id']}", headers=bearer(ALICE))
        refused = httpx.post(f"{server.url}/v1/prove", json={"statement": PROVABLE}, headers=bearer(ALICE))
        assert refused.status_code == 429 and "daily_jobs" in refused.json()["detail"]
        assert "retry-after" in refused.headers


def test_a_full_queue_is_429_with_the_configured_retry_after(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path, workers=0, max_queued=2, retry_after_s=7)) as server:
        for _ in range(2):
            assert httpx.post(f"{server.url}/v1/prove", json={"statement": PROVABLE}).status_code == 202
        refused = httpx.post(f"{server.url}/v1/prove", json={"statement": PROVABLE})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "7"
        assert len(httpx.get(f"{server.url}/v1/jobs").json()["jobs"]) == 2


def test_bodies_over_the_limit_are_413_with_or_without_a_length(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path, workers=0, max_body_bytes=4096)) as server:
        big = b'{"statement": "' + b"x" * 10_000 + b'"}'
        declared = httpx.post(f"{server.url}/v1/prove", content=big, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        chunked = httpx.post(f"{server.url}/v1/prove", content=chunks(), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413
        assert httpx.get(f"{server.url}/v1/jobs").json()["jobs"] == []
        assert httpx.post(f"{server.url}/v1/prove", json={"statement": PROVABLE}).status_code == 202


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/verify", {"items": [{"statement": PROVABLE, "proof": "by\n  sorry"}]}, "sorry"),
    ("/v1/verify", {"items": [{"statement": PROVABLE, "proof": "by admit"}]}, "admit"),
    ("/v1/prove", {"statement": "axiom cheat : False"}, "statement"),
    ("/v1/prove", {"statement": "theorem t : False := by\naxiom cheat : False"}, "statement"),
    ("/v1/prove", {"statement": PROVABLE, "header": "import Mathlib\nimport Evil\n"}, "Evil"),
    ("/v1/prove", {"statement": PROVABLE, "header": "set_option warn.sorry false\n"}, "warn.sorry"),
    ("/v1/prove", {"statement": PROVABLE, "header": "axiom cheat : False\n"}, "header"),
    ("/v1/prove", {"statement": "theorem t : " + "1 = 1 ∧ " * 4000 + "True := by"}, "max_statement_bytes"),
    ("/v1/prove", {"statement": PROVABLE, "expansions": 10**6}, "max_expansions"),
    ("/v1/prove", {"statement": PROVABLE, "timeout_s": 10**7}, "max_timeout_s"),
    ("/v1/verify", {"items": [{"statement": PROVABLE, "proof": PROOF}] * 65}, "max_verify_items"),
    ("/v1/prove", {"statement": PROVABLE, "unexpected": 1}, "extra"),
    ("/v1/prove", {"statement": PROVABLE, "expansions": 0}, "greater"),
    ("/v1/formalize", {"informal_statement": "x", "formal_statement": "theorem t : True := sorry"}, "nothing"),
]


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(settings_for(tmp_path_factory.mktemp("hostile"), workers=0)) as server:
        yield server.url


@pytest.mark.parametrize(("path", "body", "reason"), HOSTILE)
def test_hostile_input_is_422_with_the_reason_and_stores_nothing(
    plain_server: str, path: str, body: dict[str, Any], reason: str
) -> None:
    answer = httpx.post(f"{plain_server}{path}", json=body)
    assert answer.status_code == 422, answer.text
    assert reason in str(answer.json()["detail"])
    assert httpx.get(f"{plain_server}/v1/jobs").json()["jobs"] == []


def test_a_flood_of_hostile_requests_leaves_the_service_working(tmp_path: Path) -> None:
    bodies = [body for _, body, _ in HOSTILE if "items" not in body]
    big = "x" * 300_000

    async def flood(url: str) -> list[int]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

            async def one(index: int) -> int:
                if index % 7 == 0:
                    try:
                        answer = await http.post("/v1/prove", content=big, headers={"Content-Type": "application/json"})
                    except httpx.TransportError:
                        return 413  # refused before the upload ended: the server closed the connection
                elif index % 7 == 1:
                    answer = await http.post(
                        "/v1/prove", content=b"{not json", headers={"Content-Type": "application/json"}
                    )
                elif index % 7 == 2:
                    answer = await http.get(f"/v1/jobs/{'z' * 60}/events")
                else:
                    answer = await http.post("/v1/prove", json=bodies[index % len(bodies)])
                return answer.status_code

            return list(await asyncio.gather(*(one(i) for i in range(200))))

    with serving(settings_for(tmp_path, max_body_bytes=100_000)) as server:
        statuses = asyncio.run(flood(server.url))
        assert set(statuses) <= {404, 413, 422}, sorted(set(statuses))
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        job = httpx.post(f"{server.url}/v1/prove", json={"statement": PROVABLE}).json()
        events = sse_events(httpx.get(f"{server.url}/v1/jobs/{job['id']}/events", timeout=20).text)
        assert events[-1][1] == "finished" and events[-1][2]["state"] == "completed"
        assert httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()["result"]["proved"] is True
        assert len(httpx.get(f"{server.url}/v1/jobs").json()["jobs"]) == 1


def test_cancel_by_its_owner_only(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path, tokens=tokens())) as server:
        job = httpx.post(f"{server.url}/v1/prove", json={"statement": SLOW}, headers=bearer(ALICE)).json()
        assert httpx.delete(f"{server.url}/v1/jobs/{job['id']}", headers=bearer(BOB)).status_code == 404
        assert httpx.delete(f"{server.url}/v1/jobs/{job['id']}", headers=bearer(ALICE)).status_code == 200


def test_no_tokens_on_a_public_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExposureError, match="allow_unauthenticated"):
        create_app(settings_for(tmp_path, host="0.0.0.0"))
    create_app(settings_for(tmp_path, host="0.0.0.0", allow_unauthenticated=True))
    create_app(settings_for(tmp_path, host="0.0.0.0", tokens=tokens()))
    create_app(settings_for(tmp_path, host="::1"))


def test_serve_refuses_a_public_address_and_hashes_tokens(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from prover.cli.main import cli

    runner = CliRunner()
    hashed = runner.invoke(cli, ["serve", "--hash-token", ALICE])
    assert hashed.exit_code == 0 and hashed.output.strip() == hash_token(ALICE)
    refused = runner.invoke(cli, ["serve", "--host", "0.0.0.0", "--workers", "0"], env={"PROVER_HOME": str(tmp_path)})
    assert refused.exit_code == 2 and "without authentication" in refused.output

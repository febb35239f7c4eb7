"""`prover.client` against the real app: over real HTTP (sync and async) and in process (ASGI transport)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from prover.client import AsyncProverClient, ProverClient, ServiceError, SSEParser
from prover.service.app import create_app
from tests.service.live_server import CHEAT, PROOF, PROVABLE, SLOW, scripted_backends, serving, settings_for


def test_sync_client_proves_streams_lists_cancels_and_verifies(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path)) as server, ProverClient(server.url) as client:
        assert client.health() == {"status": "ok"}
        assert client.ready()["status"] == "ready"
        job = client.prove(PROVABLE, expansions=10, idempotency_key="once")
        assert client.prove(PROVABLE, expansions=10, idempotency_key="once")["id"] == job["id"]
        events = list(client.events(job["id"]))
        assert events[0][0] == "queued" and events[-1][0] == "finished"
        done = client.wait(job["id"], timeout=10)
        assert done["state"] == "completed" and done["result"]["proof"] == PROOF

        slow = client.prove(SLOW)
        for kind, _ in client.events(slow["id"]):
            if kind == "started":
                break
        client.cancel(slow["id"])
        assert client.wait(slow["id"], timeout=5)["state"] == "cancelled"

        listed = list(client.jobs(limit=1))
        assert [j["id"] for j in listed] == [slow["id"], job["id"]]
        assert [j["id"] for j in client.jobs(state="cancelled")] == [slow["id"]]

        verified = client.verify([(PROVABLE, PROOF), {"statement": PROVABLE, "proof": CHEAT}], wait=True)
        assert [item["status"] for item in verified["result"]["items"]] == ["valid", "sorry"]

        with pytest.raises(ServiceError) as missing:
            client.job("nope")
        assert missing.value.status == 404
        with pytest.raises(ServiceError) as hostile:
            client.verify([(PROVABLE, "by\n  sorry")])
        assert hostile.value.status == 422 and "sorry" in hostile.value.detail
        with pytest.raises(TimeoutError):
            client.wait(client.prove(SLOW)["id"], timeout=0.3)


def test_sync_client_sends_its_token(tmp_path: Path) -> None:
    from prover.service.settings import hash_token

    tokens = [{"name": "carol", "sha256": hash_token("carol-token")}]
    with serving(settings_for(tmp_path, workers=0, tokens=tokens)) as server:
        with ProverClient(server.url) as anonymous, pytest.raises(ServiceError) as refused:
            anonymous.prove(PROVABLE)
        assert refused.value.status == 401
        with ProverClient(server.url, token="carol-token") as client:
            assert client.prove(PROVABLE)["owner"] == "carol"


def test_retry_429_honours_retry_after(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path, workers=0, max_queued=1, retry_after_s=1)) as server:
        with ProverClient(server.url) as plain:
            first = plain.prove(PROVABLE)
            with pytest.raises(ServiceError) as full:
                plain.prove(PROVABLE)
            assert full.value.status == 429 and full.value.retry_after == 1.0

        def free_the_queue() -> None:
            time.sleep(0.3)
            httpx.delete(f"{server.url}/v1/jobs/{first['id']}")

        threading.Thread(target=free_the_queue).start()
        started = time.monotonic()
        with ProverClient(server.url, retry_429=True) as patient:
            second = patient.prove(PROVABLE)
        assert second["state"] == "queued" and time.monotonic() - started >= 0.9


def test_async_client_over_real_http(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        async with AsyncProverClient(url) as client:
            assert (await client.health())["status"] == "ok"
            jobs = [await client.prove(PROVABLE, name=f"a{i}") for i in range(3)]
            for job in jobs:
                kinds = [kind async for kind, _ in client.events(job["id"])]
                assert kinds[-1] == "finished"
                assert (await client.wait(job["id"], 5))["result"]["proved"] is True
            listed = [job["id"] async for job in client.jobs(limit=2)]
            assert listed == [job["id"] for job in reversed(jobs)]

    with serving(settings_for(tmp_path)) as server:
        asyncio.run(scenario(server.url))


async def test_async_client_in_process_over_the_asgi_transport(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path), backends=scripted_backends())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncProverClient("http://prover.test", transport=transport) as client:
            job = await client.prove(PROVABLE)
            done = await client.wait(job["id"], timeout=10, poll_s=0.05)
            assert done["result"]["proof"] == PROOF
            with pytest.raises(ServiceError) as bad:
                await client.prove("lemma x : 1 = 1 := by\n  rfl")
            assert bad.value.status == 422


def test_sse_parser_reads_ids_types_multiline_data_and_skips_comments() -> None:
    parser = SSEParser()
    lines = [
        "retry: 2000",
        "",
        ": keep-alive",
        "",
        "id: 4",
        "event: item",
        'data: {"a":',
        "data: 1}",
        "",
        "data: x",
        "",
    ]
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert events == [("4", "item", {"a": 1}), ("4", "message", "x")]

"""The job store's contract (docs/service-design.md), on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from prover.service.jobs import (
    TERMINAL_STATES,
    IdempotencyConflict,
    JobKind,
    JobNotFound,
    JobState,
    QueueFull,
)
from prover.service.store import JobStore, default_database_url, engine_url, worker_id
from tests.service.postgres import PostgresServer

W1 = "host-a:101:0"
W2 = "host-a:102:0"
REQ = {"statement": "theorem t : 1 + 1 = 2", "expansions": 10}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh schema on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def store(url: str) -> Iterator[JobStore]:
    s = JobStore(url)
    s.migrate()
    yield s
    s.close()


def _submit(store: JobStore, n: int, kind: JobKind = JobKind.PROVE, **kw: Any) -> list[str]:
    return [store.submit(kind, {**REQ, "i": i}, **kw)[0].id for i in range(n)]


# -- submit, get, list --------------------------------------------------------------------------


def test_submit_then_get_gives_a_queued_job_with_its_queued_event(store: JobStore) -> None:
    job, created = store.submit(JobKind.PROVE, REQ, owner="alice")
    assert created
    assert job.state is JobState.QUEUED and job.kind is JobKind.PROVE
    assert job.request == REQ and job.owner == "alice" and job.attempts == 0
    assert job.result is None and job.lease_owner is None and not job.cancel_requested
    assert store.get(job.id) == job
    assert store.get("0" * 32) is None
    d = job.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["kind"] == "prove" and d["state"] == "queued" and d["id"] == job.id
    (event,) = store.events(job.id)
    assert (event.seq, event.type, event.job_id) == (1, "queued", job.id)
    assert job.last_event_seq == 1


def test_list_pages_newest_first_and_filters(store: JobStore) -> None:
    ids = _submit(store, 5, owner="alice") + _submit(store, 2, owner="bob")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = store.list(limit=3, before=cursor)
        seen += [j.id for j in page]
        pages += 1
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 3
    assert [j.id for j in store.list(owner="bob")[0]] == ids[:4:-1]
    claimed = store.claim(W1, 30)
    assert claimed is not None and claimed.id == ids[0]
    running, nxt = store.list(state=JobState.RUNNING)
    assert [j.id for j in running] == [ids[0]] and nxt is None
    assert len(store.list(state=JobState.QUEUED, limit=100)[0]) == 6
    exact, nxt = store.list(limit=7)
    assert len(exact) == 7 and nxt is None
    with pytest.raises(ValueError, match="cursor"):
        store.list(before="no-such-job")


# -- idempotency and back-pressure --------------------------------------------------------------


def test_idempotent_replay_returns_the_same_job_and_a_different_body_conflicts(store: JobStore) -> None:
    job, created = store.submit(JobKind.PROVE, REQ, owner="alice", idempotency_key="k1")
    again, created_again = store.submit(JobKind.PROVE, dict(REQ), owner="alice", idempotency_key="k1")
    assert created and not created_again and again.id == job.id
    assert len(store.events(job.id)) == 1
    with pytest.raises(IdempotencyConflict) as info:
        store.submit(JobKind.PROVE, {**REQ, "expansions": 11}, owner="alice", idempotency_key="k1")
    assert info.value.job_id == job.id
    with pytest.raises(IdempotencyConflict):
        store.submit(JobKind.VERIFY, REQ, owner="alice", idempotency_key="k1")
    other, created_other = store.submit(JobKind.PROVE, REQ, owner="bob", idempotency_key="k1")
    assert created_other and other.id != job.id
    # Without authentication (owner None) keys still deduplicate.
    anon, _ = store.submit(JobKind.PROVE, REQ, idempotency_key="k1")
    anon2, created_anon2 = store.submit(JobKind.PROVE, REQ, idempotency_key="k1")
    assert anon2.id == anon.id and not created_anon2
    assert store.counts()[JobState.QUEUED] == 3


def test_concurrent_submits_with_one_key_make_one_job(store: JobStore) -> None:
    results: list[tuple[str, bool]] = []

    def go() -> None:
        job, created = store.submit(JobKind.PROVE, REQ, owner="alice", idempotency_key="same")
        results.append((job.id, created))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_queue_full_at_max_queued(store: JobStore) -> None:
    (first,) = _submit(store, 1, idempotency_key="a")
    store.submit(JobKind.PROVE, {"x": 2}, max_queued=2)
    with pytest.raises(QueueFull) as info:
        store.submit(JobKind.PROVE, {"x": 3}, max_queued=2)
    assert (info.value.queued, info.value.max_queued) == (2, 2)
    replay, created = store.submit(JobKind.PROVE, {**REQ, "i": 0}, idempotency_key="a", max_queued=2)
    assert replay.id == first and not created
    assert store.claim(W1, 30) is not None
    store.submit(JobKind.PROVE, {"x": 3}, max_queued=2)
    assert store.counts()[JobState.QUEUED] == 2


# -- claims, heartbeats, leases -----------------------------------------------------------------


def test_claim_takes_the_oldest_queued_job_of_the_asked_kinds(store: JobStore) -> None:
    p1 = store.submit(JobKind.PROVE, {"n": 1})[0].id
    v = store.submit(JobKind.VERIFY, {"n": 2})[0].id
    p2 = store.submit(JobKind.PROVE, {"n": 3})[0].id
    before = time.time()
    got = store.claim(W1, 30, kinds=[JobKind.VERIFY])
    assert got is not None and got.id == v
    assert got.state is JobState.RUNNING and got.lease_owner == W1 and got.attempts == 1
    assert got.started_at is not None and got.started_at >= before - 1
    assert got.lease_expires_at is not None and abs(got.lease_expires_at - (got.started_at + 30)) < 1e-3
    assert store.claim(W1, 30, kinds=[JobKind.VERIFY]) is None
    assert store.claim(W1, 30, kinds=[]) is None
    claimed = [store.claim(W2, 30), store.claim(W2, 30), store.claim(W2, 30)]
    assert [j.id if j else None for j in claimed] == [p1, p2, None]
    started = store.events(v)[-1]
    assert (started.seq, started.type, started.data) == (2, "started", {"worker": W1})


def test_threads_never_claim_one_job_twice(store: JobStore) -> None:
    ids = _submit(store, 30)
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        while (job := store.claim(f"host-a:1:{n}", 30)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_heartbeat_renews_the_owners_lease_stores_the_summary_and_reports_cancel(store: JobStore) -> None:
    _submit(store, 1)
    job = store.claim(W1, 5)
    assert job is not None and job.lease_expires_at is not None
    beat = store.heartbeat(job.id, W1, 60, summary={"expansions": 3, "frontier": 7})
    assert beat.owned and not beat.cancel_requested
    now = store.get(job.id)
    assert now is not None and now.summary == {"expansions": 3, "frontier": 7}
    assert now.lease_expires_at is not None and now.lease_expires_at > job.lease_expires_at + 50
    assert not store.heartbeat(job.id, W2, 60).owned
    assert not store.heartbeat("f" * 32, W1, 60).owned
    store.cancel(job.id)
    beat = store.heartbeat(job.id, W1, 60)
    assert beat.owned and beat.cancel_requested
    kept = store.get(job.id)
    assert kept is not None and kept.summary == {"expansions": 3, "frontier": 7}  # no summary: unchanged
    assert store.finish(job.id, W1, JobState.CANCELLED)
    assert not store.heartbeat(job.id, W1, 60).owned


def test_batched_heartbeats_and_lease_status_answer_like_single_heartbeats(store: JobStore) -> None:
    a, b, c = _submit(store, 3)
    ja, jb = store.claim(W1, 5), store.claim(W2, 5)
    assert ja is not None and jb is not None and (ja.id, jb.id) == (a, b)
    store.cancel(b)
    status = store.lease_status([(a, W1), (b, W2), (b, W1), (c, W1), ("f" * 32, W1)])
    assert [(s.owned, s.cancel_requested) for s in status] == [
        (True, False),
        (True, True),
        (False, True),
        (False, False),  # queued: nobody's lease
        (False, False),
    ]
    before = store.get(a)
    assert before is not None and before.lease_expires_at is not None
    beats = store.heartbeats([(a, W1, {"expansions": 2}), (b, W1, {"x": 1}), (b, W2, None)], 60)
    assert [(s.owned, s.cancel_requested) for s in beats] == [(True, False), (False, False), (True, True)]
    after_a, after_b = store.get(a), store.get(b)
    assert after_a is not None and after_a.summary == {"expansions": 2}
    assert after_a.lease_expires_at is not None and after_a.lease_expires_at > before.lease_expires_at + 50
    assert after_b is not None and after_b.summary == {}  # W1's beat was refused, W2's carried no summary
    assert store.heartbeats([], 60) == [] and store.lease_status([]) == []


async def test_run_calls_the_store_on_its_own_threads(store: JobStore) -> None:
    (job_id,) = _submit(store, 1)
    job = await store.run(store.get, job_id)
    assert job is not None and job.id == job_id
    names = await store.run(lambda: threading.current_thread().name)
    assert names.startswith("job-store-write")
    got = await store.run(store.claim, W1, 5)
    assert got is not None and got.id == job_id
    with pytest.raises(JobNotFound):
        await store.run(store.append_events, "f" * 32, None, [("x", {})])


def test_an_expired_lease_is_requeued_and_the_old_worker_can_write_nothing(store: JobStore) -> None:
    (job_id,) = _submit(store, 1)
    job = store.claim(W1, 60)
    assert job is not None and job.lease_expires_at is not None
    assert store.requeue_expired(now=job.lease_expires_at - 1) == []
    assert store.requeue_expired(now=job.lease_expires_at + 1) == [job_id]
    back = store.get(job_id)
    assert back is not None and back.state is JobState.QUEUED and back.lease_owner is None
    assert back.lease_expires_at is None
    assert store.events(job_id)[-1].type == "queued"
    assert not store.heartbeat(job_id, W1, 60).owned
    assert store.append_events(job_id, W1, [("expansion", {"expansion": 1})]) == 0
    assert not store.finish(job_id, W1, JobState.COMPLETED, result={"proved": True})
    again = store.claim(W2, 60)
    assert again is not None and again.id == job_id and again.attempts == 2
    assert store.finish(job_id, W2, JobState.COMPLETED, result={"proved": False})


def test_claim_itself_requeues_an_expired_lease(store: JobStore) -> None:
    (job_id,) = _submit(store, 1)
    assert store.claim(W1, 1.0) is not None  # long enough that a loaded machine still sees it held
    assert store.claim(W2, 30) is None
    time.sleep(1.1)
    job = store.claim(W2, 30)
    assert job is not None and job.id == job_id and job.lease_owner == W2 and job.attempts == 2


def test_requeue_abandoned_takes_back_only_jobs_of_dead_processes_on_this_host(store: JobStore) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    ids = _submit(store, 4)
    owners = [f"{host}:{dead.pid}:0", worker_id(1), f"other-{host}:{dead.pid}:0", f"{host}:{dead.pid}:1"]
    for owner in owners:
        assert store.claim(owner, 600) is not None
    assert sorted(store.requeue_abandoned(host)) == sorted([ids[0], ids[3]])
    states = [store.get(i).state for i in ids]  # type: ignore[union-attr]
    assert states == [JobState.QUEUED, JobState.RUNNING, JobState.RUNNING, JobState.QUEUED]
    assert store.requeue_abandoned(host) == []


# -- finishing and cancelling -------------------------------------------------------------------


def test_finish_happens_exactly_once_and_only_under_the_lease(store: JobStore) -> None:
    (job_id,) = _submit(store, 1)
    assert not store.finish(job_id, W1, JobState.COMPLETED)  # still queued
    assert store.claim(W1, 30) is not None
    with pytest.raises(ValueError):
        store.finish(job_id, W1, JobState.RUNNING)
    assert not store.finish(job_id, W2, JobState.COMPLETED)
    assert store.finish(job_id, W1, JobState.FAILED, error="REPL crashed")
    assert not store.finish(job_id, W1, JobState.COMPLETED, result={"proved": True})
    job = store.get(job_id)
    assert job is not None and job.state is JobState.FAILED and job.error == "REPL crashed"
    assert job.result is None and job.finished_at is not None and job.terminal
    finished = [e for e in store.events(job_id) if e.type == "finished"]
    assert [e.data["state"] for e in finished] == ["failed"]


def test_finish_stores_the_result(store: JobStore) -> None:
    _submit(store, 1)
    job = store.claim(W1, 30)
    assert job is not None
    result = {"proved": True, "proof": ["norm_num"], "stats": {"expansions": 4}}
    assert store.finish(job.id, W1, JobState.COMPLETED, result=result)
    done = store.get(job.id)
    assert done is not None and done.result == result and done.state in TERMINAL_STATES
    assert store.events(job.id)[-1].data == {"state": "completed", "result": result, "error": None}


def test_cancel_a_queued_job_ends_it_and_a_running_one_asks_its_worker(store: JobStore) -> None:
    queued_id, running_id = _submit(store, 2)
    running = store.claim(W1, 30)
    assert running is not None and running.id == queued_id
    queued_id, running_id = running_id, queued_id
    cancelled = store.cancel(queued_id)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED and cancelled.finished_at is not None
    assert store.events(queued_id)[-1].type == "finished"
    assert store.claim(W2, 30) is None
    asked = store.cancel(running_id)
    assert asked is not None and asked.state is JobState.RUNNING and asked.cancel_requested
    assert store.finish(running_id, W1, JobState.CANCELLED)
    again = store.cancel(running_id)
    assert again is not None and again.state is JobState.CANCELLED
    assert store.cancel("e" * 32) is None
    assert [e.type for e in store.events(queued_id)] == ["queued", "finished"]


def test_an_expired_lease_of_a_cancel_requested_job_cancels_it(store: JobStore) -> None:
    (job_id,) = _submit(store, 1)
    job = store.claim(W1, 30)
    assert job is not None and job.lease_expires_at is not None
    store.cancel(job_id)
    assert store.requeue_expired(now=job.lease_expires_at + 1) == [job_id]
    after = store.get(job_id)
    assert after is not None and after.state is JobState.CANCELLED
    assert store.claim(W2, 30) is None


# -- events, usage ------------------------------------------------------------------------------


def test_events_get_consecutive_seqs_under_concurrent_writers(store: JobStore) -> None:
    (job_id,) = _submit(store, 1)
    assert store.claim(W1, 60) is not None

    def writer(n: int) -> None:
        for i in range(10):
            who = W1 if n % 2 else None
            assert store.append_events(job_id, who, [("expansion", {"n": n, "i": i}), ("best_open", {"n": n})]) > 0

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = store.events(job_id, limit=10_000)
    assert [e.seq for e in events] == list(range(1, 83))
    # A writer's pair stays adjacent: both got their seqs in one transaction.
    for first, second in zip(events[2::2], events[3::2], strict=True):
        assert (first.type, second.type) == ("expansion", "best_open") and first.data["n"] == second.data["n"]
    assert [e.seq for e in store.events(job_id, after=80)] == [81, 82]
    assert [e.seq for e in store.events(job_id, after=10, limit=3)] == [11, 12, 13]
    job = store.get(job_id)
    assert job is not None and job.last_event_seq == 82
    assert store.append_events(job_id, W1, []) == 82
    with pytest.raises(JobNotFound):
        store.append_events("d" * 32, None, [("x", {})])
    assert store.events("d" * 32) == []


def test_owner_usage_counts_active_and_recent_jobs(store: JobStore) -> None:
    _submit(store, 3, owner="alice")
    _submit(store, 1, owner="bob")
    job = store.claim(W1, 30)
    assert job is not None and job.owner == "alice"
    assert store.finish(job.id, W1, JobState.COMPLETED)
    usage = store.owner_usage("alice", since=0)
    assert (usage.active, usage.submitted_since) == (2, 3)
    assert store.owner_usage("alice", since=time.time() + 10).submitted_since == 0
    assert store.owner_usage("carol", since=0).active == 0
    counts = store.counts()
    assert counts[JobState.QUEUED] == 3 and counts[JobState.COMPLETED] == 1 and set(counts) == set(JobState)


# -- migrations ---------------------------------------------------------------------------------


def test_migrate_is_idempotent_and_a_reopened_store_keeps_its_jobs(url: str) -> None:
    first = JobStore(url)
    first.migrate()
    first.migrate()
    job, _ = first.submit(JobKind.VERIFY, {"items": []}, idempotency_key="k")
    first.close()
    second = JobStore(url)
    second.migrate()
    assert second.get(job.id) == job
    assert second.submit(JobKind.VERIFY, {"items": []}, idempotency_key="k") == (job, False)
    second.close()


def test_the_migrated_schema_matches_the_tables_module(store: JobStore, url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from prover.service.store.tables import metadata

    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SQLite cannot reflect the expression index
            context = MigrationContext.configure(conn, opts={"version_table": "prover_jobs_alembic_version"})
            assert compare_metadata(context, metadata) == []
            assert context.get_current_revision() == "0001"
    finally:
        engine.dispose()


# -- helpers ------------------------------------------------------------------------------------


def test_urls_and_ids(tmp_path: Path) -> None:
    assert engine_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert engine_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError):
        engine_url("mysql://u@h/db")
    with pytest.raises(ValueError):
        engine_url("")
    url = default_database_url(tmp_path / "home")
    assert (tmp_path / "home" / "service").is_dir() and url.endswith("/service/jobs.sqlite")
    store = JobStore(url)
    store.migrate()
    assert (tmp_path / "home" / "service" / "jobs.sqlite").is_file()
    store.close()
    host, pid, n = worker_id(3).rsplit(":", 2)
    assert (host, pid, n) == (socket.gethostname(), str(os.getpid()), "3")


def test_an_in_memory_sqlite_store_works_within_one_process() -> None:
    store = JobStore("sqlite://")
    store.migrate()
    ids = _submit(store, 10)
    claimed: list[str] = []

    def worker() -> None:
        while (job := store.claim(W1, 30)) is not None:
            claimed.append(job.id)
            assert store.finish(job.id, W1, JobState.COMPLETED)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)
    store.close()


# -- several processes --------------------------------------------------------------------------


def _claim_until_drained(url: str, n: int, submitted: Any, out: Any) -> None:
    store = JobStore(url)
    store.migrate()  # all processes migrate the empty database at once
    wid = worker_id(n)
    mine: list[tuple[str, bool]] = []
    submitted.wait(60)  # then all claim at once
    while (job := store.claim(wid, 30)) is not None:
        mine.append((job.id, store.finish(job.id, wid, JobState.COMPLETED, result={"by": wid})))
    store.close()
    out.put(mine)


def _hold_a_lease(url: str, lease_s: float, out: Any) -> None:
    store = JobStore(url)
    job = store.claim(worker_id(0), lease_s)
    out.put(None if job is None else job.id)
    while True:  # a live worker: keeps its lease until it is killed
        store.heartbeat(job.id, worker_id(0), lease_s)  # type: ignore[union-attr]
        time.sleep(lease_s / 5)


def test_processes_claiming_from_one_store_take_each_job_once(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    submitted, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_until_drained, args=(url, n, submitted, out)) for n in range(3)]
    for p in procs:
        p.start()
    store = JobStore(url)
    store.migrate()
    ids = _submit(store, 30)
    submitted.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    claims = Counter(job_id for mine in results for job_id, _ in mine)
    assert claims == Counter(ids)
    assert all(finished for mine in results for _, finished in mine)
    assert store.counts()[JobState.COMPLETED] == 30
    assert {store.get(i).attempts for i in ids} == {1}  # type: ignore[union-attr]
    store.close()


def test_a_killed_lease_holder_loses_no_job(url: str) -> None:
    store = JobStore(url)
    store.migrate()
    (job_id,) = _submit(store, 1)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    holder = ctx.Process(target=_hold_a_lease, args=(url, 0.5, out))
    holder.start()
    try:
        assert out.get(timeout=60) == job_id
        time.sleep(0.6)  # past one lease: the heartbeats keep it
        assert store.claim(W2, 30) is None
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join(timeout=30)
    dead_worker = f"{socket.gethostname()}:{holder.pid}:0"
    deadline = time.time() + 10
    job = None
    while job is None and time.time() < deadline:
        job = store.claim(W2, 30)
        time.sleep(0.05)
    assert job is not None and job.id == job_id and job.attempts == 2
    assert store.finish(job_id, W2, JobState.COMPLETED, result={"proved": True})
    assert not store.finish(job_id, dead_worker, JobState.COMPLETED)
    assert not store.heartbeat(job_id, dead_worker, 30).owned
    types = [e.type for e in store.events(job_id)]
    assert types == ["queued", "started", "queued", "started", "finished"]
    store.close()

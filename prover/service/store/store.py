"""`JobStore`: the service's persistent jobs and their event streams (SQLAlchemy 2 Core).

SQLite (one machine; WAL, so readers never wait for the writer) or PostgreSQL (several machines;
`postgresql+psycopg://`). Every call is one short transaction, so the store is safe to share
between threads (one engine, a connection per call) and between processes:

- SQLite: every writing transaction starts with `BEGIN IMMEDIATE`, which takes the database's
  write lock up front (waiting up to `busy_timeout`), so two processes never both read a job as
  queued and both claim it, and a transaction never fails half way for want of the lock.
- PostgreSQL: a claim picks its row with `SELECT ... FOR UPDATE SKIP LOCKED` and updates it in the
  same transaction; every other change is an `UPDATE` conditional on the state it expects.

Each job row keeps `last_event_seq`; appending events bumps it with `UPDATE ... RETURNING` in the
transaction that inserts them, so seq numbers are consecutive per job whoever writes.

Within one process, SQLite writers also queue on a `threading.Lock` before `BEGIN IMMEDIATE`: a
writer waiting on SQLite's own lock sleeps in its busy handler (up to 100 ms a try) and may miss
the lock for many turns, while one waiting on a Python lock takes it the moment it is free.

Async callers (the app, the runner) call the store through `JobStore.run`, which runs the call on
the store's own bounded thread pools (one for reads, one for writes), never on the event loop's
default executor: a burst of writes waiting for the lock never holds up the reads (WAL readers
never wait), and the store never competes for threads with other blocking work (the guard).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from prover.service.jobs import (
    TERMINAL_STATES,
    Heartbeat,
    IdempotencyConflict,
    Job,
    JobEvent,
    JobKind,
    JobNotFound,
    JobState,
    OwnerUsage,
    QueueFull,
)
from prover.service.store.tables import job_events, jobs

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key that serialises concurrent `migrate()` calls ("prover-j" in ASCII).
_MIGRATE_LOCK_KEY = 0x70726F7665722D6A
_SQLITE_BUSY_TIMEOUT_MS = 30_000

READ_THREADS = 8
"""Threads of a store's read pool (`JobStore.run` of `get`, `list`, `events`, ...)."""
WRITE_THREADS = {"sqlite": 2, "postgresql": 8}
"""Threads of a store's write pool: SQLite writes one at a time anyway (a second thread stands ready)."""
_READ_CALLS = frozenset({"get", "list", "events", "counts", "owner_usage", "lease_status"})

P = ParamSpec("P")
T = TypeVar("T")

_JobList = list[Job]
_Beats = list[Heartbeat]
_IdList = list[str]
_EventList = list[JobEvent]
_Where = list[sa.ColumnElement[bool]]


def default_database_url(home: Path) -> str:
    """The default job store: SQLite at `<home>/service/jobs.sqlite` (the directory is created)."""
    path = Path(home).expanduser().resolve() / "service" / "jobs.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def settings_database_url(settings: Any) -> str:
    """The job store `settings` name: `service.database_url`, else `default_database_url(settings.home)`."""
    if settings.service.database_url:
        return str(settings.service.database_url)
    if settings.home is None:
        raise ValueError("settings.home is unset: settings must come from `prover.config.load_settings`")
    return default_database_url(settings.home)


def worker_id(n: int) -> str:
    """The id of this process's `n`-th worker: `<host>:<pid>:<n>` (what `requeue_abandoned` parses)."""
    return f"{socket.gethostname()}:{os.getpid()}:{n}"


def engine_url(url: str) -> sa.URL:
    """`url` as the store connects to it: `postgresql://` and `postgres://` use psycopg 3.

    Raises ValueError for an empty URL or a database other than SQLite and PostgreSQL.
    """
    if not url:
        raise ValueError("database_url is empty")
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend == "sqlite":
        return parsed
    raise ValueError(f"database_url {parsed.render_as_string(hide_password=True)!r}: only sqlite and postgresql")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _json_value(value: Mapping[str, Any]) -> dict[str, Any]:
    # What the row will hold once read back (tuples become lists, keys strings), so that an
    # idempotent replay compares like with like.
    out = json.loads(json.dumps(dict(value)))
    if not isinstance(out, dict):
        raise TypeError("expected a JSON object")
    return out


def _job(row: sa.Row[Any]) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        kind=JobKind(m["kind"]),
        state=JobState(m["state"]),
        request=m["request"],
        result=m["result"],
        error=m["error"],
        owner=m["owner"],
        idempotency_key=m["idempotency_key"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        attempts=m["attempts"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        cancel_requested=bool(m["cancel_requested"]),
        summary=m["summary"] or {},
        last_event_seq=m["last_event_seq"],
    )


class JobStore:
    """The persistent job store; see docs/service-design.md for the contract of each call.

    `url`: a SQLAlchemy URL, `sqlite:///path` or `postgresql+psycopg://user:pass@host/db`
    (`postgresql://` is taken to mean psycopg 3). Construction connects lazily; call `migrate()`
    before first use. A SQLite `:memory:` store works within one process (calls are serialised
    on one connection); use a file to share it between processes.
    """

    def __init__(self, url: str) -> None:
        self._url = engine_url(url)
        self._dialect = self._url.get_backend_name()
        self._lock: Any = nullcontext()
        self._write_lock: Any = nullcontext()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pools_lock = threading.Lock()
        if self._dialect == "sqlite":
            memory = self._url.database in (None, "", ":memory:")
            kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
            if memory:
                kwargs["poolclass"] = StaticPool
                self._lock = threading.RLock()
            else:
                self._write_lock = threading.Lock()
            self._engine = sa.create_engine(self._url, **kwargs)
            sa.event.listen(self._engine, "connect", _sqlite_on_connect)
            sa.event.listen(self._engine, "begin", _sqlite_on_begin)
        else:
            self._engine = sa.create_engine(self._url, pool_pre_ping=True)
        self._writer = self._engine.execution_options(prover_write=True)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._dialect

    def __repr__(self) -> str:
        return f"JobStore({self._url.render_as_string(hide_password=True)!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic `upgrade head`); a no-op when it is.

        Safe when several processes call it at once: PostgreSQL serialises them with an advisory
        lock, SQLite with the write lock of `BEGIN IMMEDIATE`; the migration and the lock share
        one transaction.
        """
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
        with self._lock, self._write_lock, self._writer.connect() as conn, conn.begin():
            if self._dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        """Close the store's connections and threads; the store may not be used afterwards."""
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True)
        self._engine.dispose()

    async def run(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args, **kwargs)` (a method of this store, or a function that calls it) on the
        store's threads: the read pool for the reading methods, else the write pool.

        Like `asyncio.to_thread`, but on bounded pools of the store's own (see the module's doc).
        """
        kind = "read" if getattr(function, "__name__", "") in _READ_CALLS else "write"
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool(kind), call)

    def _pool(self, kind: str) -> ThreadPoolExecutor:
        pool = self._pools.get(kind)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.get(kind)
                if pool is None:
                    threads = READ_THREADS if kind == "read" else WRITE_THREADS.get(self._dialect, 8)
                    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"job-store-{kind}")
                    self._pools[kind] = pool
        return pool

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[sa.Connection]:
        engine = self._writer if write else self._engine
        with self._lock, self._write_lock if write else nullcontext(), engine.begin() as conn:
            yield conn

    def _for_update(self, query: sa.Select[Any], *, skip_locked: bool = False) -> sa.Select[Any]:
        # SQLite has no row locks; its BEGIN IMMEDIATE already excludes every other writer.
        if self._dialect == "postgresql":
            return query.with_for_update(skip_locked=skip_locked)
        return query

    @staticmethod
    def _update(
        conn: sa.Connection,
        where: Sequence[sa.ColumnElement[bool]],
        values: Mapping[str, Any],
        events: Sequence[tuple[str, Mapping[str, Any]]],
        now: float,
    ) -> sa.Row[Any] | None:
        """Update the one job matching `where` and append `events` to it; None if none matched."""
        row = conn.execute(
            sa.update(jobs)
            .where(*where)
            .values(**values, updated_at=now, last_event_seq=jobs.c.last_event_seq + len(events))
            .returning(*jobs.c)
        ).first()
        if row is None or not events:
            return row
        first = row.last_event_seq - len(events) + 1
        conn.execute(
            sa.insert(job_events),
            [
                {"job_id": row.id, "seq": first + i, "type": type_, "data": dict(data), "at": now}
                for i, (type_, data) in enumerate(events)
            ],
        )
        return row

    # -- submitting and reading ----------------------------------------------------------------

    def submit(
        self,
        kind: JobKind,
        request: dict[str, Any],
        *,
        owner: str | None = None,
        idempotency_key: str | None = None,
        max_queued: int | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job; returns `(job, created)` and writes its `queued` event.

        The same `(owner, idempotency_key)` again returns the existing job with `created=False`
        (even when the queue is full); with a different kind or request body it raises
        `IdempotencyConflict`. `max_queued`: raises `QueueFull` when that many jobs are queued
        (exact on SQLite; on PostgreSQL concurrent submits may overshoot by their number).
        An owner of "" is the same as None.
        """
        kind = JobKind(kind)
        body = _json_value(request)
        for attempt in range(3):
            try:
                return self._submit(kind, body, owner, idempotency_key, max_queued)
            except sa.exc.IntegrityError:
                # Another transaction inserted the same idempotency key between our look-up and
                # our insert; the next look-up finds its job.
                if idempotency_key is None or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _submit(
        self,
        kind: JobKind,
        body: dict[str, Any],
        owner: str | None,
        idempotency_key: str | None,
        max_queued: int | None,
    ) -> tuple[Job, bool]:
        with self._tx(write=True) as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    sa.select(jobs).where(
                        sa.func.coalesce(jobs.c.owner, "") == (owner or ""),
                        jobs.c.idempotency_key == idempotency_key,
                    )
                ).first()
                if row is not None:
                    existing = _job(row)
                    if existing.kind != kind or existing.request != body:
                        raise IdempotencyConflict(idempotency_key, existing.id)
                    return existing, False
            if max_queued is not None:
                queued = conn.execute(
                    sa.select(sa.func.count()).select_from(jobs).where(jobs.c.state == JobState.QUEUED.value)
                ).scalar_one()
                if queued >= max_queued:
                    raise QueueFull(queued, max_queued)
            now = time.time()
            job_id = uuid.uuid4().hex
            conn.execute(
                sa.insert(jobs).values(
                    id=job_id,
                    kind=kind.value,
                    state=JobState.QUEUED.value,
                    request=body,
                    result=None,
                    error=None,
                    owner=owner,
                    idempotency_key=idempotency_key,
                    created_at=now,
                    updated_at=now,
                    attempts=0,
                    cancel_requested=False,
                    summary={},
                    last_event_seq=1,
                )
            )
            conn.execute(
                sa.insert(job_events).values(job_id=job_id, seq=1, type="queued", data={}, at=now),
            )
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()
            return _job(row), True

    def get(self, job_id: str) -> Job | None:
        """The job, or None if no job has this id."""
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def list(
        self,
        *,
        state: JobState | None = None,
        owner: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> tuple[_JobList, str | None]:
        """One page of jobs, newest first, and the cursor of the next page (None: no more).

        `owner=None` lists every owner's jobs. `before`: the cursor a previous call returned (the
        id of its page's last job); an unknown cursor raises ValueError.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = sa.select(jobs)
        if state is not None:
            query = query.where(jobs.c.state == JobState(state).value)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        with self._tx(write=False) as conn:
            if before is not None:
                cursor = conn.execute(sa.select(jobs.c.created_at, jobs.c.pk).where(jobs.c.id == before)).first()
                if cursor is None:
                    raise ValueError(f"unknown cursor {before!r}")
                query = query.where(
                    sa.or_(
                        jobs.c.created_at < cursor.created_at,
                        sa.and_(jobs.c.created_at == cursor.created_at, jobs.c.pk < cursor.pk),
                    )
                )
            rows = conn.execute(query.order_by(jobs.c.created_at.desc(), jobs.c.pk.desc()).limit(limit + 1)).all()
        page = [_job(r) for r in rows[:limit]]
        return page, (page[-1].id if len(rows) > limit else None)

    def events(self, job_id: str, after: int = 0, limit: int = 1000) -> _EventList:
        """The job's events with seq > `after`, oldest first, at most `limit` (empty for an unknown job)."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                sa.select(job_events)
                .where(job_events.c.job_id == job_id, job_events.c.seq > after)
                .order_by(job_events.c.seq)
                .limit(limit)
            ).all()
        return [JobEvent(job_id=r.job_id, seq=r.seq, type=r.type, data=r.data, at=r.at) for r in rows]

    def counts(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, 0 when none)."""
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)).all()
        out = dict.fromkeys(JobState, 0)
        for state, n in rows:
            out[JobState(state)] = n
        return out

    def owner_usage(self, owner: str, since: float) -> OwnerUsage:
        """The owner's queued + running jobs, and how many it submitted at or after `since`."""
        with self._tx(write=False) as conn:
            active = conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(
                    jobs.c.owner == owner,
                    jobs.c.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
                )
            ).scalar_one()
            submitted = conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.owner == owner, jobs.c.created_at >= since)
            ).scalar_one()
        return OwnerUsage(active=active, submitted_since=submitted)

    # -- workers -------------------------------------------------------------------------------

    def claim(self, worker_id: str, lease_s: float, kinds: Collection[JobKind] | None = None) -> Job | None:
        """Take the oldest queued job (of `kinds`, if given) for `worker_id`; None when there is none.

        The job becomes `running` with `lease_owner=worker_id`, `lease_expires_at=now+lease_s`,
        `attempts` one more and `started_at` now, and gets a `started` event. No two callers, in
        any threads or processes, ever get the same job for the same attempt. Before picking,
        the claim re-queues expired leases (as `requeue_expired` does), so a dead worker's job is
        picked up even if nobody calls `requeue_expired`.
        """
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        if kinds is not None:
            kind_values = [JobKind(k).value for k in kinds]
            if not kind_values:
                return None
        now = time.time()
        query = sa.select(jobs.c.pk).where(jobs.c.state == JobState.QUEUED.value)
        if kinds is not None:
            query = query.where(jobs.c.kind.in_(kind_values))
        query = query.order_by(jobs.c.created_at, jobs.c.pk).limit(1)
        expired = sa.select(jobs.c.pk).where(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < now)
        # Idle workers poll often: look without the write lock first (a WAL reader never waits).
        with self._tx(write=False) as conn:
            if conn.execute(query).first() is None and conn.execute(expired.limit(1)).first() is None:
                return None
        with self._tx(write=True) as conn:
            self._requeue_expired(conn, now)
            pk = conn.execute(self._for_update(query, skip_locked=True)).scalar()
            if pk is None:
                return None
            row = self._update(
                conn,
                [jobs.c.pk == pk, jobs.c.state == JobState.QUEUED.value],
                {
                    "state": JobState.RUNNING.value,
                    "lease_owner": worker_id,
                    "lease_expires_at": now + lease_s,
                    "attempts": jobs.c.attempts + 1,
                    "started_at": now,
                },
                [("started", {"worker": worker_id})],
                now,
            )
        return None if row is None else _job(row)

    def heartbeat(
        self, job_id: str, worker_id: str, lease_s: float, summary: dict[str, Any] | None = None
    ) -> Heartbeat:
        """Renew the worker's lease (to now + `lease_s`) and store `summary` if given.

        `owned=False` (and nothing written) when the job is not running under this worker's lease.
        """
        return self.heartbeats([(job_id, worker_id, summary)], lease_s)[0]

    def heartbeats(self, beats: Sequence[tuple[str, str, dict[str, Any] | None]], lease_s: float) -> _Beats:
        """`heartbeat` of each `(job_id, worker_id, summary)`, all in one transaction; the answers in order."""
        if not beats:
            return []
        now = time.time()
        answers: _Beats = []
        with self._tx(write=True) as conn:
            for job_id, worker_id, summary in beats:
                values: dict[str, Any] = {"lease_expires_at": now + lease_s, "updated_at": now}
                if summary is not None:
                    values["summary"] = _json_value(summary)
                flag = conn.execute(
                    sa.update(jobs)
                    .where(*self._owned(job_id, worker_id))
                    .values(**values)
                    .returning(jobs.c.cancel_requested)
                ).first()
                answers.append(
                    Heartbeat(owned=False, cancel_requested=False)
                    if flag is None
                    else Heartbeat(owned=True, cancel_requested=bool(flag[0]))
                )
        return answers

    def lease_status(self, leases: Sequence[tuple[str, str]]) -> _Beats:
        """For each `(job_id, worker_id)`: whether the worker still holds the job's lease and whether
        a cancel was requested, as `heartbeat` would answer, but read-only (one read, nothing renewed)."""
        if not leases:
            return []
        with self._tx(write=False) as conn:
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.state, jobs.c.lease_owner, jobs.c.cancel_requested).where(
                    jobs.c.id.in_(sorted({job_id for job_id, _ in leases}))
                )
            ).all()
        found = {row.id: row for row in rows}
        answers: _Beats = []
        for job_id, worker_id in leases:
            row = found.get(job_id)
            owned = row is not None and row.state == JobState.RUNNING.value and row.lease_owner == worker_id
            answers.append(Heartbeat(owned=owned, cancel_requested=bool(row is not None and row.cancel_requested)))
        return answers

    @staticmethod
    def _owned(job_id: str, worker_id: str) -> _Where:
        return [jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value, jobs.c.lease_owner == worker_id]

    def append_events(self, job_id: str, worker_id: str | None, events: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """Append `(type, data)` events with the next consecutive seq numbers; returns the last seq.

        With `worker_id`, only while that worker holds the job's lease: otherwise nothing is
        written and the answer is 0. Raises JobNotFound for an unknown job.
        """
        where = [jobs.c.id == job_id] if worker_id is None else self._owned(job_id, worker_id)
        now = time.time()
        with self._tx(write=True) as conn:
            row = self._update(conn, where, {}, events, now)
            if row is not None:
                return int(row.last_event_seq)
            if conn.execute(sa.select(jobs.c.pk).where(jobs.c.id == job_id)).first() is None:
                raise JobNotFound(job_id)
            return 0

    def finish(
        self,
        job_id: str,
        worker_id: str,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """End a running job in a terminal `state`, once: True if this call did it.

        Only while the job is `running` under `worker_id`'s lease; writes the `finished` event
        (`state`, `result`, `error`). False, with nothing written, otherwise.
        """
        state = JobState(state)
        if state not in TERMINAL_STATES:
            raise ValueError(f"finish needs a terminal state, got {state.value!r}")
        body = None if result is None else _json_value(result)
        now = time.time()
        with self._tx(write=True) as conn:
            row = self._update(
                conn,
                self._owned(job_id, worker_id),
                {
                    "state": state.value,
                    "result": body,
                    "error": error,
                    "finished_at": now,
                    "lease_expires_at": None,
                },
                [("finished", {"state": state.value, "result": body, "error": error})],
                now,
            )
        return row is not None

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a job: queued -> `cancelled` at once (with its `finished` event); running ->
        `cancel_requested=True` (its worker sees it on the next heartbeat); terminal: unchanged.

        Returns the job as it now is, or None if no job has this id.
        """
        now = time.time()
        with self._tx(write=True) as conn:
            row = conn.execute(self._for_update(sa.select(jobs).where(jobs.c.id == job_id))).first()
            if row is None:
                return None
            if row.state == JobState.QUEUED.value:
                row = self._update(
                    conn,
                    [jobs.c.pk == row.pk, jobs.c.state == JobState.QUEUED.value],
                    {"state": JobState.CANCELLED.value, "finished_at": now, "cancel_requested": True},
                    [("finished", {"state": JobState.CANCELLED.value, "result": None, "error": None})],
                    now,
                )
            elif row.state == JobState.RUNNING.value and not row.cancel_requested:
                row = self._update(conn, [jobs.c.pk == row.pk], {"cancel_requested": True}, [], now)
        return None if row is None else _job(row)

    def requeue_expired(self, now: float | None = None) -> _IdList:
        """Running jobs whose lease expired before `now` go back to `queued` (lease cleared, a
        `queued` event with `reason`); returns their ids. A job whose cancel was requested is
        finished `cancelled` instead (its id is returned too).
        """
        with self._tx(write=True) as conn:
            return self._requeue_expired(conn, time.time() if now is None else now)

    def _requeue_expired(self, conn: sa.Connection, now: float) -> _IdList:
        query = sa.select(jobs.c.pk, jobs.c.id, jobs.c.lease_owner, jobs.c.cancel_requested).where(
            jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < now
        )
        rows = conn.execute(self._for_update(query, skip_locked=True)).all()
        return self._requeue(conn, rows, "lease expired")

    def requeue_abandoned(self, host: str) -> _IdList:
        """Running jobs leased by a worker `<host>:<pid>:<n>` whose process is gone -> `queued`.

        Meant for a server starting on `host`: a previous process's jobs come back at once
        instead of after their lease. This process's own workers count as alive.
        """
        with self._tx(write=True) as conn:
            query = sa.select(jobs.c.pk, jobs.c.id, jobs.c.lease_owner, jobs.c.cancel_requested).where(
                jobs.c.state == JobState.RUNNING.value,
                jobs.c.lease_owner.startswith(f"{host}:", autoescape=True),
            )
            rows = conn.execute(self._for_update(query, skip_locked=True)).all()
            dead = []
            for row in rows:
                parts = str(row.lease_owner).rsplit(":", 2)
                if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
                    continue
                if not _pid_alive(int(parts[1])):
                    dead.append(row)
            return self._requeue(conn, dead, "worker process gone")

    def _requeue(self, conn: sa.Connection, rows: Sequence[sa.Row[Any]], reason: str) -> _IdList:
        now = time.time()
        done = []
        for row in rows:
            where = [jobs.c.pk == row.pk, jobs.c.state == JobState.RUNNING.value, jobs.c.lease_owner == row.lease_owner]
            if row.cancel_requested:
                updated = self._update(
                    conn,
                    where,
                    {"state": JobState.CANCELLED.value, "finished_at": now, "lease_expires_at": None},
                    [("finished", {"state": JobState.CANCELLED.value, "result": None, "error": None})],
                    now,
                )
            else:
                updated = self._update(
                    conn,
                    where,
                    {"state": JobState.QUEUED.value, "lease_owner": None, "lease_expires_at": None},
                    [("queued", {"reason": reason, "worker": row.lease_owner})],
                    now,
                )
            if updated is not None:
                log.info("job %s: %s (%s), %s", row.id, reason, row.lease_owner, updated.state)
                done.append(row.id)
        return done


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event, not the sqlite3 module, decide when a transaction starts,
    # so that writers can start theirs with BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("prover_write") else "BEGIN")

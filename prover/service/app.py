"""The HTTP service: `create_app(settings)` builds a FastAPI app over the job store (docs/service-design.md).

The app holds no global state: everything a handler needs lives on `app.state.service` (a
`ServiceState`), built by the lifespan and handed to handlers through dependencies. The lifespan
opens and migrates the store, re-queues jobs a dead process on this host left running, builds ONE
Lean env and ONE generator from `Backends`, and starts a `JobRunner` with `service.workers` claim
loops (none with 0: then `prover worker` processes run the jobs). Handlers only ever talk to the
store (through `JobStore.run`, on the store's own threads, since it is synchronous), so an
in-process runner, remote workers and a restart in the middle all look the same to a client.

Every text is checked before a job is stored (`prover.service.limits`), with the same functions the
CLI uses; a refused request costs no store row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from prover.service.auth import Caller, authenticate, check_exposure
from prover.service.jobs import IdempotencyConflict, Job, JobKind, JobState, QueueFull
from prover.service.limits import (
    DAY_S,
    BodySizeLimit,
    FormalizeRequest,
    ProveRequest,
    RequestError,
    VerifyRequest,
    check_formalize,
    check_prove,
    check_verify,
)
from prover.service.metrics import (
    CONTENT_TYPE,
    RateWindow,
    Sources,
    build_registry,
    pool_stats_of,
    render,
    runner_counters,
)

if TYPE_CHECKING:
    from prover.config import ProverSettings
    from prover.service.runner import JobRunner
    from prover.service.store import JobStore
    from prover.wiring import Backends

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
SSE_POLL_S = 0.2
"""How often an event stream looks for new events in the store."""
SSE_KEEPALIVE_S = 10.0
"""A comment line this often keeps proxies from closing a quiet stream."""
WAIT_POLL_S = 0.1
MAX_JOB_ID_CHARS = 64
MAX_IDEMPOTENCY_KEY_CHARS = 200


@dataclass
class ServiceState:
    """What the handlers share: the settings, the store, the backends the lifespan built, the runner."""

    settings: ProverSettings
    store: JobStore | None = None
    env: Any = None
    generator: Any = None
    text: Any = None
    runner: JobRunner | None = None
    problems: dict[str, str] = field(default_factory=dict)
    """What failed to build, by part (`lean`, `model`), for `/ready`."""
    rates: RateWindow = field(default_factory=RateWindow)
    runner_stats: Any = None
    pool_stats: Any = None

    def refresh(self) -> None:
        """Snapshot the runner's and the pool's stats (call from the event loop that owns them)."""
        self.runner_stats = self.runner.stats if self.runner is not None else None
        try:
            self.pool_stats = pool_stats_of(self.env) if self.env is not None else None
        except Exception:  # diagnostics must never take the service down
            log.debug("pool stats unavailable", exc_info=True)
            self.pool_stats = None
        self.rates.sample(runner_counters(self.runner_stats))


def _host() -> str:
    """This machine's name as worker ids carry it (`<host>:<pid>:<n>`, see `JobRunner`)."""
    return socket.gethostname()


async def _close_quietly(what: str, thing: Any) -> None:
    close = getattr(thing, "close", None)
    if close is None:
        return
    try:
        result = close()
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        log.warning("closing the %s failed", what, exc_info=True)


async def _start(state: ServiceState, backends: Backends, given_store: JobStore | None) -> None:
    settings = state.settings
    if given_store is not None:
        store = given_store
    else:
        from prover.service.store import JobStore, settings_database_url

        store = JobStore(settings_database_url(settings))
    state.store = store
    await store.run(store.migrate)
    requeued = await store.run(store.requeue_abandoned, _host())
    if requeued:
        log.info("re-queued %d job(s) left running by a dead process on this host", len(requeued))
    if settings.service.workers == 0:
        return  # the jobs run in `prover worker` processes: no Lean or model here
    try:
        state.env = backends.build_env(settings.lean)
    except Exception as error:
        log.error("the Lean backend did not build: %s", error, exc_info=True)
        state.problems["lean"] = f"{type(error).__name__}: {error}"
        return
    try:
        state.generator = backends.build_generator(settings.model)
    except Exception as error:
        log.error("the model did not build: %s", error, exc_info=True)
        state.problems["model"] = f"{type(error).__name__}: {error}"
        return
    from prover.service.runner import JobRunner

    text = _build_text(state, backends)
    runner = JobRunner(
        store, settings, env=state.env, generator=state.generator, text=text, workers=settings.service.workers
    )
    await runner.start()
    state.runner = runner


def _build_text(state: ServiceState, backends: Backends) -> Any:
    """The text generator of `formalize` jobs, or None (then this server's runner does not claim them).

    The tactic generator's own text generator when it has one (`PromptedTacticGenerator.text`: one
    model in memory, closed with the generator); else the one `backends.build_text_generator` builds,
    but only when a caller replaced that builder: the real one would load a second copy of the model.
    """
    from prover import wiring

    shared = getattr(state.generator, "text", None)
    if shared is not None:
        return shared
    if backends.build_text_generator is wiring.build_text_generator:
        return None
    try:
        state.text = backends.build_text_generator(state.settings.model)
    except Exception as error:  # prove and verify jobs still run
        log.warning("no text generator for formalize jobs: %s", error)
        return None
    return state.text


async def _stop(state: ServiceState, close_store: bool) -> None:
    if state.runner is not None:
        try:
            await state.runner.stop()
        except Exception:
            log.warning("stopping the runner failed", exc_info=True)
    await _close_quietly("text generator", state.text)
    await _close_quietly("generator", state.generator)
    await _close_quietly("Lean env", state.env)
    if close_store and state.store is not None:
        await asyncio.to_thread(state.store.close)


async def _sample(state: ServiceState) -> None:
    while True:
        state.refresh()
        await asyncio.sleep(1.0)


# --- dependencies ----------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>` when the server has tokens.")


# The dependencies are `async def` although they never wait: FastAPI runs a plain `def` dependency
# in a worker thread, which cost every request three thread hand-offs.


async def get_state(request: Request) -> ServiceState:
    """The app's `ServiceState`."""
    service: ServiceState = request.app.state.service
    return service


async def get_store(state: Annotated[ServiceState, Depends(get_state)]) -> JobStore:
    """The open job store (503 while the app is starting or stopping)."""
    if state.store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="the job store is not open")
    return state.store


async def get_caller(
    request: Request,
    state: Annotated[ServiceState, Depends(get_state)],
    _credentials: Annotated[Any, Depends(_bearer)] = None,
) -> Caller:
    """Who is calling (401 when the server has tokens and none or a bad one was sent)."""
    return authenticate(state.settings.service, request.headers.get("authorization"))


StateDep = Annotated[ServiceState, Depends(get_state)]
StoreDep = Annotated["JobStore", Depends(get_store)]
CallerDep = Annotated[Caller, Depends(get_caller)]
JobId = Annotated[str, PathParam(min_length=1, max_length=MAX_JOB_ID_CHARS)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=MAX_IDEMPOTENCY_KEY_CHARS)]


def _too_many(detail: str, retry_after: int) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=detail, headers={"Retry-After": str(retry_after)})


async def _check_quota(state: ServiceState, store: JobStore, caller: Caller) -> None:
    token = caller.token
    if token is None:
        return
    usage = await store.run(store.owner_usage, token.name, time.time() - DAY_S)
    if usage.active >= token.max_concurrent_jobs:
        raise _too_many(
            f"token {token.name!r} has {usage.active} queued or running jobs; its limit is "
            f"{token.max_concurrent_jobs} (max_concurrent_jobs)",
            state.settings.service.retry_after_s,
        )
    if usage.submitted_since >= token.daily_jobs:
        raise _too_many(
            f"token {token.name!r} submitted {usage.submitted_since} jobs in the last 24 hours; its limit is "
            f"{token.daily_jobs} (daily_jobs)",
            3600,
        )


async def _validate(check: Callable[[], None]) -> None:
    try:
        # A large text takes the guard a few hundred ms: off the event loop.
        await asyncio.to_thread(check)
    except RequestError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error


async def _submit(
    state: ServiceState,
    store: JobStore,
    caller: Caller,
    kind: JobKind,
    request: dict[str, Any],
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    await _check_quota(state, store, caller)
    try:
        job, created = await store.run(
            store.submit,
            kind,
            request,
            owner=caller.owner,
            idempotency_key=idempotency_key,
            max_queued=state.settings.service.max_queued,
        )
    except QueueFull as error:
        raise _too_many(str(error), state.settings.service.retry_after_s) from error
    except IdempotencyConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error
    if created and state.runner is not None:
        state.runner.notify()  # an idle claim loop takes it now, not at its next poll
    return job, created


def _job_response(job: Job, created: bool) -> JSONResponse:
    return JSONResponse(job.to_dict(), status_code=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


async def _visible_job(store: JobStore, caller: Caller, job_id: str) -> Job:
    job = await store.run(store.get, job_id)
    if job is None or not caller.may_see(job.owner):
        # Another owner's job is as absent as a job that never existed.
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
    return job


def _sse(seq: int, kind: str, data: Any) -> str:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    lines = "".join(f"data: {line}\n" for line in payload.splitlines() or [""])
    return f"id: {seq}\nevent: {kind}\n{lines}\n"


async def _event_stream(request: Request, store: JobStore, job_id: str, after: int) -> AsyncIterator[str]:
    last = after
    quiet_since = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        if await request.is_disconnected():
            return
        events = await store.run(store.events, job_id, last, 1000)
        for event in events:
            yield _sse(event.seq, event.type, event.data)
            last = event.seq
            if event.type == "finished":
                return
        if events:
            quiet_since = time.monotonic()
            continue
        job = await store.run(store.get, job_id)
        if job is None or (job.terminal and job.last_event_seq <= last):
            return  # finished before `after`: nothing more will come
        if time.monotonic() - quiet_since >= SSE_KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(SSE_POLL_S)


async def _wait_for(store: JobStore, job: Job, seconds: float) -> Job:
    deadline = time.monotonic() + seconds
    while not job.terminal and time.monotonic() < deadline:
        await asyncio.sleep(WAIT_POLL_S)
        found = await store.run(store.get, job.id)
        if found is None:
            break
        job = found
    return job


# --- the app ---------------------------------------------------------------------------------------------


def create_app(settings: ProverSettings, *, backends: Backends | None = None, store: JobStore | None = None) -> FastAPI:
    """The service over `settings`; `backends` builds Lean and the model (default the real ones),
    `store` replaces the one `settings.service.database_url` names (the caller then closes it).

    Raises `prover.service.auth.ExposureError` for a non-loopback host without tokens (unless
    `service.allow_unauthenticated`).
    """
    from prover.wiring import Backends

    service = settings.service
    check_exposure(service)
    chosen = backends if backends is not None else Backends()
    state = ServiceState(settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sampler: asyncio.Task[None] | None = None
        try:
            await _start(state, chosen, store)
            sampler = asyncio.create_task(_sample(state))
            yield
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            await _stop(state, close_store=store is None)

    app = FastAPI(
        title="llemma-prover",
        summary="Best-first tactic search in Lean 4 with a language model, as a job service.",
        lifespan=lifespan,
    )
    app.state.service = state
    registry = build_registry(
        Sources(
            counts=lambda: state.store.counts() if state.store is not None else {},
            runner_stats=lambda: state.runner_stats,
            pool_stats=lambda: state.pool_stats,
            rates=state.rates,
        )
    )
    app.add_middleware(BodySizeLimit, max_bytes=service.max_body_bytes)
    if service.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(service.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Retry-After"],
        )

    @app.post("/v1/prove", status_code=status.HTTP_202_ACCEPTED, tags=["jobs"])
    async def prove(
        body: ProveRequest, state: StateDep, store: StoreDep, caller: CallerDep, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """Queue a best-first search for `statement`; 202 with the job (200 with the same job on a replay)."""
        lean = state.settings.lean
        await _validate(lambda: check_prove(body, lean.policy, state.settings.service.limits))
        job, created = await _submit(
            state, store, caller, JobKind.PROVE, body.model_dump(exclude_none=True), idempotency_key
        )
        return _job_response(job, created)

    @app.post("/v1/formalize", status_code=status.HTTP_202_ACCEPTED, tags=["jobs"])
    async def formalize(
        body: FormalizeRequest,
        state: StateDep,
        store: StoreDep,
        caller: CallerDep,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Queue the informal-to-formal pipeline (draft, sketch, prove the holes) for one problem."""
        await _validate(lambda: check_formalize(body, state.settings.lean.policy))
        job, created = await _submit(
            state, store, caller, JobKind.FORMALIZE, body.model_dump(exclude_none=True), idempotency_key
        )
        return _job_response(job, created)

    @app.post("/v1/verify", status_code=status.HTTP_202_ACCEPTED, tags=["jobs"])
    async def verify(
        body: VerifyRequest,
        state: StateDep,
        store: StoreDep,
        caller: CallerDep,
        idempotency_key: IdempotencyKey = None,
        wait: Annotated[bool, Query(description="Answer when the job has finished (bounded by its timeout).")] = False,
    ) -> JSONResponse:
        """Queue a batch re-check; with `wait=true`, 200 with the finished job (202 if it outlasts the bound)."""
        settings = state.settings
        await _validate(lambda: check_verify(body, settings.lean.policy, settings.service.limits))
        job, created = await _submit(
            state, store, caller, JobKind.VERIFY, body.model_dump(exclude_none=True), idempotency_key
        )
        if not wait:
            return _job_response(job, created)
        per_item = body.timeout_s if body.timeout_s is not None else settings.search.verify_timeout_s
        bound = min(settings.service.limits.max_timeout_s, per_item * len(body.items) + 10.0)
        job = await _wait_for(store, job, bound)
        return JSONResponse(job.to_dict(), status_code=status.HTTP_200_OK if job.terminal else status.HTTP_202_ACCEPTED)

    @app.get("/v1/jobs", tags=["jobs"])
    async def list_jobs(
        store: StoreDep,
        caller: CallerDep,
        state_filter: Annotated[JobState | None, Query(alias="state")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[str | None, Query(max_length=MAX_JOB_ID_CHARS)] = None,
    ) -> dict[str, Any]:
        """The caller's jobs, newest first: `{jobs, next}`; pass `next` as `before` for the next page."""
        jobs, cursor = await store.run(store.list, state=state_filter, owner=caller.owner, limit=limit, before=before)
        return {"jobs": [job.to_dict() for job in jobs], "next": cursor}

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    async def get_job(job_id: JobId, store: StoreDep, caller: CallerDep) -> dict[str, Any]:
        """The job (404 for an unknown job or another owner's)."""
        return (await _visible_job(store, caller, job_id)).to_dict()

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"])
    async def cancel_job(job_id: JobId, store: StoreDep, caller: CallerDep) -> dict[str, Any]:
        """Cancel: a queued job at once, a running one within `service.cancel_poll_s`; a finished one is unchanged."""
        await _visible_job(store, caller, job_id)
        job = await store.run(store.cancel, job_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
        return job.to_dict()

    @app.get(
        "/v1/jobs/{job_id}/events",
        tags=["jobs"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
    )
    async def job_events(
        job_id: JobId,
        request: Request,
        store: StoreDep,
        caller: CallerDep,
        after: Annotated[int, Query(ge=0)] = 0,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    ) -> StreamingResponse:
        """The job's events after `after` (or `Last-Event-ID`) as server-sent events, ending after `finished`."""
        await _visible_job(store, caller, job_id)
        if last_event_id is not None and last_event_id.strip().isdigit():
            after = max(after, int(last_event_id.strip()))
        return StreamingResponse(
            _event_stream(request, store, job_id, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, str]:
        """200 while the process serves requests."""
        return {"status": "ok"}

    @app.get("/ready", tags=["service"])
    async def ready(state: StateDep) -> JSONResponse:
        """200 when the store answers and Lean and the model were built; else 503 naming what failed."""
        checks = await _readiness(state)
        ok = all(value.startswith(("ok", "skipped")) for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.get("/metrics", tags=["service"], response_class=Response)
    async def metrics(state: StateDep) -> Response:
        """The service's figures in the Prometheus text format."""
        state.refresh()
        return Response(await asyncio.to_thread(render, registry), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False, response_model=None)
    async def index() -> FileResponse | HTMLResponse:
        page = WEB_DIR / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html")
        return HTMLResponse("<!doctype html><title>llemma-prover</title><p>See <a href='/docs'>/docs</a>.</p>")

    app.mount("/static", StaticFiles(directory=WEB_DIR, check_dir=False), name="static")
    return app


async def _readiness(state: ServiceState) -> dict[str, str]:
    checks: dict[str, str] = {}
    if state.store is None:
        checks["store"] = "not open"
    else:
        try:
            await asyncio.wait_for(state.store.run(state.store.counts), timeout=5.0)
            checks["store"] = "ok"
        except Exception as error:
            checks["store"] = f"{type(error).__name__}: {error}"
    if state.settings.service.workers == 0:
        checks["lean"] = checks["model"] = "skipped (service.workers = 0: `prover worker` processes run the jobs)"
        return checks
    checks["lean"] = state.problems.get("lean") or ("ok" if state.env is not None else "not built")
    if state.env is not None and state.pool_stats is not None:
        checks["lean"] = f"ok ({state.pool_stats.workers} REPL workers, {state.pool_stats.busy} busy)"
    checks["model"] = state.problems.get("model") or ("ok" if state.generator is not None else "not built")
    if state.runner is None and "lean" not in state.problems and "model" not in state.problems:
        checks["runner"] = "not started"
    return checks

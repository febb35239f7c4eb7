"""Clients of the prover service (`prover serve`): `ProverClient` (blocking) and `AsyncProverClient`.

Both speak the HTTP API of docs/service-design.md over httpx and return the service's JSON as
plain dicts (a job is `Job.to_dict()`). An error answer raises `ServiceError` with the status code
and the server's `detail`. With `retry_429=True` a 429 (queue full, token quota) is retried after
the server's `Retry-After`, at most `max_retries` times; a refused submission stored nothing, so
retrying it is safe (and an `idempotency_key` makes any retry safe).

`transport` is handed to httpx as is: `httpx.ASGITransport(app)` runs against an app in process,
`httpx.HTTPTransport(retries=3)` adds connection retries.

    with ProverClient("http://127.0.0.1:8000", token="...") as client:
        job = client.prove("theorem t (n : ℕ) : n + 0 = n := by", expansions=50)
        for kind, data in client.events(job["id"]):
            print(kind, data)
        print(client.job(job["id"])["result"])
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

import httpx

from prover.http_headers import retry_after

TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})
DEFAULT_URL = "http://127.0.0.1:8000"
MAX_RETRY_AFTER_S = 60.0
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
"""An event stream sends a keep-alive every 10 s; 60 s of silence means the connection is gone."""


class ServiceError(Exception):
    """The service answered with an error: `status` (the HTTP code), `detail` (its reason), `retry_after` (s)."""

    def __init__(self, status: int, detail: Any, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def _check(response: httpx.Response) -> Any:
    """The JSON of a success answer; raises `ServiceError` for an error answer."""
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = response.text
        raise ServiceError(response.status_code, detail, retry_after(response))
    return response.json()


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _post_headers(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def _prove_body(statement: str, **fields: Any) -> dict[str, Any]:
    return {"statement": statement, **{key: value for key, value in fields.items() if value is not None}}


def _formalize_body(
    informal_statement: str,
    formal_statement: str,
    informal_proof: str | None,
    header: str | None,
    language: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "informal_statement": informal_statement,
        "formal_statement": formal_statement,
        "language": language,
    }
    if informal_proof is not None:
        body["informal_proof"] = informal_proof
    if header is not None:
        body["header"] = header
    return body


def _verify_body(items: Iterable[Mapping[str, Any] | tuple[str, str]], timeout_s: float | None) -> dict[str, Any]:
    listed: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, tuple):
            statement, proof = item
            listed.append({"statement": statement, "proof": proof})
        else:
            listed.append(dict(item))
    body: dict[str, Any] = {"items": listed}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    return body


def _retry_delay(response: httpx.Response) -> float:
    """How long to wait before retrying a 429: the server's `Retry-After` (1 s without one), at most 60 s."""
    return min(retry_after(response) or 1.0, MAX_RETRY_AFTER_S)


def _verify_request(
    items: Iterable[Mapping[str, Any] | tuple[str, str]],
    timeout_s: float | None,
    wait: bool,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """The `request` keywords of `POST /v1/verify` (no client timeout while the server waits for the job)."""
    return {
        "json": _verify_body(items, timeout_s),
        "params": {"wait": "true"} if wait else None,
        "headers": _post_headers(idempotency_key),
        "timeout": None if wait else httpx.USE_CLIENT_DEFAULT,
    }


def _jobs_params(state: str | None, limit: int, before: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if state is not None:
        params["state"] = state
    if before is not None:
        params["before"] = before
    return params


def _ready(response: httpx.Response) -> dict[str, Any]:
    """`/ready`'s answer; raises `ServiceError` (503, the checks as detail) when not ready."""
    if response.status_code == 503:
        raise ServiceError(503, response.json().get("checks"))
    result: dict[str, Any] = _check(response)
    return result


class SSEParser:
    """Turns the lines of a `text/event-stream` into `(id, type, data)` events (the WHATWG rules we need)."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self._type = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str | None, str, Any] | None:
        """One line (without its end); an event when `line` is the blank line that ends one."""
        if line == "":
            if not self._data:
                self._type = ""
                return None
            raw = "\n".join(self._data)
            kind = self._type or "message"
            self._type, self._data = "", []
            try:
                data: Any = json.loads(raw)
            except json.JSONDecodeError:
                data = raw
            return self.last_id, kind, data
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self.last_id = value
        return None


class ProverClient:
    """A blocking client of the service; use it as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry_429: bool = False,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry_429 = retry_429
        self.max_retries = max_retries
        self._http = httpx.Client(base_url=base_url, headers=_headers(token), timeout=timeout, transport=transport)

    def __enter__(self) -> ProverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            response = self._http.request(method, path, **kwargs)
            if response.status_code == 429 and self.retry_429 and attempt < self.max_retries:
                attempt += 1
                time.sleep(_retry_delay(response))
                continue
            return _check(response)

    def prove(self, statement: str, *, idempotency_key: str | None = None, **budget: Any) -> dict[str, Any]:
        """Submit a `prove` job: `header`, `name`, `expansions`, `samples`, `timeout_s` as keywords; the job."""
        body = _prove_body(statement, **budget)
        result: dict[str, Any] = self._request("POST", "/v1/prove", json=body, headers=_post_headers(idempotency_key))
        return result

    def formalize(
        self,
        informal_statement: str,
        formal_statement: str,
        *,
        informal_proof: str | None = None,
        header: str | None = None,
        language: str = "lean4",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit a `formalize` job; the job."""
        body = _formalize_body(informal_statement, formal_statement, informal_proof, header, language)
        result: dict[str, Any] = self._request(
            "POST", "/v1/formalize", json=body, headers=_post_headers(idempotency_key)
        )
        return result

    def verify(
        self,
        items: Iterable[Mapping[str, Any] | tuple[str, str]],
        *,
        timeout_s: float | None = None,
        wait: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit a `verify` job of `{statement, proof, header?}` items (or `(statement, proof)` pairs).

        With `wait=True` the server answers once the job has finished (or its bound passed).
        """
        result: dict[str, Any] = self._request(
            "POST",
            "/v1/verify",
            **_verify_request(items, timeout_s, wait, idempotency_key),
        )
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        """The job as the server sees it now."""
        result: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}")
        return result

    def jobs(self, state: str | None = None, *, limit: int = 50) -> Iterator[dict[str, Any]]:
        """Every job visible to this token, newest first, fetched `limit` at a time."""
        before: str | None = None
        while True:
            page = self._request("GET", "/v1/jobs", params=_jobs_params(state, limit, before))
            yield from page["jobs"]
            before = page.get("next")
            if not before:
                return

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel the job (a running one stops within the server's `cancel_poll_s`); the job."""
        result: dict[str, Any] = self._request("DELETE", f"/v1/jobs/{job_id}")
        return result

    def events(self, job_id: str, *, after: int = 0, reconnects: int = 3) -> Iterator[tuple[str, Any]]:
        """The job's events as `(type, data)`, from after `after` until `finished`.

        A dropped connection is resumed from the last event seen (`Last-Event-ID`) up to `reconnects` times.
        """
        parser = SSEParser()
        last = after
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
            try:
                with self._http.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=STREAM_TIMEOUT
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        _check(response)
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        seq, kind, data = event
                        if seq is not None and seq.isdigit():
                            last = int(seq)
                        failures = 0
                        yield kind, data
                        if kind == "finished":
                            return
                return  # the server ended the stream: the job had finished before `after`
            except (httpx.TransportError, httpx.RemoteProtocolError):
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(0.5 * failures)

    def wait(self, job_id: str, timeout: float | None = None, *, poll_s: float = 0.2) -> dict[str, Any]:
        """The job once it is terminal; raises `TimeoutError` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']} after {timeout} s")
            time.sleep(poll_s)

    def health(self) -> dict[str, Any]:
        """`/health`: `{status: "ok"}` while the server serves."""
        result: dict[str, Any] = self._request("GET", "/health")
        return result

    def ready(self) -> dict[str, Any]:
        """`/ready`: `{status, checks}`; raises `ServiceError` (503, the checks as detail) when not ready."""
        return _ready(self._http.get("/ready"))


class AsyncProverClient:
    """The asyncio twin of `ProverClient` (same methods, awaited; `jobs` and `events` are async iterators)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry_429: bool = False,
        max_retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry_429 = retry_429
        self.max_retries = max_retries
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(token), timeout=timeout, transport=transport)

    async def __aenter__(self) -> AsyncProverClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            response = await self._http.request(method, path, **kwargs)
            if response.status_code == 429 and self.retry_429 and attempt < self.max_retries:
                attempt += 1
                await asyncio.sleep(_retry_delay(response))
                continue
            return _check(response)

    async def prove(self, statement: str, *, idempotency_key: str | None = None, **budget: Any) -> dict[str, Any]:
        """See `ProverClient.prove`."""
        body = _prove_body(statement, **budget)
        result: dict[str, Any] = await self._request(
            "POST", "/v1/prove", json=body, headers=_post_headers(idempotency_key)
        )
        return result

    async def formalize(
        self,
        informal_statement: str,
        formal_statement: str,
        *,
        informal_proof: str | None = None,
        header: str | None = None,
        language: str = "lean4",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """See `ProverClient.formalize`."""
        body = _formalize_body(informal_statement, formal_statement, informal_proof, header, language)
        result: dict[str, Any] = await self._request(
            "POST", "/v1/formalize", json=body, headers=_post_headers(idempotency_key)
        )
        return result

    async def verify(
        self,
        items: Iterable[Mapping[str, Any] | tuple[str, str]],
        *,
        timeout_s: float | None = None,
        wait: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """See `ProverClient.verify`."""
        result: dict[str, Any] = await self._request(
            "POST",
            "/v1/verify",
            **_verify_request(items, timeout_s, wait, idempotency_key),
        )
        return result

    async def job(self, job_id: str) -> dict[str, Any]:
        """See `ProverClient.job`."""
        result: dict[str, Any] = await self._request("GET", f"/v1/jobs/{job_id}")
        return result

    async def jobs(self, state: str | None = None, *, limit: int = 50) -> AsyncIterator[dict[str, Any]]:
        """See `ProverClient.jobs`."""
        before: str | None = None
        while True:
            page = await self._request("GET", "/v1/jobs", params=_jobs_params(state, limit, before))
            for job in page["jobs"]:
                yield job
            before = page.get("next")
            if not before:
                return

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """See `ProverClient.cancel`."""
        result: dict[str, Any] = await self._request("DELETE", f"/v1/jobs/{job_id}")
        return result

    async def events(self, job_id: str, *, after: int = 0, reconnects: int = 3) -> AsyncIterator[tuple[str, Any]]:
        """See `ProverClient.events`."""
        parser = SSEParser()
        last = after
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
            try:
                async with self._http.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=STREAM_TIMEOUT
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _check(response)
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        seq, kind, data = event
                        if seq is not None and seq.isdigit():
                            last = int(seq)
                        failures = 0
                        yield kind, data
                        if kind == "finished":
                            return
                return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                failures += 1
                if failures > reconnects:
                    raise
                await asyncio.sleep(0.5 * failures)

    async def wait(self, job_id: str, timeout: float | None = None, *, poll_s: float = 0.2) -> dict[str, Any]:
        """See `ProverClient.wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job["state"] in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']} after {timeout} s")
            await asyncio.sleep(poll_s)

    async def health(self) -> dict[str, Any]:
        """See `ProverClient.health`."""
        result: dict[str, Any] = await self._request("GET", "/health")
        return result

    async def ready(self) -> dict[str, Any]:
        """See `ProverClient.ready`."""
        return _ready(await self._http.get("/ready"))

"""What a request may hold, checked before anything is stored: bodies, texts, budgets and quotas.

Layers, cheapest first:
1. `BodySizeLimit` (a pure ASGI middleware): a `Content-Length` above `service.max_body_bytes` is
   refused with 413 before a byte is read; a body without one (chunked) is counted as it arrives and
   refused as soon as it passes the limit. The body is read whole before the app sees it (it is at
   most `max_body_bytes`), so no handler can start work on a body that turns out too large.
2. The request models below (`extra="forbid"`, lengths and ranges): malformed JSON, unknown fields,
   wrong types -> 422 by FastAPI.
3. The project's own checks, the same functions the CLI calls: `prover.statements.theorem_from_statement`
   (sizes and header policy of `lean.policy`, then the statement guard) and
   `lean_env.guard.check_proof_text` for proofs -> 422 with the reason.
4. Budgets above `service.limits` -> 422 naming the field and the cap.
5. Per-token quotas (`max_concurrent_jobs`, `daily_jobs`) -> 429 with `Retry-After`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lean_env.guard import check_proof_text
from lean_env.source_policy import SourcePolicy, check_sizes
from prover.service.settings import JobLimits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_TEXT_CHARS = 1_048_576
"""Hard bound on any one text field; the real limits are `lean.policy` (sizes) and the body limit."""
MAX_NAME_CHARS = 200
DAY_S = 86_400.0


class RequestError(ValueError):
    """A request the service refuses with 422; the message is the reason the client sees."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ProveRequest(_Body):
    """`POST /v1/prove`: one theorem to prove by best-first search."""

    statement: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    """`theorem name <binders> : <type> := by` (nothing after `:= by`)."""
    header: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    """Imports, opens and allowed options before the statement; default the miniF2F header."""
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[^\s]+$")
    """The problem's name in results; default the theorem's own name."""
    expansions: int | None = Field(default=None, ge=1)
    """Expansion budget; default `search.expansions`, at most `service.limits.max_expansions`."""
    samples: int | None = Field(default=None, ge=1)
    """Candidates per expansion; default `search.samples`, at most `service.limits.max_samples`."""
    timeout_s: float | None = Field(default=None, gt=0)
    """Wall-clock budget in seconds; default `search.timeout_s`, at most `service.limits.max_timeout_s`."""


class FormalizeRequest(_Body):
    """`POST /v1/formalize`: draft, sketch and prove one problem from its informal statement and proof."""

    informal_statement: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    informal_proof: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    formal_statement: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    header: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    language: Literal["lean4", "isabelle"] = "lean4"


class VerifyItem(_Body):
    """One statement/proof pair of a `/v1/verify` batch; `proof` is the text after the statement's `:=`."""

    statement: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    proof: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    header: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class VerifyRequest(_Body):
    """`POST /v1/verify`: a batch of proofs to re-check from scratch."""

    items: list[VerifyItem] = Field(min_length=1)
    timeout_s: float | None = Field(default=None, gt=0)
    """Timeout of each check in seconds; default `search.verify_timeout_s`, at most `service.limits.max_timeout_s`."""


_CLI_PREFIX = re.compile(r"^--(statement|header): ")


def _api_reason(message: str, field: str) -> str:
    # `theorem_from_statement` names the CLI's flags; the API names its fields.
    return _CLI_PREFIX.sub(lambda found: f"{field if found.group(1) == 'statement' else 'header'}: ", message)


def check_statement(statement: str, header: str, policy: SourcePolicy, *, field: str = "statement") -> None:
    """Raise `RequestError` with the reason when the statement or header would be refused by the CLI."""
    from prover.statements import StatementError, theorem_from_statement

    try:
        theorem_from_statement(statement, header=header, policy=policy)
    except StatementError as error:
        raise RequestError(_api_reason(str(error), field)) from error


def _cap(field: str, value: float | None, cap: float, setting: str) -> None:
    if value is not None and value > cap:
        raise RequestError(f"{field}: {value:g} is above this server's cap of {cap:g} (service.limits.{setting})")


def check_prove(body: ProveRequest, policy: SourcePolicy, limits: JobLimits) -> None:
    """Budgets first (cheap), then the statement and header as `prover prove --statement` checks them."""
    from prover.statements import MINIF2F_HEADER

    _cap("expansions", body.expansions, limits.max_expansions, "max_expansions")
    _cap("samples", body.samples, limits.max_samples, "max_samples")
    _cap("timeout_s", body.timeout_s, limits.max_timeout_s, "max_timeout_s")
    check_statement(body.statement, body.header if body.header is not None else MINIF2F_HEADER, policy)


def check_verify(body: VerifyRequest, policy: SourcePolicy, limits: JobLimits) -> None:
    """The batch size and timeout caps, then each item's statement, header and proof (naming the item)."""
    from prover.statements import MINIF2F_HEADER

    if len(body.items) > limits.max_verify_items:
        raise RequestError(
            f"items: {len(body.items)} items is above this server's cap of {limits.max_verify_items} "
            "(service.limits.max_verify_items)"
        )
    _cap("timeout_s", body.timeout_s, limits.max_timeout_s, "max_timeout_s")
    for index, item in enumerate(body.items):
        where = f"items[{index}]"
        too_large = check_sizes(policy, proof=item.proof)
        if too_large is not None:
            raise RequestError(f"{where}.proof: {too_large}")
        header = item.header if item.header is not None else MINIF2F_HEADER
        check_statement(item.statement, header, policy, field=f"{where}.statement")
        problem = check_proof_text(item.proof, max_bytes=policy.max_proof_bytes)
        if problem is not None:
            raise RequestError(f"{where}.proof: {problem}")


def check_formalize(body: FormalizeRequest, policy: SourcePolicy) -> None:
    """Lean 4: the formal statement and header as the CLI checks them. Isabelle: the size limits only
    (the Isabelle checker applies its own rules to the theory it builds)."""
    from prover.statements import MINIF2F_HEADER

    for text, field in ((body.informal_statement, "informal_statement"), (body.informal_proof, "informal_proof")):
        if text is not None:
            too_large = check_sizes(policy, proof=text)
            if too_large is not None:
                raise RequestError(f"{field}: {too_large}")
    if body.language == "lean4":
        header = body.header if body.header is not None else MINIF2F_HEADER
        check_statement(body.formal_statement, header, policy, field="formal_statement")
        return
    too_large = check_sizes(policy, statement=body.formal_statement, header=body.header)
    if too_large is not None:
        raise RequestError(f"formal_statement: {too_large}")


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Pure ASGI middleware: 413 for a body over `max_bytes`, whether or not it declares its length.

    The body is read (up to `max_bytes`) before the wrapped app runs, and handed to it as one message;
    later `receive` calls (a client disconnecting from a stream) go to the server as usual.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"the request body is {declared:,} bytes; the limit is {self.max_bytes:,}")
            return
        try:
            body = await self._read(receive)
        except _TooLarge:
            await self._refuse(send, f"the request body is over the limit of {self.max_bytes:,} bytes")
            return
        if body is None:  # the client went away before sending its body
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _refuse(send: Send, detail: str) -> None:
        payload = json.dumps({"detail": detail}).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode("ascii")),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": False})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

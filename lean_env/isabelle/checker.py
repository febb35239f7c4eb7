"""`IsabelleChecker`: check whole theories on a pool of Isabelle sessions, one theory file per check.

Each pool slot is one connection holding one started session (`session_start`, reused across checks;
a slot whose connection dropped reconnects and keeps its session, since sessions are server-wide).
A check writes the text as `<fresh name>.thy` into the work directory (the theory header renamed to
match: Isabelle requires a theory to be named like its file, and a fresh name per check means no two
checks ever share a node), runs `use_theories` with the per-check timeout (cancelled on the same
connection when it runs past it), then `purge_theories` so the session's memory stays bounded.

`verify_theory` is the judge: it accepts only when the check is `ok` (use_theories ok, no error
message, every node consolidated with no failed command) and the text, outside comments, strings and
cartouches, holds no `sorry` or `oops` (the server checks interactively, where `sorry` is no error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lean_env.isabelle.client import IsabelleClient, TaskResult
from lean_env.isabelle.errors import (
    IsabelleCommandError,
    IsabelleConnectError,
    IsabelleConnectionLost,
    IsabelleError,
    IsabelleTaskTimeout,
)
from lean_env.types import VerifyResult, VerifyStatus

logger = logging.getLogger(__name__)

ISABELLE_JUDGE = "isabelle"
"""The `VerifyResult.judge` of verdicts given by `IsabelleChecker.verify_theory`."""
SERVER_LINE = re.compile(
    r'server "(?P<name>[^"]*)" = (?P<host>[^:\s]+):(?P<port>\d+) \(password "(?P<password>[^"]*)"\)'
)
"""The line `isabelle server` prints: `server "NAME" = 127.0.0.1:PORT (password "UUID")`."""


class IsabelleConfig(BaseModel):
    """How to reach (or start) an Isabelle server and how the checker uses it (`[lean.isabelle]`).

    Either `port` and `password` name a running server, or they are None and `start()` runs
    `isabelle server` (`isabelle_path`, default `isabelle` on PATH) and reads its address line.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """The server's host (Isabelle's server listens on 127.0.0.1)."""
    port: int | None = Field(default=None, ge=0, le=65535)
    """The port of a running server; None: start one with `isabelle server`."""
    password: str | None = None
    """The password of a running server (the UUID in its address line)."""
    isabelle_path: Path | None = None
    """The `isabelle` executable used to start a server; None: `isabelle` on PATH."""
    server_name: str = "prover"
    """`isabelle server -n NAME`: a name already running is reused, otherwise a server is started."""
    session: str = "HOL"
    """The logic image each pool session starts (`HOL`, or a built heap such as `MiniF2F_Heap`)."""
    dirs: tuple[str, ...] = ()
    """Extra session directories (`session_start`'s `dirs`: where the ROOT of a custom heap lives)."""
    options: tuple[str, ...] = ()
    """Isabelle options for the sessions, e.g. `("threads=4",)`."""
    pool_size: int = Field(default=2, ge=1)
    """How many sessions to keep started; at most this many theories are checked at once."""
    check_timeout_s: float = Field(default=120.0, gt=0)
    """Default per-check timeout; a check past it is cancelled on the server and reported timed out."""
    session_start_timeout_s: float = Field(default=900.0, gt=0)
    """How long `session_start` may take (loading a heap; building one if it is missing)."""
    connect_timeout_s: float = Field(default=30.0, gt=0)
    """How long connecting and the password handshake may take."""
    cancel_grace_s: float = Field(default=20.0, gt=0)
    """How long a timed-out check's task may take to end after `cancel`."""
    acquire_timeout_s: float = Field(default=600.0, gt=0)
    """How long a check waits for a free session before `TimeoutError`."""
    work_dir: Path | None = None
    """Where theory files are written (the server must be able to read it); None: a fresh temporary folder."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """A server's address and password; `process` is the `isabelle server` process when we started it."""

    name: str
    host: str
    port: int
    password: str
    process: asyncio.subprocess.Process | None = None


@dataclass(frozen=True, slots=True)
class TheoryCheck:
    """The outcome of checking one theory. `ok` only when the server's `ok` is true, no error message was
    reported, and every node finished (consolidated, no failed or unfinished command); `timed_out` when the
    check ran past its timeout and was cancelled. `errors` and `messages` are the texts Isabelle reported."""

    ok: bool
    errors: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    timed_out: bool = False
    seconds: float = 0.0
    theory_name: str = ""
    """The fresh name the theory was checked under (its file is `<theory_name>.thy`)."""


async def start_server(isabelle_path: Path | str = "isabelle", name: str = "prover", port: int = 0) -> ServerInfo:
    """Run `isabelle server -n NAME [-p PORT]` and parse its `server "NAME" = HOST:PORT (password "...")` line.

    When a server of that name already runs, Isabelle prints its line and exits (`process` is then None);
    otherwise the process keeps running and is returned in `ServerInfo.process` (stop it with `shutdown`
    or by terminating it). Raises `IsabelleConnectError` when it cannot be started or prints no such line.
    """
    argv = [str(isabelle_path), "server", "-n", name]
    if port:
        argv += ["-p", str(port)]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as error:
        raise IsabelleConnectError(f"could not run `{' '.join(argv)}`: {error}") from error
    assert process.stdout is not None
    seen: list[str] = []
    while True:
        raw = await process.stdout.readline()
        if not raw:
            await process.wait()
            raise IsabelleConnectError(
                f"`{' '.join(argv)}` exited with status {process.returncode} without an address line",
                stderr="\n".join(seen[-40:]),
            )
        line = raw.decode("utf-8", errors="replace").strip()
        seen.append(line)
        match = SERVER_LINE.search(line)
        if match is not None:
            break
    info = ServerInfo(match["name"], match["host"], int(match["port"]), match["password"], process)
    # Keep draining its output so the server never blocks on a full pipe.
    drain = asyncio.get_running_loop().create_task(_drain(process))
    _BACKGROUND.add(drain)
    drain.add_done_callback(_BACKGROUND.discard)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(process.wait()), 0.2)
    if process.returncode is not None:  # an existing server answered: nothing of ours runs
        return ServerInfo(info.name, info.host, info.port, info.password, None)
    return info


_BACKGROUND: set[asyncio.Task[Any]] = set()


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while await process.stdout.readline():
        pass


# --- the text: masking comments, renaming the theory, finding holes ---------------------------------

_OPEN_CARTOUCHE = ("\\<open>", "‹")
_CLOSE_CARTOUCHE = ("\\<close>", "›")


def mask_isabelle(text: str) -> str:
    """`text` with comments `(* *)` (nested), strings `"..."` and `` `...` ``, verbatim `{* *}` and
    cartouches (`\\<open>...\\<close>` or `‹...›`, nested) replaced by spaces; newlines and length are kept,
    so positions in the result are positions in the text."""
    out = list(text)
    i, n = 0, len(text)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if text.startswith("(*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("(*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*)", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif text.startswith("{*", i):
            j = text.find("*}", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif text[i] in '"`':
            quote, j = text[i], i + 1
            while j < n and text[j] != quote:
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif (opener := next((o for o in _OPEN_CARTOUCHE if text.startswith(o, i)), None)) is not None:
            depth, j = 1, i + len(opener)
            while j < n and depth:
                o = next((o for o in _OPEN_CARTOUCHE if text.startswith(o, j)), None)
                c = next((c for c in _CLOSE_CARTOUCHE if text.startswith(c, j)), None)
                if o is not None:
                    depth, j = depth + 1, j + len(o)
                elif c is not None:
                    depth, j = depth - 1, j + len(c)
                else:
                    j += 1
            blank(i, j)
            i = j
        else:
            i += 1
    return "".join(out)


_HOLE = re.compile(r"(?<![\w'.])(sorry|oops)(?![\w'])")
_HEADER = re.compile(r"(?<![\w'.])theory\s+(\"[^\"]*\"|[A-Za-z][\w'.]*)")


def find_proof_holes(theory_text: str) -> tuple[str, ...]:
    """The `sorry`/`oops` commands of a theory, outside comments, strings and cartouches, in order."""
    return tuple(match[1] for match in _HOLE.finditer(mask_isabelle(theory_text)))


def rename_theory(theory_text: str, name: str) -> str:
    """The text with its `theory NAME` header renamed to `name`; `ValueError` when it has no header."""
    match = _HEADER.search(_mask_keep_quotes(theory_text))
    if match is None:
        raise ValueError("theory_text has no `theory NAME imports ... begin` header")
    return theory_text[: match.start(1)] + name + theory_text[match.end(1) :]


def _mask_keep_quotes(text: str) -> str:
    # Only comments hide the header; a quoted theory name must stay visible.
    masked = mask_isabelle(text)
    return "".join(t if (t == '"' and m == " ") else m for t, m in zip(text, masked, strict=True))


def _slug(name_hint: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_]", "_", name_hint).strip("_") or "Check"
    return ("T_" + slug if not slug[0].isalpha() else slug)[:60]


def _text_of(message: Any) -> str:
    if isinstance(message, dict):
        return str(message.get("message", ""))
    return str(message)


def interpret_use_theories(result: TaskResult) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """(ok, errors, messages) of a `use_theories` outcome, by the rules `TheoryCheck.ok` documents."""
    body = result.result
    errors = [_text_of(error) for error in body.get("errors", []) or []]
    messages: list[str] = []
    nodes = body.get("nodes", []) or []
    finished = bool(nodes)
    for node in nodes:
        status = node.get("status", {}) or {}
        for message in node.get("messages", []) or []:
            text = _text_of(message)
            kind = message.get("kind") if isinstance(message, dict) else None
            if kind == "error":
                if text not in errors:
                    errors.append(text)
            else:
                messages.append(text)
        if status.get("failed") or status.get("canceled") or status.get("unprocessed") or status.get("running"):
            finished = False
        if status.get("ok") is False or not status.get("consolidated", False):
            finished = False
    if not result.ok:
        errors.append(_text_of(body) or "use_theories failed")
    ok = result.ok and body.get("ok") is True and not errors and finished
    if not ok and not errors:
        errors.append("the theory did not finish (a node is unfinished, failed or not consolidated)")
    return ok, tuple(errors), tuple(messages)


# --- the checker ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    session_id: str
    client: IsabelleClient


class IsabelleChecker:
    """Checks theories on a pool of `config.pool_size` Isabelle sessions (use as `async with`, or call
    `start()` and `close()`). Checks run concurrently up to the pool size; sessions are reused."""

    def __init__(self, config: IsabelleConfig) -> None:
        """Only stores the config; `start()` connects (or starts the server) and starts the sessions."""
        self.config = config
        self._server: ServerInfo | None = None
        self._free: asyncio.Queue[_Slot] = asyncio.Queue()
        self._slots: list[_Slot] = []
        self._work_dir: Path | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.checks = 0
        """How many checks ran (for reports and tests)."""

    @property
    def work_dir(self) -> Path:
        """The folder theory files are written to (set by `start()`)."""
        if self._work_dir is None:
            raise RuntimeError("IsabelleChecker.start() has not run")
        return self._work_dir

    @property
    def session_ids(self) -> tuple[str, ...]:
        """The ids of the pool's sessions."""
        return tuple(slot.session_id for slot in self._slots)

    async def start(self) -> None:
        """Connect (starting `isabelle server` when no port is configured) and start the pool's sessions.

        Raises `IsabelleConnectError` / `IsabelleAuthError` when the server cannot be reached, and
        `IsabelleCommandError` when a session does not start (an unknown session name, a failed build)."""
        config = self.config
        if config.work_dir is not None:
            self._work_dir = Path(config.work_dir)
            self._work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._scratch = tempfile.TemporaryDirectory(prefix="isabelle-checks-")
            self._work_dir = Path(self._scratch.name)
        if config.port is None or config.password is None:
            self._server = await start_server(config.isabelle_path or "isabelle", config.server_name, config.port or 0)
        else:
            self._server = ServerInfo(config.server_name, config.host, config.port, config.password)
        try:
            slots = await asyncio.gather(*(self._start_slot() for _ in range(config.pool_size)))
        except BaseException:
            await self.close()
            raise
        for slot in slots:
            self._slots.append(slot)
            self._free.put_nowait(slot)

    async def _connect(self) -> IsabelleClient:
        assert self._server is not None
        server = self._server
        return await IsabelleClient.connect(server.host, server.port, server.password, self.config.connect_timeout_s)

    async def _start_slot(self) -> _Slot:
        client = await self._connect()
        args: dict[str, Any] = {"session": self.config.session}
        if self.config.dirs:
            args["dirs"] = list(self.config.dirs)
        if self.config.options:
            args["options"] = list(self.config.options)
        try:
            result = await client.task("session_start", args, self.config.session_start_timeout_s)
        except BaseException:
            await client.close()
            raise
        if not result.ok or "session_id" not in result.result:
            await client.close()
            raise IsabelleCommandError("session_start", result.result)
        return _Slot(str(result.result["session_id"]), client)

    async def close(self) -> None:
        """Stop the sessions, close the connections, and shut down a server that `start()` started."""
        for slot in self._slots:
            with contextlib.suppress(IsabelleError, TimeoutError, OSError):
                if slot.client.closed:
                    slot.client = await self._connect()
                await slot.client.task("session_stop", {"session_id": slot.session_id}, 60.0)
            await slot.client.close()
        self._slots.clear()
        server = self._server
        if server is not None and server.process is not None and server.process.returncode is None:
            with contextlib.suppress(IsabelleError, TimeoutError, OSError):
                client = await self._connect()
                with contextlib.suppress(IsabelleError, TimeoutError):
                    await client.command("shutdown", timeout=10.0)
                await client.close()
            try:
                await asyncio.wait_for(server.process.wait(), 30.0)
            except TimeoutError:
                server.process.kill()
                await server.process.wait()
        self._server = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    async def __aenter__(self) -> IsabelleChecker:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _lease(self) -> AsyncIterator[_Slot]:
        if not self._slots:
            raise RuntimeError("IsabelleChecker.start() has not run")
        slot = await asyncio.wait_for(self._free.get(), self.config.acquire_timeout_s)
        try:
            if slot.client.closed:  # sessions outlive connections: reconnect, keep the session
                slot.client = await self._connect()
            yield slot
        finally:
            self._free.put_nowait(slot)

    async def check_theory(
        self, theory_text: str, *, name_hint: str = "Check", timeout: float | None = None
    ) -> TheoryCheck:
        """Check one theory text under a fresh name on a free session, then purge it.

        `timeout` (default `config.check_timeout_s`) bounds `use_theories`; past it the task is cancelled
        and the result has `timed_out`. Raises `ValueError` for a text with no theory header and
        `IsabelleConnectionLost` when the server drops the connection (the slot reconnects next time).
        """
        limit = self.config.check_timeout_s if timeout is None else timeout
        name = f"{_slug(name_hint)}_{uuid.uuid4().hex[:12]}"
        text = rename_theory(theory_text, name)
        started = time.monotonic()
        async with self._lease() as slot:
            self.checks += 1
            path = self.work_dir / f"{name}.thy"
            path.write_text(text, encoding="utf-8")
            args = {"session_id": slot.session_id, "theories": [name], "master_dir": str(self.work_dir)}
            try:
                try:
                    result = await slot.client.task(
                        "use_theories", args, limit, cancel_grace=self.config.cancel_grace_s
                    )
                except IsabelleTaskTimeout as error:
                    seconds = time.monotonic() - started
                    why = f"timed out after {limit:g}s" + ("" if error.cancelled else " (the cancel was not confirmed)")
                    return TheoryCheck(False, (why,), (), True, seconds, name)
                ok, errors, messages = interpret_use_theories(result)
                return TheoryCheck(ok, errors, messages, False, time.monotonic() - started, name)
            finally:
                await self._purge(slot, name)
                with contextlib.suppress(OSError):
                    path.unlink()

    async def _purge(self, slot: _Slot, name: str) -> None:
        if slot.client.closed:
            return
        args = {"session_id": slot.session_id, "theories": [name], "master_dir": str(self.work_dir)}
        try:
            await slot.client.command("purge_theories", args, timeout=self.config.cancel_grace_s)
        except (IsabelleCommandError, TimeoutError) as error:
            logger.warning("purge_theories of %s failed: %s", name, error)
        except IsabelleConnectionLost:
            pass

    async def verify_theory(self, theory_text: str, timeout: float | None = None) -> VerifyResult:
        """The judge's verdict on a whole theory (`judge="isabelle"`).

        Valid only when `check_theory` is ok and the text holds no `sorry`/`oops` outside comments, strings
        and cartouches (refused before anything is sent). A timeout is `TIMEOUT`, Isabelle's errors are
        `LEAN_ERROR` (the shared name for "the prover rejected it"), a lost server `BACKEND_ERROR`.
        """
        holes = find_proof_holes(theory_text)
        if holes:
            return VerifyResult(
                VerifyStatus.SORRY,
                reason=f"the theory uses {', '.join(sorted(set(holes)))}",
                checked_text=theory_text,
                judge=ISABELLE_JUDGE,
            )
        try:
            check = await self.check_theory(theory_text, name_hint="Verify", timeout=timeout)
        except ValueError as error:
            return VerifyResult(
                VerifyStatus.LEAN_ERROR, reason=str(error), checked_text=theory_text, judge=ISABELLE_JUDGE
            )
        except IsabelleConnectionLost as error:
            return VerifyResult(
                VerifyStatus.BACKEND_ERROR, reason=str(error), checked_text=theory_text, judge=ISABELLE_JUDGE
            )
        messages = check.errors + check.messages
        if check.timed_out:
            status, reason = VerifyStatus.TIMEOUT, check.errors[0] if check.errors else "timed out"
        elif not check.ok:
            status, reason = VerifyStatus.LEAN_ERROR, "; ".join(check.errors)[:2000] or "Isabelle rejected the theory"
        else:
            status, reason = VerifyStatus.VALID, ""
        return VerifyResult(
            status,
            reason=reason,
            messages=messages,
            checked_text=theory_text,
            seconds=check.seconds,
            judge=ISABELLE_JUDGE,
        )

"""`IsabelleClient`: one asyncio connection to Isabelle's server, with tasks and cancel on the same connection.

Why our own client and not PyPI `isabelle-client` (1.1.2): that library opens a new connection for
every call and blocks the calling thread without a timeout. Isabelle's tasks belong to the connection
that started them, so its `cancel()` (sent on a fresh connection) can never stop a running
`use_theories`, and a per-check timeout is exactly what a prover needs; a dropped connection also
surfaces there as `ValueError("Unexpected response from Isabelle: ")`. The protocol is small (see
`lean_env.isabelle.protocol`), so this module speaks it directly over asyncio streams: one reader task
per connection dispatches synchronous replies (`OK`/`ERROR`, in command order) to their callers and
`NOTE`/`FINISHED`/`FAILED` to their task by id, so many tasks may run at once on one connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from lean_env.isabelle.errors import (
    IsabelleAuthError,
    IsabelleCommandError,
    IsabelleConnectError,
    IsabelleConnectionLost,
    IsabelleTaskTimeout,
)
from lean_env.isabelle.protocol import ProtocolError, Reply, ReplyKind, encode_message, parse_reply, read_message

logger = logging.getLogger(__name__)

DEFAULT_CANCEL_GRACE_S = 10.0
"""How long a timed-out task may take to end after `cancel` before the client gives up waiting."""


@dataclass(frozen=True, slots=True)
class TaskResult:
    """How an asynchronous task ended: `ok` for `FINISHED`, false for `FAILED`.

    `result` is the final reply's body (always a dict; a non-object body is kept under `"message"`),
    `notes` the bodies of the task's `NOTE`s in arrival order.
    """

    ok: bool
    result: dict[str, Any]
    notes: tuple[Any, ...] = ()


@dataclass(slots=True)
class _Pending:
    command: str
    future: asyncio.Future[Reply]
    is_task: bool
    entry: _Task | None = None
    """The task an async command's `OK` started (set by the reader, which may finish it before the caller wakes)."""


@dataclass(slots=True)
class _Task:
    command: str
    done: asyncio.Future[TaskResult]
    notes: list[Any] = field(default_factory=list)
    on_note: Callable[[Any], None] | None = None


def _as_dict(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {"message": body}


class IsabelleClient:
    """A connection to Isabelle's server (`connect` opens it). Safe for concurrent use by many
    coroutines on one event loop: commands are answered in order, tasks are told apart by id.

    Every waiter raises `IsabelleConnectionLost` when the connection ends; `ERROR` replies raise
    `IsabelleCommandError`; a task past its timeout is cancelled and raises `IsabelleTaskTimeout`.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hello: Any = None) -> None:
        """Wrap an authenticated stream pair; use `connect` instead unless you did the handshake yourself."""
        self._reader = reader
        self._writer = writer
        self.hello: Any = hello
        """The body of the server's `OK` to the password (Isabelle sends its id and name)."""
        self._pending: collections.deque[_Pending] = collections.deque()
        self._tasks: dict[str, _Task] = {}
        self._lost: IsabelleConnectionLost | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(), name="isabelle-client-reader")

    @classmethod
    async def connect(cls, host: str, port: int, password: str, timeout: float = 30.0) -> IsabelleClient:
        """Connect, send the password line and wait for the server's `OK`.

        Raises `IsabelleConnectError` when nothing answers at `host:port` within `timeout`, and
        `IsabelleAuthError` when the server closes the connection after the password (Isabelle's answer
        to a wrong one) or does not answer it in time.
        """
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as error:
            raise IsabelleConnectError(f"could not connect to the Isabelle server at {host}:{port}: {error}") from error
        try:
            writer.write(password.encode("utf-8") + b"\n")
            await writer.drain()
            text = await asyncio.wait_for(read_message(reader), timeout)
        except (OSError, TimeoutError, ProtocolError) as error:
            writer.close()
            raise IsabelleAuthError(
                f"the Isabelle server at {host}:{port} did not answer the password: {error}"
            ) from error
        if text is None:
            writer.close()
            raise IsabelleAuthError(
                f"the Isabelle server at {host}:{port} closed the connection after the password "
                "(the password is wrong, or this is not an Isabelle server)"
            )
        try:
            reply = parse_reply(text)
        except ProtocolError as error:
            writer.close()
            raise IsabelleAuthError(f"unexpected answer to the password from {host}:{port}: {text[:200]!r}") from error
        if reply.kind is not ReplyKind.OK:
            writer.close()
            raise IsabelleAuthError(f"the Isabelle server at {host}:{port} refused the password: {reply.body!r}")
        return cls(reader, writer, reply.body)

    # --- public API ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection has ended (closed by us, by the server, or broken)."""
        return self._lost is not None

    async def command(self, name: str, args: Any = None, timeout: float | None = None) -> Any:
        """Run a synchronous command (`help`, `echo`, `purge_theories`, `cancel`, ...) and return the
        body of its `OK`. Raises `IsabelleCommandError` on `ERROR`, `TimeoutError` past `timeout`."""
        reply, _ = await self._request(name, args, is_task=False, timeout=timeout)
        return reply.body

    async def task(
        self,
        name: str,
        args: Any = None,
        timeout: float | None = None,
        *,
        cancel_grace: float = DEFAULT_CANCEL_GRACE_S,
        on_note: Callable[[Any], None] | None = None,
    ) -> TaskResult:
        """Run an asynchronous command (`session_start`, `use_theories`, ...) until `FINISHED` or `FAILED`.

        `on_note` is called with each `NOTE` body as it arrives. Past `timeout` seconds (counted from the
        call), the client sends `cancel {"task": id}` on this connection, waits up to `cancel_grace` for
        the task to end, then raises `IsabelleTaskTimeout`. If the caller itself is cancelled, the task
        is cancelled on the server too.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            reply, pending = await self._request(name, args, is_task=True, timeout=timeout)
        except TimeoutError as error:
            # The start reply is late; the reader cancels the task when its id arrives.
            raise IsabelleTaskTimeout(name, "", timeout or 0.0, cancelled=False, notes=()) from error
        task_id, entry = reply.task, pending.entry
        if task_id is None or entry is None:
            raise IsabelleConnectionLost(f"`{name}` was answered without a task id: {reply.body!r}")
        entry.on_note = on_note
        for note in entry.notes:  # notes that arrived before we got here
            self._call_note(entry, note)
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            return await asyncio.wait_for(asyncio.shield(entry.done), remaining)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._cancel_in_background(task_id)
            raise
        cancelled = await self._cancel_and_wait(task_id, entry, cancel_grace)
        raise IsabelleTaskTimeout(name, task_id, timeout or 0.0, cancelled=cancelled, notes=tuple(entry.notes))

    async def cancel(self, task_id: str) -> None:
        """Send `cancel {"task": task_id}` (a no-op for a task that has ended or belongs to another connection)."""
        await self.command("cancel", {"task": task_id})

    async def close(self) -> None:
        """Close the connection; waiters get `IsabelleConnectionLost` and the server cancels our tasks."""
        if self._lost is None:
            self._fail_all(IsabelleConnectionLost("the client closed the connection"))
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader_task
        for background in list(self._background):
            background.cancel()

    async def __aenter__(self) -> IsabelleClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    # --- internals ---------------------------------------------------------------------------------

    def _send_nowait(self, name: str, args: Any, is_task: bool) -> asyncio.Future[Reply]:
        if self._lost is not None:
            raise IsabelleConnectionLost(f"cannot send `{name}`: {self._lost.message}")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        # Appending and writing with no await in between keeps the reply queue in the order of the wire.
        self._pending.append(_Pending(name, future, is_task))
        self._writer.write(encode_message(name, args))
        return future

    async def _request(self, name: str, args: Any, *, is_task: bool, timeout: float | None) -> tuple[Reply, _Pending]:
        future = self._send_nowait(name, args, is_task)
        pending = self._pending[-1]
        try:
            await self._writer.drain()
        except (OSError, ConnectionError) as error:
            self._fail_all(IsabelleConnectionLost(f"writing `{name}` failed: {error}"))
        reply = await asyncio.wait_for(future, timeout)  # a late reply is dropped by the reader
        if reply.kind is ReplyKind.ERROR:
            raise IsabelleCommandError(name, reply.body)
        return reply, pending

    async def _cancel_and_wait(self, task_id: str, entry: _Task, grace: float) -> bool:
        try:
            await self.command("cancel", {"task": task_id}, timeout=grace)
            await asyncio.wait_for(asyncio.shield(entry.done), grace)
        except TimeoutError:
            logger.warning("Isabelle task %s (%s) did not end within %gs of cancel", task_id, entry.command, grace)
            return False
        return True

    def _cancel_in_background(self, task_id: str) -> None:
        if self._lost is not None:
            return
        try:
            future = self._send_nowait("cancel", {"task": task_id}, is_task=False)
        except IsabelleConnectionLost:
            return
        future.add_done_callback(lambda done: done.cancelled() or done.exception())

    def _call_note(self, entry: _Task, body: Any) -> None:
        if entry.on_note is None:
            return
        try:
            entry.on_note(body)
        except Exception:  # a listener's bug must not stop the reader
            logger.exception("on_note callback failed for an Isabelle task")

    async def _read_loop(self) -> None:
        try:
            while True:
                text = await read_message(self._reader)
                if text is None:
                    self._fail_all(IsabelleConnectionLost("the Isabelle server closed the connection"))
                    return
                self._dispatch(parse_reply(text))
        except asyncio.CancelledError:
            raise
        except ProtocolError as error:
            self._fail_all(IsabelleConnectionLost(f"the Isabelle server broke the protocol: {error}"))
            self._writer.close()
        except (OSError, ConnectionError) as error:
            self._fail_all(IsabelleConnectionLost(f"the connection to the Isabelle server broke: {error}"))

    def _dispatch(self, reply: Reply) -> None:
        if reply.kind in (ReplyKind.OK, ReplyKind.ERROR):
            if not self._pending:
                logger.warning("Isabelle server sent %s with no command waiting: %r", reply.kind, reply.body)
                return
            pending = self._pending.popleft()
            task_id = reply.task if pending.is_task and reply.kind is ReplyKind.OK else None
            if task_id is not None:
                # Registered here, before any of its NOTEs can be read, so none is lost.
                done: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
                pending.entry = self._tasks[task_id] = _Task(pending.command, done)
            if pending.future.done():  # the caller gave up waiting
                if task_id is not None:
                    self._cancel_in_background(task_id)
                return
            pending.future.set_result(reply)
            return
        task_id = reply.task
        entry = self._tasks.get(task_id) if task_id is not None else None
        if entry is None:
            logger.debug("Isabelle %s for no task of ours: %r", reply.kind, reply.body)
            return
        if reply.kind is ReplyKind.NOTE:
            entry.notes.append(reply.body)
            self._call_note(entry, reply.body)
            return
        assert task_id is not None
        del self._tasks[task_id]
        if not entry.done.done():
            entry.done.set_result(
                TaskResult(reply.kind is ReplyKind.FINISHED, _as_dict(reply.body), tuple(entry.notes))
            )

    def _fail_all(self, error: IsabelleConnectionLost) -> None:
        if self._lost is None:
            self._lost = error
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.set_exception(error)
        for entry in self._tasks.values():
            if not entry.done.done():
                entry.done.set_exception(error)
                entry.done.exception()  # retrieved: a task nobody awaits must not log "never retrieved"
        self._tasks.clear()

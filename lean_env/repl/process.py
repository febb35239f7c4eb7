"""One REPL worker: a single `repl` process, its header environment, and one request at a time.

The process runs in its own session (so the whole tree, e.g. `lake env` and the `repl` under it,
is one process group) with an address-space limit. Every request has a deadline; a request that
runs past it gets the whole group killed with SIGKILL and raises `BackendTimeout`: the process
is never reused, because its late reply would otherwise answer the next request. End of output
in the middle of a reply, or bytes that are not a reply, raise `BackendCrashed`. Every such error
carries the tail of the process's standard error.

A request that has been written is always read to its end (or to the kill), even when the
caller is cancelled: the exchange runs in its own task and the caller only waits on it, so a
cancelled search never leaves a reply in the pipe for the next request to read. The drain waits
at most `config.cancel_drain_s`; then the process is killed (`death == "cancelled"`).

Memory. The limit is on resident memory (RSS of the process and its children, from /proc through
psutil), not on the address space: Mathlib's `.olean` files are memory-mapped, so a REPL that imported
Mathlib reserves far more address space than it touches. While a request is on the wire a watchdog
measures it every `config.memory_poll_s`: past `recycle_rss_bytes` the worker is marked `over_memory`
(the pool recycles it once the request ends); past `kill_rss_bytes` it is killed at once and the request
raises `WorkerOutOfMemory` saying so. An address-space limit (RLIMIT_AS) is applied only when
`config.memory_limit_mb` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import resource
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import psutil

from lean_env.errors import BackendCrashed, BackendStartError, BackendTimeout, LeanEnvError
from lean_env.repl.config import ReplConfig
from lean_env.repl.wire import (
    REPLY_TERMINATOR,
    CommandReply,
    ReplError,
    ReplProtocolError,
    ReplReply,
    TacticReply,
    command_request,
    decode_reply,
    encode_request,
    tactic_request,
)

logger = logging.getLogger(__name__)

_STREAM_LIMIT = 256 * 1024 * 1024
"""Largest reply accepted (an `infotree` of a long proof runs to megabytes)."""
_EXIT_GRACE_S = 2.0
_worker_ids = itertools.count(1)


class WorkerOutOfMemory(BackendCrashed):
    """The memory watchdog killed the worker mid-request: its resident memory passed `ReplConfig.kill_rss_bytes`.

    A `BackendCrashed` for commands; a session turns it into a `TacticError` for the tactic that grew it
    (running it again on a fresh worker would only grow again).
    """


ExchangeObserver = Callable[[float, str], None]
"""Called after every exchange with its duration and `ok`, `timeout`, `cancelled` (drain gave up) or `crash`."""


def _limit_address_space(limit_bytes: int) -> None:  # pragma: no cover - runs in the child
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


class ReplProcess:
    """One running REPL with `header` elaborated once into `header_env`.

    Callers hold the worker exclusively (the pool leases it) but overlapping calls are still
    serialised here. `alive` turns false for good after a kill, a crash or `close()`.
    """

    def __init__(self, config: ReplConfig, header: str = "", *, observer: ExchangeObserver | None = None) -> None:
        self.config = config
        self.header = header
        self.id = next(_worker_ids)
        self.header_env: int | None = None
        """The environment holding the header; None when the header is empty (commands start fresh)."""
        self.requests = 0
        """Requests sent to this process, the header included."""
        self.death: str | None = None
        """Why the process is gone: `timeout`, `crash`, `protocol`, `closed`, `start`; None while alive."""
        self._observer = observer
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr = bytearray()
        self._stderr_task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[None] | None = None
        # The task that reads a cancelled request's reply; held so the event loop keeps it alive.
        self._drain_task: asyncio.Task[None] | None = None
        # Pool bookkeeping, owned by `ReplPool`.
        self.leased = False
        self.retiring = False
        self.memory_checked_at = 0
        self.over_memory = False
        """Resident memory passed `config.recycle_rss_bytes`: recycle at the next release."""
        self.last_rss = 0
        """The latest resident memory measured (bytes; 0 before the first measurement)."""
        self.memory_detail = ""
        """Why the watchdog killed the process (empty unless `death == "memory"`)."""
        self._tree: list[psutil.Process] | None = None
        self._tree_age = 0

    def __repr__(self) -> str:
        state = "alive" if self.alive else f"dead:{self.death}"
        return f"<ReplProcess {self.id} pid={self.pid} {state} requests={self.requests}>"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self.death is None and self._proc.returncode is None

    @property
    def busy(self) -> bool:
        """Whether a request is on the wire (written, reply not read yet)."""
        return self._inflight is not None and not self._inflight.done()

    @property
    def inflight(self) -> asyncio.Future[None] | None:
        """Resolves when the request on the wire has been answered (or the process is gone)."""
        return self._inflight

    def stderr_tail(self) -> str:
        """The last `config.stderr_tail_bytes` of the process's standard error."""
        return bytes(self._stderr[-self.config.stderr_tail_bytes :]).decode("utf-8", errors="replace")

    async def start(self) -> None:
        """Spawn the process and elaborate the header, within `config.start_timeout_s`.

        Raises `BackendStartError` (with stderr) if the command cannot run, exits, hangs past
        the deadline, or Lean reports an error in the header; the process is gone afterwards.
        """
        if self._proc is not None:
            raise RuntimeError("ReplProcess.start: a worker starts once")
        timeout = self.config.start_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        limit = self.config.address_space_bytes
        try:
            async with asyncio.timeout(timeout):
                self._proc = await asyncio.create_subprocess_exec(
                    *self.config.command,
                    cwd=self.config.cwd,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                    preexec_fn=functools.partial(_limit_address_space, limit) if limit else None,
                    limit=_STREAM_LIMIT,
                )
        except TimeoutError as error:
            await self.kill("start")
            raise BackendStartError(f"the Lean REPL did not start within {timeout:g} s") from error
        except (OSError, subprocess.SubprocessError) as error:
            self.death = "start"
            raise BackendStartError(
                f"cannot run the Lean REPL command {' '.join(self.config.command)!r}: {error}"
            ) from error
        assert self._proc.stderr is not None
        self._stderr_task = asyncio.ensure_future(self._drain_stderr(self._proc.stderr))
        if not self.header.strip():
            return
        try:
            reply = await self.request(command_request(self.header), max(deadline - loop.time(), 0.001))
        except BackendTimeout as error:
            raise BackendStartError(
                f"the Lean REPL did not elaborate the header within {timeout:g} s", stderr=error.stderr
            ) from error
        except LeanEnvError as error:
            await self.kill("start")
            raise BackendStartError(
                f"the Lean REPL failed while elaborating the header: {error.message}", stderr=error.stderr
            ) from error
        problem = None
        if isinstance(reply, ReplError):
            problem = reply.message
        elif not isinstance(reply, CommandReply):
            problem = f"unexpected reply {reply!r}"
        elif reply.errors:
            problem = "; ".join(m.text for m in reply.errors)
        if problem is not None:
            await self.kill("start")
            raise BackendStartError(
                f"the header does not elaborate: {problem[:2000]}\n--- header ---\n{self.header}",
                stderr=self.stderr_tail(),
            )
        assert isinstance(reply, CommandReply)
        self.header_env = reply.env

    async def request(self, payload: dict[str, Any], timeout: float) -> ReplReply:
        """Send one request and read its reply within `timeout` seconds.

        Raises `BackendTimeout` (process killed), `BackendCrashed` (process died or broke the
        protocol; killed), `WorkerOutOfMemory` (the memory watchdog killed it), all with stderr
        attached. Request errors of the REPL are values.
        """
        data = encode_request(payload)
        while self._inflight is not None and not self._inflight.done():
            await asyncio.wait([self._inflight])
        if not self.alive:
            raise BackendCrashed(
                f"Lean REPL worker {self.id} is not running ({self.death or 'not started'})", stderr=self.stderr_tail()
            )
        wire: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight = wire
        return await self._exchange(data, timeout, wire)

    async def command(self, cmd: str, env: int | None = None, timeout: float = 60.0) -> CommandReply | ReplError:
        """Elaborate `cmd` on top of environment `env` (a fresh environment when None)."""
        reply = await self.request(command_request(cmd, env), timeout)
        if isinstance(reply, TacticReply):
            await self.kill("protocol")
            raise BackendCrashed("the Lean REPL answered a command with a tactic reply", stderr=self.stderr_tail())
        return reply

    async def tactic(self, tactic: str, proof_state: int, timeout: float) -> TacticReply | ReplError:
        """Run `tactic` on proof state `proof_state` of this process."""
        reply = await self.request(tactic_request(tactic, proof_state), timeout)
        if isinstance(reply, CommandReply):
            await self.kill("protocol")
            raise BackendCrashed("the Lean REPL answered a tactic with a command reply", stderr=self.stderr_tail())
        return reply

    def rss_bytes(self) -> int:
        """Resident memory of the whole process tree (`lake` and the `repl` under it); 0 if gone.

        Blocking (reads /proc): call it through `asyncio.to_thread`. Finding the descendants walks
        every process on the machine, so they are looked up again only every few calls.
        """
        if self._proc is None or not self.alive:
            return 0
        try:
            if self._tree is None or self._tree_age >= 16:
                root = psutil.Process(self._proc.pid)
                self._tree = [root, *root.children(recursive=True)]
                self._tree_age = 0
            self._tree_age += 1
            total = 0
            for process in self._tree:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            return total
        except psutil.Error:
            return 0

    async def kill(self, reason: str, detail: str = "") -> None:
        """SIGKILL the whole process group and reap it. Idempotent; the worker is dead afterwards.

        `reason` becomes `death`; `detail` (what happened) goes to the debug log.
        """
        if self.death is None:
            self.death = reason
            logger.debug("killing Lean REPL worker %s (%s): %s", self.id, reason, detail)
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        try:
            await asyncio.wait_for(proc.wait(), _EXIT_GRACE_S * 2)
        except TimeoutError:
            logger.warning("Lean REPL worker %s (pid %s) did not exit after SIGKILL", self.id, proc.pid)
        await self._finish_stderr()
        self._close_stdin()

    def _kill_now(self, reason: str) -> None:
        if self.death is None:
            self.death = reason
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    async def close(self) -> None:
        """Stop the process: end of input first (the REPL exits on EOF), then kill the group."""
        if self._proc is None:
            self.death = self.death or "closed"
            return
        if self.alive and not self.busy:
            self._close_stdin()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), _EXIT_GRACE_S)
        await self.kill("closed")

    async def _exchange(self, data: bytes, timeout: float, wire: asyncio.Future[None]) -> ReplReply:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.requests += 1
        outcome = "crash"
        handed_off = False
        watchdog = self._start_watchdog()
        try:
            async with asyncio.timeout(timeout):
                proc.stdin.write(data)
                await proc.stdin.drain()
                raw = await proc.stdout.readuntil(REPLY_TERMINATOR)
            reply = decode_reply(raw)
            outcome = "ok"
            return reply
        except asyncio.CancelledError:
            # The caller gave up, but the request is written: its reply must still be read (or the
            # process killed), or the next request would read it. A background task finishes the
            # exchange, waiting at most `cancel_drain_s`; the wire stays busy until it has.
            if self.alive:
                handed_off = True
                deadline = min(started + timeout, loop.time() + self.config.cancel_drain_s)
                self._drain_task = asyncio.ensure_future(self._finish(deadline, started, wire))
            raise
        except TimeoutError:
            outcome = "timeout"
            await self.kill("timeout", f"no reply within {timeout:g} s")
            raise BackendTimeout(
                f"Lean REPL worker {self.id} did not answer within {timeout:g} s; the process was killed",
                stderr=self.stderr_tail(),
            ) from None
        except asyncio.IncompleteReadError as error:
            what = f"in the middle of a reply ({len(error.partial)} bytes read)" if error.partial else "before replying"
            raise await self._crashed(f"exited {what}") from None
        except (BrokenPipeError, ConnectionResetError):
            raise await self._crashed("closed its input (it had exited)") from None
        except asyncio.LimitOverrunError:
            await self.kill("protocol")
            raise BackendCrashed(
                f"Lean REPL worker {self.id} sent a reply larger than {_STREAM_LIMIT} bytes", stderr=self.stderr_tail()
            ) from None
        except ReplProtocolError as error:
            await self.kill("protocol", str(error))
            raise BackendCrashed(f"Lean REPL worker {self.id}: {error}", stderr=self.stderr_tail()) from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if not handed_off:
                if not wire.done():
                    wire.set_result(None)
                if self._observer is not None:
                    self._observer(loop.time() - started, outcome)

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        if self.config.recycle_rss_bytes is None:
            return None
        return asyncio.ensure_future(self._watch_memory())

    async def _watch_memory(self) -> None:
        """Measure resident memory every `memory_poll_s` while a request is on the wire; kill past the kill level."""
        recycle_at = self.config.recycle_rss_bytes
        kill_at = self.config.kill_rss_bytes
        while self.alive:
            await asyncio.sleep(self.config.memory_poll_s)
            rss = await asyncio.to_thread(self.rss_bytes)
            self.last_rss = rss
            if recycle_at is not None and rss > recycle_at:
                self.over_memory = True
            if kill_at is not None and rss > kill_at and self.alive:
                self.memory_detail = (
                    f"its resident memory reached {rss / 2**20:.0f} MiB, past the kill level {kill_at / 2**20:.0f} MiB "
                    f"({self.config.memory_kill_ratio:g} × lean.repl.max_worker_memory_mb)"
                )
                logger.warning("killing Lean REPL worker %s: %s", self.id, self.memory_detail)
                self._kill_now("memory")
                return

    async def _finish(self, deadline: float, started: float, wire: asyncio.Future[None]) -> None:
        """Read and drop the reply of a cancelled request; kill the process at the request's deadline."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        outcome = "crash"
        watchdog = self._start_watchdog()
        try:
            async with asyncio.timeout_at(deadline):
                raw = await proc.stdout.readuntil(REPLY_TERMINATOR)
            decode_reply(raw)
            outcome = "ok"
        except TimeoutError:
            # Not a timeout of Lean's: the caller went away and the reply did not come soon enough.
            outcome = "cancelled"
            await self.kill("cancelled", "no reply to a cancelled request within cancel_drain_s")
        except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
            await self._crashed("exited in the middle of a reply")
        except (asyncio.LimitOverrunError, ReplProtocolError):
            await self.kill("protocol")
        except asyncio.CancelledError:
            self._kill_now("closed")
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if not wire.done():
                wire.set_result(None)
            if self._observer is not None:
                self._observer(asyncio.get_running_loop().time() - started, outcome)

    async def _crashed(self, what: str) -> BackendCrashed:
        proc = self._proc
        assert proc is not None
        if self.death == "memory":
            await self.kill("memory")
            return WorkerOutOfMemory(
                f"Lean REPL worker {self.id} was killed by the memory watchdog: {self.memory_detail}",
                stderr=self.stderr_tail(),
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), _EXIT_GRACE_S)
        code = proc.returncode
        if code is None:
            status = "is still running"
        elif code < 0:
            status = f"was killed by signal {-code} ({_signal_name(-code)})"
        else:
            status = f"exited with code {code}"
        detail = f"{what}; the process {status}"
        await self.kill("crash", detail)
        return BackendCrashed(f"Lean REPL worker {self.id} {detail}", stderr=self.stderr_tail())

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        keep = self.config.stderr_tail_bytes
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            self._stderr += chunk
            if len(self._stderr) > 2 * keep:
                del self._stderr[:-keep]

    async def _finish_stderr(self) -> None:
        task = self._stderr_task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), 1.0)
        except TimeoutError:
            task.cancel()

    def _close_stdin(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            with contextlib.suppress(Exception):
                proc.stdin.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"

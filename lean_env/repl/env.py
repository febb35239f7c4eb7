"""`ReplLeanEnv`: the `LeanEnv` protocol over a pool of leanprover-community/repl processes.

A session is opened by an *opening*: a command run in a header's environment and the number of
the `sorry` (among the ones the REPL reports for it) whose proof state the session continues from.
For a problem's statement the opening is `statement + " sorry"` and its only `sorry`; for a hole
of a checked text (`check`, then `start(problem, hole=...)`) it is the text after its header and
that hole's `sorry`. Proof states live inside one process, so a session's
states are pinned to the worker that created them (its *home*). Each state's handle records the
tactic path from the initial state; when the home worker has been recycled, killed after a
timeout or has crashed, the session replays that path on another worker and carries on, so a
search never sees a failure just because a worker went away.

While the home worker is busy (the search runs several candidates of one expansion at once), a
tactic runs instead on a worker of the same header that is idle right now (a *guest*), replaying
the state's path there; with `ReplConfig.spread_tactics` off every tactic waits for the home.
Lean is deterministic, so the outcome is the one the home worker would have given.

Verification (`verify`) is hardened against the process it reads from, because that process runs
the untrusted text: code evaluated while a proof elaborates (a tactic's `(config := ...)` term,
Mathlib's `eval%`, `plausible`) can write bytes to the REPL's own standard output. Layers, and what
each one stops:
1. a fresh worker per check (`ReplPool.acquire_fresh`): it has elaborated only the header, served no
   one, and is discarded afterwards. Stops anything a proof leaves behind (a background task, output
   written late, a changed environment) from answering another check or a search's tactic.
2. two requests read strictly in order: the proof (header's environment, statement, proof; no
   `#print axioms`), then, only once its reply was read, the trusted `Probe` of
   `lean_env.verification` on the environment that reply names. Each reply's env number must be the
   next one of this worker (header + 1, then + 1 again). A reply forged during elaboration is read as
   the proof's reply and the real one as the probe's, so the env number or the nonce (next layer) does
   not match: `VerifyStatus.REPLY_MISMATCH`, never a pass and never retried.
3. the probe's nonce: the probe's answers name declarations drawn at random after the proof's reply
   was read, and its canary has a known axiom list, so no output written in advance answers it, and
   a `#print axioms` rewritten to always answer cleanly (a header's `macro_rules`) is caught; the
   alias typed by a fresh elaboration of the problem's statement makes Lean check the statement.
4. a closing sentinel: a third request (a comment naming the nonce) whose reply must be the next
   block, an empty reply on the next env number. A forged block still in the pipe, or one written
   late by a task the proof left running, is read in its place: `REPLY_MISMATCH`. So are bytes that
   are not a reply at all. (One more round trip costs less than waiting for the process to exit.)
What these do not stop: code that reads the worker's standard input (`/dev/stdin`) to learn the
probe and keeps running to answer it. Only a verdict from a process that never elaborated the text
(the comparator judge) stops that; the text guard keeps the known ways of running code out first.
`check` does the same for any text, with the header split off (leading `import` lines), and
reports every `sorry` as a `Hole` whose positions refer to the whole text.

A statement that does not elaborate (Lean reports an error, the REPL refuses the command or
reports no `sorry`) or that the guard refuses is an `InvalidStatement` value. A header that does
not elaborate stays a `BackendStartError`: it is shared by every problem of a run (a missing
Mathlib build, a wrong toolchain), so it is the installation that is broken, not one statement.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Any

from lean_env.errors import BackendCrashed, BackendTimeout, HoleUnavailable
from lean_env.guard import (
    ASYNC_THRESHOLD_CHARS,
    check_proof_text_async,
    check_sketch_text,
    check_tactic_text_async,
    check_text_async,
)
from lean_env.lean_syntax import LEAN, LeanSyntax, split_header
from lean_env.repl.config import ReplConfig
from lean_env.repl.pool import PoolStats, ReplPool, WorkerGone
from lean_env.repl.process import ReplProcess, WorkerOutOfMemory
from lean_env.repl.wire import CommandReply, ReplError, ReplSorry, TacticReply, tactic_outcome
from lean_env.source_policy import DEFAULT_POLICY, SourcePolicy, check_header, enforce_policy
from lean_env.types import (
    CheckResult,
    Hole,
    InvalidStatement,
    LeanMessage,
    Position,
    Problem,
    Progress,
    ProofState,
    Severity,
    TacticError,
    TacticErrorKind,
    TacticOutcome,
    VerifyResult,
    VerifyStatus,
)
from lean_env.verification import Probe, judge_probe, make_probe

logger = logging.getLogger(__name__)

_session_ids = itertools.count(1)

Path_ = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplStateHandle:
    """What a `ProofState.handle` holds for this backend: its session and the tactics leading to it."""

    session: int
    path: Path_


@dataclass(frozen=True, slots=True)
class ReplHoleHandle:
    """The handle of a `Hole`'s state from `ReplLeanEnv.check`: how to open a session on that hole.

    `command` is the checked text after `header`, run in the header's environment; `index` is the
    hole's number among the `sorries` the REPL reported for it. Nothing in it is tied to a process,
    so a session on the hole opens (and replays) on any worker of the header.
    """

    header: str
    command: str
    index: int


@dataclass(frozen=True, slots=True)
class _Opening:
    """What opens a session: run `command` in `header`'s environment, continue from sorry `index`."""

    header: str
    command: str
    index: int
    """Which of the reported sorries; -1 is the last (a statement's own `sorry`)."""
    goal: str | None = None
    """The goal the sorry must show (a hole's), or None when any goal is accepted."""


class _OpeningRefused(Exception):
    """Lean rejected the opening command: the statement (or hole text) is invalid. A value for `start`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _ReplayFailed(Exception):
    """Replaying a tactic path on a fresh worker did not reach the recorded state."""

    def __init__(self, outcome: TacticOutcome) -> None:
        super().__init__(str(outcome))
        self.outcome = outcome


class ReplSession:
    """Tactic-mode access to one goal (a statement or a hole) through the pool. Built by `ReplLeanEnv.start`.

    `run_tactic` may be called concurrently; requests on the home worker run one after another,
    and while it is busy a request may run on an idle guest worker (see the module docstring).
    Tactic failures (including the tactic's own timeout) are values; `BackendCrashed` is raised
    only after `config.crash_retries` fresh workers crashed on the same request.
    """

    def __init__(self, env: ReplLeanEnv, theorem: Problem, opening: _Opening | None = None) -> None:
        self._env = env
        self._pool = env.pool
        self._config = env.config
        self._theorem = theorem
        self._opening = opening or _Opening(theorem.header, theorem.formal_statement + " sorry", -1)
        self._header = self._opening.header
        self._id = next(_session_ids)
        self._home: ReplProcess | None = None
        self._ids: dict[Path_, int] = {}
        # Proof state ids of this session's paths on guest workers, kept while the worker lives.
        self._guests: dict[ReplProcess, dict[Path_, int]] = {}
        self._initial: ProofState | None = None
        self._closed = False

    @property
    def theorem(self) -> Problem:
        return self._theorem

    @property
    def initial_state(self) -> ProofState:
        if self._initial is None:
            raise RuntimeError("ReplSession.initial_state: the session was not opened")
        return self._initial

    @property
    def home(self) -> ReplProcess | None:
        """The worker holding this session's live proof states (None before opening or after its loss)."""
        return self._home

    async def open(self) -> None:
        """Open the session on some worker.

        Raises `_OpeningRefused` when Lean rejects the opening (the caller turns it into an
        `InvalidStatement`), `LeanEnvError` when the backend fails.
        """
        crashes = 0
        while True:
            worker = await self._pool.acquire(self._header)
            try:
                proof_state, goal = await self._open_on(worker)
                break
            except BackendCrashed as error:
                crashes += 1
                if crashes > self._config.crash_retries:
                    raise
                logger.warning("Lean REPL crashed opening %s; retrying: %s", self._theorem.name, error)
            finally:
                self._pool.release(worker)
        self._home = worker
        self._ids = {(): proof_state}
        self._initial = ProofState.from_goals([goal], handle=ReplStateHandle(self._id, ()))

    async def run_tactic(self, state: ProofState, tactic: str, timeout: float) -> TacticOutcome:
        """Apply `tactic` to `state` (a state of this session) within `timeout` seconds."""
        if self._closed:
            raise BackendCrashed("run_tactic on a closed REPL session")
        problem = await check_tactic_text_async(tactic, max_bytes=self._env.policy.max_proof_bytes)
        if problem is not None:
            return TacticError(TacticErrorKind.UNSAFE, problem)
        path = self._path_of(state)
        child = (*path, tactic)
        crashes = 0
        while True:
            try:
                worker = await self._acquire()
            except WorkerGone:
                continue
            ids = self._ids_on(worker)
            try:
                proof_state = await self._materialise(worker, ids, path, state, timeout)
                reply = await worker.tactic(tactic, proof_state, timeout)
            except _ReplayFailed as failed:
                return failed.outcome
            except WorkerOutOfMemory as error:
                # The tactic grew the worker past the kill level; on a fresh one it would grow again.
                self._guests.pop(worker, None)
                self._lose_home(worker)
                return TacticError(TacticErrorKind.TIMEOUT, f"the tactic ran out of memory: {error.message}")
            except BackendTimeout:
                self._guests.pop(worker, None)
                return TacticError(TacticErrorKind.TIMEOUT, f"tactic timed out after {timeout:g} s")
            except BackendCrashed as error:
                crashes += 1
                self._guests.pop(worker, None)
                self._lose_home(worker)
                if crashes > self._config.crash_retries:
                    raise
                logger.warning("Lean REPL crashed on %s; retrying on a fresh worker: %s", self._theorem.name, error)
                continue
            finally:
                self._pool.release(worker)
            outcome = tactic_outcome(reply, handle=ReplStateHandle(self._id, child))
            if isinstance(outcome, Progress) and isinstance(reply, TacticReply) and self._current_ids(worker) is ids:
                ids[child] = reply.proof_state
            return outcome

    async def close(self) -> None:
        """Forget the session's states. The REPL keeps them until the worker is recycled. Safe twice."""
        self._closed = True
        self._ids.clear()
        self._guests.clear()
        self._home = None

    # -- internals ------------------------------------------------------------------------------

    def _path_of(self, state: ProofState) -> Path_:
        handle = state.handle
        if isinstance(handle, ReplStateHandle) and handle.session == self._id:
            return handle.path
        if handle is None and self._initial is not None and state == self._initial:
            return ()
        raise ValueError(f"run_tactic: the state is not one of this session's ({self._theorem.name})")

    async def _acquire(self) -> ReplProcess:
        """The home worker, or, while the home is busy, a worker of the header that is idle right now.

        Waits only for the home (its queue, first come first served); a worker that turns idle
        meanwhile is taken only through `try_acquire`, which leaves it to anyone waiting in the pool.
        """
        header = self._header
        while True:
            home = self._home
            usable = home is not None and home.alive and not home.retiring
            if home is None or not usable or not self._config.spread_tactics or not home.leased:
                return await self._acquire_home()
            guest = self._pool.try_acquire(header, prefer=self._guests)
            if guest is not None:
                return guest
            pinned = asyncio.ensure_future(self._pool.acquire(header, pinned=home))
            try:
                while not pinned.done():
                    signal = self._pool.idle_signal(header)
                    either: list[asyncio.Future[Any]] = [pinned, signal]
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    if pinned.done():
                        break
                    guest = self._pool.try_acquire(header, prefer=self._guests)
                    if guest is not None:
                        self._abandon(pinned)
                        return guest
            except BaseException:
                self._abandon(pinned)
                raise
            try:
                return pinned.result()
            except WorkerGone:
                self._lose_home(home)

    def _abandon(self, lease: asyncio.Future[ReplProcess]) -> None:
        """Give up a pending `acquire`: cancel it, or release the worker it already got."""
        if not lease.done():
            lease.cancel()  # the pool releases a worker handed over in the meantime
        elif not lease.cancelled() and lease.exception() is None:
            self._pool.release(lease.result())

    def _ids_on(self, worker: ReplProcess) -> dict[Path_, int]:
        """The map of this session's known proof state ids on `worker` (the home's or a guest's)."""
        if worker is self._home:
            return self._ids
        for gone in [w for w in self._guests if not w.alive or w.retiring or w is self._home]:
            del self._guests[gone]
        return self._guests.setdefault(worker, {})

    def _current_ids(self, worker: ReplProcess) -> dict[Path_, int] | None:
        return self._ids if worker is self._home else self._guests.get(worker)

    async def _acquire_home(self) -> ReplProcess:
        header = self._header
        while True:
            home = self._home
            if home is not None and home.alive and not home.retiring:
                try:
                    return await self._pool.acquire(header, pinned=home)
                except WorkerGone:
                    self._lose_home(home)
                    continue
            worker = await self._pool.acquire(header)
            current = self._home
            if current is not None and current is not worker and current.alive and not current.retiring:
                # Another call re-homed the session while this one waited; use that worker.
                self._pool.release(worker)
                continue
            if current is not worker:
                # A former guest keeps the states it already replayed.
                self._home = worker
                self._ids = self._guests.pop(worker, {}) if worker.alive and not worker.retiring else {}
            return worker

    def _lose_home(self, worker: ReplProcess) -> None:
        if self._home is worker:
            self._home = None
            self._ids = {}

    async def _materialise(
        self, worker: ReplProcess, ids: dict[Path_, int], path: Path_, state: ProofState, timeout: float
    ) -> int:
        """The proof state id of `path` on `worker` (whose known ids are `ids`), replaying the path if needed."""
        if path in ids:
            return ids[path]
        known = len(path)
        while known > 0 and path[:known] not in ids:
            known -= 1
        if known == 0 and () not in ids:
            try:
                proof_state, goal = await self._open_on(worker)
            except _OpeningRefused as refused:
                # It opened before, and Lean is deterministic: this worker is not the Lean that did.
                raise BackendCrashed(f"replaying {self._theorem.name}: {refused.message}") from None
            if self._initial is not None and ProofState.from_goals([goal]) != self._initial:
                raise BackendCrashed(f"replaying {self._theorem.name}: the statement now opens a different goal")
            ids[()] = proof_state
        current = ids[path[:known]]
        for index in range(known, len(path)):
            step = path[index]
            reply = await worker.tactic(step, current, timeout)
            outcome = tactic_outcome(reply)
            if not isinstance(outcome, Progress) or not isinstance(reply, TacticReply):
                logger.warning("replay of %s diverged at tactic %r: %s", self._theorem.name, step, outcome)
                raise _ReplayFailed(
                    TacticError(TacticErrorKind.LEAN_ERROR, f"replaying the path failed at {step!r}: {outcome}")
                )
            if index == len(path) - 1 and outcome.state != state:
                # Lean is deterministic, so this means the worker is not the Lean that made `state`.
                raise BackendCrashed(f"replaying {self._theorem.name} reached another state than recorded")
            current = reply.proof_state
            ids[path[: index + 1]] = current
        return current

    async def _open_on(self, worker: ReplProcess) -> tuple[int, str]:
        """Run the opening on `worker`: (proof state id, goal) of its sorry, or `_OpeningRefused`."""
        opening = self._opening
        reply = await worker.command(opening.command, env=worker.header_env, timeout=self._config.command_timeout_s)
        name = self._theorem.name
        what = "the statement" if opening.index < 0 else f"hole {opening.index} of the checked text"
        if isinstance(reply, ReplError):
            if reply.is_unknown_environment:
                raise BackendCrashed(f"the REPL lost the header environment opening {name}: {reply.message}")
            raise _OpeningRefused(f"the REPL refused {what} of {name}: {reply.message}")
        if reply.errors and opening.index < 0:
            text = "; ".join(m.text for m in reply.errors)
            raise _OpeningRefused(f"{what} of {name} does not elaborate: {text[:2000]}")
        if not reply.sorries:
            raise _OpeningRefused(f"{what} of {name} opened no proof state (no `sorry` reported)")
        if opening.index >= len(reply.sorries):
            raise _OpeningRefused(f"{what} of {name}: Lean reported only {len(reply.sorries)} sorries")
        chosen = reply.sorries[opening.index]
        if opening.goal is not None and ProofState.from_goals([chosen.goal]) != ProofState.from_goals([opening.goal]):
            raise _OpeningRefused(f"{what} of {name} now shows another goal than the checked one")
        return chosen.proof_state, chosen.goal


class _Shift:
    """Moves REPL positions of a command (the text after `header`) to positions in the whole text."""

    def __init__(self, header: str) -> None:
        self.lines = header.count("\n")
        # A header that does not end at a line break leaves the body's first line indented by its last line.
        self.first_column = len(header) - (header.rfind("\n") + 1)

    def position(self, line: int, column: int) -> Position:
        if line <= 0:
            return Position(0, 0)
        return Position(line + self.lines, column + (self.first_column if line == 1 else 0))

    def message(self, message: LeanMessage) -> LeanMessage:
        where = self.position(message.line, message.column)
        return LeanMessage(message.severity, message.text, line=where.line, column=where.column)

    def hole(self, index: int, sorry: ReplSorry, header: str, body: str) -> Hole:
        handle = ReplHoleHandle(header=header, command=body, index=index)
        return Hole(
            index=index,
            goal=sorry.goal,
            state=ProofState.from_goals([sorry.goal], handle=handle),
            start=self.position(sorry.line, sorry.column),
            end=self.position(sorry.end_line, sorry.end_column),
        )


class ReplLeanEnv:
    """The REPL backend: a `LeanEnv` over a `ReplPool` (the default backend of the search).

    Safe to build outside an event loop; processes start on first use. Hundreds of sessions may
    be open at once; they share the pool's workers.
    """

    def __init__(
        self, config: ReplConfig, *, pool: ReplPool | None = None, policy: SourcePolicy = DEFAULT_POLICY
    ) -> None:
        self.config = config
        self.pool = pool if pool is not None else ReplPool(config)
        self.policy = policy
        """What a problem's header, statement and proofs may contain and how large they may be; applied
        before anything reaches a worker (`lean_env.source_policy`). An operator's setting, never a request's."""

    @property
    def syntax(self) -> LeanSyntax:
        """Lean 4's syntax rules (`lean_env.lean_syntax.LEAN`)."""
        return LEAN

    async def start(self, problem: Problem, *, hole: Hole | None = None) -> ReplSession | InvalidStatement:
        """Open `problem`'s statement, or, with `hole`, a hole `check` reported (of a text about `problem`).

        Returns `InvalidStatement` (with Lean's message, or the guard's reason) when the statement
        is refused, does not elaborate, or opens no proof state; a hole that no longer opens the
        same goal is one too. Raises `LeanEnvError` when the backend fails: a header that does not
        elaborate (`BackendStartError`), crashes, a full pool. `HoleUnavailable` when `hole` does
        not come from this backend's `check`.
        """
        # Sizes, the header policy and the statement guard, before any worker elaborates the header.
        policy_problem = enforce_policy(problem, self.policy)
        if policy_problem is not None:
            return InvalidStatement(problem.name, f"the problem {problem.name} was refused: {policy_problem}")
        if hole is None:
            session = ReplSession(self, problem)
        else:
            handle = hole.state.handle
            if not isinstance(handle, ReplHoleHandle):
                raise HoleUnavailable(
                    f"hole {hole.index} of {problem.name} does not come from the REPL backend's `check`; "
                    "check the text with this backend first"
                )
            opening = _Opening(handle.header, handle.command, handle.index, goal=hole.goal)
            session = ReplSession(self, problem, opening)
        try:
            await session.open()
        except _OpeningRefused as refused:
            return InvalidStatement(problem.name, refused.message)
        return session

    async def check(self, text: str, timeout: float, *, header: str | None = None) -> CheckResult:
        """Elaborate `text` and report Lean's messages and every `sorry` as a `Hole`, in order.

        The header (`header`, which must be a prefix of `text`, or when None the leading `import`
        lines) is elaborated once per worker and shared; the rest runs as one command on it.
        Positions (messages and holes) refer to `text` itself. Each hole's state can open a
        session (`start(problem, hole=...)`). Running past `timeout` gives an error message in the
        result (the worker is replaced); a crash is retried, then raises `BackendCrashed`.
        """
        if header is None:
            header, body = split_header(text)
        elif not text.startswith(header):
            raise ValueError("ReplLeanEnv.check: `header` must be the beginning of `text`")
        else:
            body = text[len(header) :]
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The header goes through the policy and the rest through the guard (holes allowed): `check` runs
        # text a model or a user wrote, so it must not reach Lean with commands or code in it either.
        policy_problem = (
            check_header(header, self.policy)  # its size first, then its commands
            or await check_text_async(check_sketch_text, body, max_bytes=self.policy.max_proof_bytes)
        )
        if policy_problem is not None:
            message = LeanMessage(Severity.ERROR, f"the text was refused before Lean: {policy_problem}")
            return CheckResult(text, (message,), (), seconds=0.0)
        shift = _Shift(header)
        crashes = 0
        while True:
            worker = await self.pool.acquire(header)
            try:
                reply = await worker.command(body, env=worker.header_env, timeout=timeout)
                break
            except BackendTimeout:
                message = LeanMessage(Severity.ERROR, f"Lean did not finish checking the text within {timeout:g} s")
                return CheckResult(text, (message,), (), seconds=loop.time() - started)
            except BackendCrashed as error:
                crashes += 1
                if crashes > self.config.crash_retries:
                    raise
                logger.warning("Lean REPL crashed checking a text; retrying: %s", error)
            finally:
                self.pool.release(worker)
        seconds = loop.time() - started
        if isinstance(reply, ReplError):
            if reply.is_unknown_environment:
                raise BackendCrashed(f"the REPL lost the header environment: {reply.message}")
            refused = LeanMessage(Severity.ERROR, reply.message)
            return CheckResult(text, (refused,), (), seconds=seconds)
        messages = tuple(shift.message(m) for m in reply.messages)
        holes = tuple(shift.hole(index, sorry, header, body) for index, sorry in enumerate(reply.sorries))
        return CheckResult(text, messages, holes, seconds=seconds)

    async def verify(self, theorem: Problem, proof: str, timeout: float) -> VerifyResult:
        """Re-check `LEAN.proof_file(theorem, proof)` in a fresh worker, hardened as the module docstring says.

        Never raises for a bad proof (a timeout is `VerifyStatus.TIMEOUT`, output that is not the
        replies to our requests `VerifyStatus.REPLY_MISMATCH`); raises `BackendCrashed` when
        `config.crash_retries + 1` workers crashed on it (exited without answering).
        """
        refused = enforce_policy(theorem, self.policy) or await check_proof_text_async(
            proof, max_bytes=self.policy.max_proof_bytes
        )
        if refused is not None:
            return VerifyResult(
                VerifyStatus.GUARD_REJECTED, reason=refused, checked_text=LEAN.proof_file(theorem, proof)
            )
        # The guard has just passed the proof (the judge re-reads it from the checked text as well).
        return await self.check_proof(theorem, proof, timeout)

    async def check_proof(self, theorem: Problem, proof: str, timeout: float) -> VerifyResult:
        """The Lean-side layers of `verify` alone, without the text guard in front of them.

        For tests that show which layer stops an attack the guard would also stop; a caller that wants
        a verdict calls `verify`. The judge still applies the guard to the proof it finds in the text.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        text = LEAN.proof_file(theorem, proof)
        body = text[len(theorem.header) :] if text.startswith(theorem.header) else text
        crashes = 0
        while True:
            worker = await self.pool.acquire_fresh(theorem.header)
            try:
                return await self._check_on(worker, theorem, text, body, timeout, started)
            except BackendCrashed as error:
                crashes += 1
                if crashes > self.config.crash_retries:
                    raise
                logger.warning("Lean REPL crashed verifying %s; retrying: %s", theorem.name, error)
            finally:
                self.pool.discard(worker)

    async def _check_on(
        self, worker: ReplProcess, theorem: Problem, text: str, body: str, timeout: float, started: float
    ) -> VerifyResult:
        loop = asyncio.get_running_loop()

        def rejection(status: VerifyStatus, reason: str) -> VerifyResult:
            return VerifyResult(status, reason=reason, checked_text=text, seconds=loop.time() - started)

        deadline = started + timeout
        expected_env = 0 if worker.header_env is None else worker.header_env + 1
        probe: Probe | None = None
        try:
            first = await worker.command(body, env=worker.header_env, timeout=max(deadline - loop.time(), 0.001))
            if isinstance(first, ReplError):
                return rejection(VerifyStatus.BACKEND_ERROR, f"the REPL refused the check: {first.message}")
            if first.env != expected_env:
                return rejection(
                    VerifyStatus.REPLY_MISMATCH,
                    f"the reply to the proof names environment {first.env}, not {expected_env}: not Lean's reply",
                )
            # Drawn only now, after the proof's reply was read: nothing written before can name it.
            probe = make_probe(theorem)
            second = await worker.command(
                probe.command, env=first.env, timeout=max(deadline - loop.time(), self.config.command_timeout_s)
            )
        except BackendTimeout:
            return rejection(VerifyStatus.TIMEOUT, f"Lean did not finish checking the proof within {timeout:g} s")
        except BackendCrashed as error:
            if worker.death == "protocol":
                # Bytes that are not a reply, or a reply of the wrong kind: written by the proof, not by the REPL.
                return rejection(VerifyStatus.REPLY_MISMATCH, f"the worker wrote output that is not a reply: {error}")
            raise
        if isinstance(second, ReplError):
            return rejection(
                VerifyStatus.REPLY_MISMATCH, f"the probe was refused ({second.message}): the proof's reply was forged"
            )
        if second.env != first.env + 1:
            return rejection(
                VerifyStatus.REPLY_MISMATCH,
                f"the reply to the probe names environment {second.env}, not {first.env + 1}: replies out of step",
            )
        arguments = (theorem, text, first.messages, probe, second.messages, loop.time() - started)
        # The judge re-reads the proof with the guard: off the event loop when the proof is large.
        verdict = (
            await asyncio.to_thread(judge_probe, *arguments)
            if len(text) > ASYNC_THRESHOLD_CHARS
            else judge_probe(*arguments)
        )
        if verdict.status is VerifyStatus.REPLY_MISMATCH:
            return verdict
        try:
            closing = await worker.command(
                f"-- end of check {probe.nonce}", env=second.env, timeout=self.config.command_timeout_s
            )
        except BackendTimeout:
            return rejection(VerifyStatus.REPLY_MISMATCH, "the worker did not answer the closing sentinel")
        except BackendCrashed as error:
            if worker.death == "protocol":
                return rejection(VerifyStatus.REPLY_MISMATCH, f"the worker wrote output that is not a reply: {error}")
            raise
        if not isinstance(closing, CommandReply) or closing.env != second.env + 1 or closing.messages:
            # Honest Lean answers a comment with nothing but the next env; this is output written by the proof.
            return rejection(
                VerifyStatus.REPLY_MISMATCH,
                f"the reply to the closing sentinel is not the next empty reply: {str(closing)[:200]}",
            )
        return verdict

    async def warm_up(self, header: str, workers: int | None = None) -> None:
        """Start workers for `header` ahead of the first search (and, in the background, verification spares)."""
        await self.pool.warm_up(header, workers)
        self.pool.prepare_fresh(header)

    def stats(self) -> PoolStats:
        return self.pool.stats()

    async def close(self) -> None:
        """Stop every REPL process. Safe to call twice."""
        await self.pool.close()

"""A stand-in for Isabelle's server speaking its exact wire protocol, with verdicts scripted per theory text.

Protocol (as `isabelle server`): TCP; the first line is the password (wrong: the connection is closed
without a word; right: `OK {"isabelle_id": ..., "isabelle_name": ...}`); messages are `name json` lines or
long messages (a decimal byte-length line, then that many bytes, the length counting the final newline),
read in both forms and written long when over 100 bytes or holding a newline. Commands: `help`, `echo`,
`cancel`, `shutdown`, `purge_theories` (synchronous, `OK`/`ERROR`) and `session_start`, `session_stop`,
`use_theories` (asynchronous: `OK {"task": id}`, `NOTE`s, then `FINISHED`/`FAILED`, every body carrying
`"task"`). An unknown command gets `ERROR "Bad command 'x'"`, a bad argument `ERROR {"kind": "error",
"message": "Malformed argument for command 'x'"}`. Tasks belong to their connection: `cancel` from
another connection does nothing, closing a connection cancels its tasks, and a cancelled task ends
`FAILED {"kind": "error", "message": "Interrupt", "task": id}`. Sessions are server-wide.

`use_theories` reads each theory file `<master_dir>/<Name>.thy` from disk like Isabelle (theory text never
travels over the wire), refuses a header whose name is not the file's, and decides a verdict:

Scripting API (`Script`, or the same as JSON: `Script.from_json(path_or_dict)`):
- `rules: list[Rule]`, tried first, in order. `Rule(contains, outcome="error", error="...", delay_s=0.0)`:
  a theory whose text contains `contains` gets `outcome` after `delay_s` seconds. Outcomes: `ok`,
  `error` (ok false, `error` as the message), `unfinished` (ok true but the node not consolidated, as
  with Isabelle's watchdog), `hang` (the task never finishes until cancelled), `drop` (the server
  closes the connection mid-task).
- `problems: list[ProblemScript]`, the default rule: a theory belongs to the first problem whose
  `marker` (e.g. the lemma's name) it contains. Its proof steps are read from the text with comments
  and strings masked: every `by M` / `apply M` (M up to the end of the line, whitespace collapsed;
  `by (simp)` and `by simp` stay different texts, as the model wrote them), each paired with its
  claim: the last `"..."` string or cartouche before it, since the previous step (`""` when none).
  `ProblemScript(marker, steps=[Step(method, claim=None)], sledgehammer={claim: method})`: the theory
  is ok when every step matches an allowed `Step` (same method, and the same claim unless the Step's
  claim is None). The first step that does not gets `Failed to apply initial proof method` at its line.
  A `sledgehammer` command is an error ("Failed to finish proof") that first sends a writeln message
  `Try this: by M (0.1 ms)` when `sledgehammer` has an entry for its claim. `sorry` and `oops` are
  accepted, as in Isabelle's interactive mode, so the client has to refuse them itself.
- `unknown: "ok" | "error"` (default "ok"): the verdict for a theory that matches no rule and no problem.
- `latency: Latency(startup_s, session_start_s, per_step_s, sledgehammer_s, base_s)`: delays for
  benchmarks (server start-up, each `session_start`, each proof step, each `sledgehammer`, each theory).
- `verdict: Callable[[str], Verdict | None]` (Python only): asked before everything else; returning
  `Verdict(outcome, errors=(...), messages=(...), delay_s)` decides, None falls through.
- `sessions: list[str] | None`: the session names `session_start` accepts (None: any).

In process: `async with IsabelleStandIn(script) as server:` then `server.host`, `server.port`,
`server.password`, `server.info_line`. Counters for tests: `server.sessions_started`, `server.checked`
(theory names in order), `server.purged`, `server.cancelled` (task ids), `server.loaded` (per session id,
the theories currently loaded), `server.max_running` (most use_theories tasks at once), `server.connections`.

As a subprocess: `python -m tests.stand_ins.isabelle_server [server] [-n NAME] [-p PORT] [--script FILE]
[--password PW]` prints `server "NAME" = 127.0.0.1:PORT (password "UUID")` like `isabelle server` and serves
until `shutdown`; `ISABELLE_STAND_IN_SCRIPT` names the script when `--script` is absent (so a fake
`isabelle` executable can wrap it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lean_env.isabelle.checker import mask_isabelle
from lean_env.isabelle.protocol import format_reply, read_message, split_message

Outcome = Literal["ok", "error", "unfinished", "hang", "drop"]


@dataclass(frozen=True)
class Rule:
    """A theory whose text contains `contains` gets `outcome` (with `error` as its message) after `delay_s`."""

    contains: str
    outcome: Outcome = "error"
    error: str = "scripted error"
    delay_s: float = 0.0


@dataclass(frozen=True)
class Step:
    """An allowed proof step: `method` (the text after `by`/`apply`) closes `claim` (None: any claim)."""

    method: str
    claim: str | None = None


@dataclass(frozen=True)
class ProblemScript:
    """The facts of one problem: a theory containing `marker` is ok iff each of its steps is allowed."""

    marker: str
    steps: list[Step] = field(default_factory=list)
    sledgehammer: dict[str, str] = field(default_factory=dict)
    """claim -> the method sledgehammer suggests for it."""


@dataclass(frozen=True)
class Latency:
    """Delays, in seconds, for benchmarks."""

    startup_s: float = 0.0
    session_start_s: float = 0.0
    per_step_s: float = 0.0
    sledgehammer_s: float = 0.0
    base_s: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """What `use_theories` reports for one theory."""

    outcome: Outcome = "ok"
    errors: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    delay_s: float = 0.0
    line: int = 0


@dataclass
class Script:
    """Everything the stand-in decides by; see the module docstring."""

    rules: list[Rule] = field(default_factory=list)
    problems: list[ProblemScript] = field(default_factory=list)
    unknown: Literal["ok", "error"] = "ok"
    latency: Latency = field(default_factory=Latency)
    verdict: Callable[[str], Verdict | None] | None = None
    sessions: list[str] | None = None

    @classmethod
    def from_json(cls, source: str | Path | dict[str, Any]) -> Script:
        """A script from a dict or a JSON file of the same shape as the dataclasses (no `verdict`)."""
        data = source if isinstance(source, dict) else json.loads(Path(source).read_text(encoding="utf-8"))
        return cls(
            rules=[Rule(**rule) for rule in data.get("rules", [])],
            problems=[
                ProblemScript(
                    problem["marker"],
                    [Step(**step) for step in problem.get("steps", [])],
                    dict(problem.get("sledgehammer", {})),
                )
                for problem in data.get("problems", [])
            ],
            unknown=data.get("unknown", "ok"),
            latency=Latency(**data.get("latency", {})),
            sessions=data.get("sessions"),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form `from_json` reads (without `verdict`)."""
        return {
            "rules": [vars(rule) for rule in self.rules],
            "problems": [
                {"marker": p.marker, "steps": [vars(s) for s in p.steps], "sledgehammer": p.sledgehammer}
                for p in self.problems
            ],
            "unknown": self.unknown,
            "latency": vars(self.latency),
            "sessions": self.sessions,
        }


_STEP = re.compile(r"(?<![\w'])(by|apply|sledgehammer)(?![\w'])([^\n]*)")
_CLAIM = re.compile(r"\"(?:[^\"\\]|\\.)*\"|\\<open>.*?\\<close>|‹.*?›", re.S)


def proof_steps(text: str) -> list[tuple[str, str, int]]:
    """(claim, method, line) for every `by`/`apply`/`sledgehammer` step of a theory, as the module docstring says.
    A `sledgehammer` step has method `sledgehammer`."""
    masked = mask_isabelle(text)
    steps: list[tuple[str, str, int]] = []
    previous_end = 0
    for match in _STEP.finditer(masked):
        claims = _CLAIM.findall(text[previous_end : match.start()])
        claim = claims[-1] if claims else ""
        if claim.startswith('"'):
            claim = claim[1:-1]
        elif claim.startswith("\\<open>"):
            claim = claim[len("\\<open>") : -len("\\<close>")]
        elif claim.startswith("‹"):
            claim = claim[1:-1]
        if match[1] == "sledgehammer":
            method, end = "sledgehammer", match.end(1)
        else:
            end = match.end()
            method = " ".join(re.sub(r"\(\*.*?\*\)", " ", text[match.start(2) : end]).split())
            for stop in (" done", " qed"):  # `by simp qed` style one-liners: keep only the method
                if method.endswith(stop):
                    method = method[: -len(stop)]
        steps.append((" ".join(claim.split()), method, text.count("\n", 0, match.start()) + 1))
        previous_end = end
    return steps


def decide(script: Script, text: str) -> Verdict:
    """The verdict the script gives a theory text."""
    if script.verdict is not None and (custom := script.verdict(text)) is not None:
        return custom
    for rule in script.rules:
        if rule.contains in text:
            errors = (rule.error,) if rule.outcome == "error" else ()
            return Verdict(rule.outcome, errors, delay_s=rule.delay_s)
    latency = script.latency
    problem = next((p for p in script.problems if p.marker in text), None)
    if problem is None:
        if script.unknown == "ok":
            return Verdict("ok", delay_s=latency.base_s)
        return Verdict("error", ("no scripted problem matches this theory",), delay_s=latency.base_s)
    steps = proof_steps(text)
    delay = latency.base_s
    messages: list[str] = []
    for claim, method, line in steps:
        if method == "sledgehammer":
            delay += latency.sledgehammer_s
            found = problem.sledgehammer.get(claim)
            if found is not None:
                messages.append(f"Try this: {found if found.startswith('by') else 'by ' + found} (0.1 ms)")
            else:
                messages.append("Sledgehammering...\nNo proof found")
            return Verdict("error", ("Failed to finish proof",), tuple(messages), delay, line)
        delay += latency.per_step_s
        allowed = any(s.method == method and (s.claim is None or s.claim == claim) for s in problem.steps)
        if not allowed:
            return Verdict(
                "error", (f"Failed to apply initial proof method (line {line})",), tuple(messages), delay, line
            )
    return Verdict("ok", (), tuple(messages), delay)


_HEADER = re.compile(r"(?<![\w'.])theory\s+(\"[^\"]*\"|[A-Za-z][\w'.]*)")


@dataclass
class _Task:
    ident: str
    connection: _Connection
    job: asyncio.Task[None] | None = None


class _Connection:
    def __init__(self, server: IsabelleStandIn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.tasks: dict[str, _Task] = {}

    def send(self, kind: str, body: Any = None) -> None:
        if not self.writer.is_closing():
            self.writer.write(format_reply(kind, body))

    def drop(self) -> None:
        self.writer.transport.abort()


class IsabelleStandIn:
    """The stand-in server (see the module docstring). `await start()` / `await close()`, or `async with`."""

    def __init__(
        self, script: Script | None = None, *, password: str | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.script = script or Script()
        self.password = password or str(uuid.uuid4())
        self.host = host
        self.port = port
        self.name = "stand_in"
        self.sessions_started = 0
        self.sessions: dict[str, str] = {}
        """session id -> logic name."""
        self.loaded: dict[str, set[str]] = {}
        self.checked: list[str] = []
        self.purged: list[str] = []
        self.cancelled: list[str] = []
        self.connections = 0
        self.running = 0
        self.max_running = 0
        self._server: asyncio.Server | None = None
        self._open: set[_Connection] = set()
        self.stopped = asyncio.Event()

    @property
    def info_line(self) -> str:
        """The line `isabelle server` prints for this server."""
        return f'server "{self.name}" = {self.host}:{self.port} (password "{self.password}")'

    async def start(self) -> IsabelleStandIn:
        await asyncio.sleep(self.script.latency.startup_s)
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._open):
                connection.drop()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        self.stopped.set()

    async def __aenter__(self) -> IsabelleStandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def drop_all_connections(self) -> None:
        """Abort every open connection (what a crashed server looks like to its clients)."""
        for connection in list(self._open):
            connection.drop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        self._open.add(connection)
        self.connections += 1
        try:
            line = await reader.readline()
            if line.rstrip(b"\r\n").decode("utf-8", "replace") != self.password:
                return  # Isabelle closes silently on a wrong password
            connection.send("OK", {"isabelle_id": "stand-in", "isabelle_name": "Isabelle2025"})
            while True:
                text = await read_message(reader)
                if text is None:
                    return
                await self._command(connection, text)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except (ConnectionError, ValueError):
            return
        finally:
            for task in list(connection.tasks.values()):  # closing a connection cancels its tasks
                if task.job is not None:
                    task.job.cancel()
            self._open.discard(connection)
            writer.close()

    async def _command(self, connection: _Connection, text: str) -> None:
        name, argument = split_message(text)
        handlers: dict[str, Callable[[_Connection, Any], Any]] = {
            "help": lambda c, a: c.send("OK", sorted(handlers)),
            "echo": lambda c, a: c.send("OK", a),
            "cancel": self._cancel,
            "shutdown": self._shutdown,
            "purge_theories": self._purge,
            "session_start": self._async(self._session_start),
            "session_stop": self._async(self._session_stop),
            "use_theories": self._async(self._use_theories),
        }
        if name not in handlers:
            connection.send("ERROR", f"Bad command '{name}'")
            return
        try:
            parsed = json.loads(argument) if argument else None
        except json.JSONDecodeError:
            connection.send("ERROR", {"kind": "error", "message": f"Malformed argument for command '{name}'"})
            return
        handlers[name](connection, parsed)

    def _async(self, body: Callable[[_Task, Any], Any]) -> Callable[[_Connection, Any], None]:
        def start(connection: _Connection, args: Any) -> None:
            ident = str(uuid.uuid4())
            task = _Task(ident, connection)
            connection.tasks[ident] = task
            connection.send("OK", {"task": ident})

            async def run() -> None:
                try:
                    result = await body(task, args or {})
                    if result is not None:
                        ok, payload = result
                        connection.send("FINISHED" if ok else "FAILED", {"task": ident, **payload})
                except asyncio.CancelledError:
                    self.cancelled.append(ident)
                    connection.send("FAILED", {"task": ident, "kind": "error", "message": "Interrupt", "pos": {}})
                except _Dropped:
                    connection.drop()
                finally:
                    connection.tasks.pop(ident, None)

            task.job = asyncio.get_running_loop().create_task(run())

        return start

    def _cancel(self, connection: _Connection, args: Any) -> None:
        ident = args.get("task") if isinstance(args, dict) else None
        task = connection.tasks.get(str(ident))
        if task is not None and task.job is not None:  # another connection's task is not ours to cancel
            task.job.cancel()
        connection.send("OK")

    def _shutdown(self, connection: _Connection, args: Any) -> None:
        connection.send("OK")
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.close()))

    def _purge(self, connection: _Connection, args: Any) -> None:
        if not isinstance(args, dict) or args.get("session_id") not in self.sessions:
            connection.send("ERROR", {"kind": "error", "message": f"No session {args!r}"})
            return
        loaded = self.loaded[args["session_id"]]
        names = loaded.copy() if args.get("all") else {str(t) for t in args.get("theories", [])} & loaded
        loaded -= names
        self.purged.extend(sorted(names))
        node = lambda n: {"node_name": str(Path(args.get("master_dir", "")) / f"{n}.thy"), "theory_name": f"Draft.{n}"}  # noqa: E731
        connection.send(
            "OK", {"purged": [node(n) for n in sorted(names)], "retained": [node(n) for n in sorted(loaded)]}
        )

    async def _session_start(self, task: _Task, args: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        session = str(args.get("session", ""))
        await asyncio.sleep(self.script.latency.session_start_s)
        if self.script.sessions is not None and session not in self.script.sessions:
            return False, {"kind": "error", "message": f"Bad session '{session}'"}
        ident = str(uuid.uuid4())
        self.sessions[ident] = session
        self.loaded[ident] = set()
        self.sessions_started += 1
        return True, {"session_id": ident, "tmp_dir": f"/tmp/stand-in/{ident}"}

    async def _session_stop(self, task: _Task, args: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        ident = str(args.get("session_id"))
        if self.sessions.pop(ident, None) is None:
            return False, {"kind": "error", "message": f"No session {ident}"}
        self.loaded.pop(ident, None)
        return True, {"ok": True, "return_code": 0}

    async def _use_theories(self, task: _Task, args: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        session = str(args.get("session_id"))
        if session not in self.sessions:
            return False, {"kind": "error", "message": f"No session {session}"}
        master = Path(str(args.get("master_dir", ".")))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            nodes, errors, all_ok = [], [], True
            for theory in args.get("theories", []):
                name = str(theory)
                self.checked.append(name)
                path = master / f"{name}.thy"
                try:
                    text = path.read_text(encoding="utf-8")
                except OSError:
                    message = {"kind": "error", "message": f"No such file: {path}", "pos": {}}
                    errors.append(message)
                    all_ok = False
                    continue
                keyword = re.search(r"(?<![\w'.])theory\s+", mask_isabelle(text))
                header = _HEADER.match(text, keyword.start()) if keyword else None
                verdict = decide(self.script, text)
                if header is None or header[1].strip('"') != name:
                    verdict = Verdict("error", (f"Bad theory name for file {path}: {header[1] if header else '?'}",))
                task.connection.send(
                    "NOTE", {"task": task.ident, "kind": "writeln", "message": f"theory Draft.{name} 0%"}
                )
                self.loaded[session].add(name)  # the node exists from here on, finished or not
                await asyncio.sleep(verdict.delay_s)
                if verdict.outcome == "hang":
                    await asyncio.Event().wait()  # until cancelled
                if verdict.outcome == "drop":
                    raise _Dropped
                messages = [{"kind": "writeln", "message": m, "pos": {"line": verdict.line}} for m in verdict.messages]
                node_errors = [{"kind": "error", "message": e, "pos": {"line": verdict.line}} for e in verdict.errors]
                errors.extend(node_errors)
                failed = verdict.outcome == "error"
                consolidated = verdict.outcome != "unfinished"
                all_ok = all_ok and not failed
                status = {
                    "ok": not failed,
                    "total": 1,
                    "unprocessed": 0,
                    "running": 0 if consolidated else 1,
                    "warned": 0,
                    "failed": 1 if failed else 0,
                    "finished": 0 if failed or not consolidated else 1,
                    "canceled": 0,
                    "consolidated": consolidated,
                    "percentage": 100 if consolidated else 50,
                }
                nodes.append(
                    {
                        "node_name": str(path),
                        "theory_name": f"Draft.{name}",
                        "status": status,
                        "messages": messages + node_errors,
                    }
                )
                task.connection.send(
                    "NOTE", {"task": task.ident, "kind": "writeln", "message": f"theory Draft.{name} 100%"}
                )
            return True, {"ok": all_ok, "errors": errors, "nodes": nodes}
        finally:
            self.running -= 1


class _Dropped(Exception):
    pass


async def _serve(args: argparse.Namespace) -> None:
    source = args.script or os.environ.get("ISABELLE_STAND_IN_SCRIPT")
    script = Script.from_json(source) if source else Script()
    server = IsabelleStandIn(script, password=args.password, port=args.port)
    server.name = args.name
    await server.start()
    print(server.info_line, flush=True)
    await server.stopped.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Isabelle server stand-in")
    parser.add_argument("command", nargs="?", default="server")
    parser.add_argument("-n", "--name", default="isabelle")
    parser.add_argument("-p", "--port", type=int, default=0)
    parser.add_argument("--script", default=None)
    parser.add_argument("--password", default=None)
    args, _unknown = parser.parse_known_args(argv)
    if args.command != "server":
        print(f"stand-in supports only `server`, not {args.command!r}", file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()

"""A stand-in for leanprover-community/repl that speaks its exact wire format.

Run it as `python -S prover/demo/fake_repl.py [options]`. It uses only the standard library and
none of our code, so the client is tested against an independent implementation of the protocol.
It ships in the package for `prover demo`; `tests/stand_ins/fake_repl.py` is a link to this file.

Wire format (as the real REPL): a request is lines up to a blank line, joined with their line
breaks dropped, parsed as JSON; an empty request or end of input ends the process. A reply is
the JSON value laid out the way Lean's `Json.pretty` (width 80) lays it out (object keys in
reverse order, groups flattened when they fit, nested one column per bracket), followed by a
blank line.

Modes
-----
`--transcript NAME|PATH` replays a real REPL session: NAME is looked up in
`--transcript-dir` (default `../shared/data/lean-repl-transcripts` next to the repository), PATH
may name `X.in`, `X.expected.out` or `X`. Request i is answered with recorded reply i byte for
byte; a request that differs from the recorded one is answered with a `message` reply.

`--script FILE` runs a small "Lean" driven by a JSON script:

    {
      "unscripted": "trap",                  # how a tactic missing from the script fails:
                                             # "trap" (error message + `Incomplete: contains sorry`)
                                             # or "lean_error" (`{"message": "Lean error:\\n..."}`)
      "theorems": [
        {
          "name": "t1",                      # the declaration name
          "statement": "theorem t1 (p : Prop) (hp : p) : p := by",
          "goal": "p : Prop\\nhp : p\\n⊢ p",    # the goal of `statement sorry`
          "axioms": ["propext", "Classical.choice", "Quot.sound"],   # optional, for `#print axioms`
          "states": {                        # state text (goals joined by a blank line) -> tactics
            "p : Prop\\nhp : p\\n⊢ p": {
              "exact hp": {"goals": []},                 # closes the goal (`Completed`)
              "intro h": "p : Prop\\nhp : p\\n⊢ p",         # a string: the new state's text
              "apply foo": {"goals": ["⊢ a", "⊢ b"]},    # open goals remain
              "exact bad": {"error": "Unknown identifier `bad`"},   # the trap reply
              "exact? ": {"lean_error": "`exact?` could not close the goal."},
              "have : 1 = 1 := sorry": {"sorry": true},  # `Incomplete: contains sorry`, no error
              "rw [self]": {"kernel_error": "declaration has free variables"},  # `Error: kernel ...`
              "refine ?_": {"metavariables": true},      # `Incomplete: contains metavariable(s)`
              "native_decide": {"goals": [], "axioms": ["Lean.ofReduceBool"]}  # extra axioms
            }
          }
        }
      ]
    }

Commands: a command made only of header lines (`import`, `open`, `set_option`, ...) returns a
new environment. `STATEMENT sorry` (or `:= sorry`) returns the `sorry`'s proof state and Lean's
"declaration uses `sorry`" warning. In a tactic block, a `sorry` line (or `· sorry`) closes the
main goal and reports it as a sorry with its own proof state, goal, `pos` and `endPos`, so a text
with several holes reports each (in text order, across the command's declarations); `· TACTIC`
runs TACTIC on the main goal alone and must close it. `STATEMENT\\n  tac1\\n  tac2` replays the tactics through the
script (a tactic block indented like `search.render_proof` writes it) and reports an error for a
failing step or unsolved goals, the `sorry` warning, and for `#print axioms NAME` an info message
in Lean's wording: "'NAME' depends on axioms: [propext, Classical.choice, Quot.sound]" or
"'NAME' does not depend on any axioms" (a proof with errors depends on `sorryAx`). A command
naming an unknown environment gets `Unknown environment.`, a tactic on an unknown proof state
`Unknown proof state.`.

Failure modes (flags of the scripted mode; TACTIC matches the tactic text exactly, in tactic
mode and inside checked files): `--trap-on TACTIC` answers with the trap reply;
`--unknown-state-on TACTIC` answers `Unknown proof state.`; `--crash-on TACTIC` and
`--crash-at-request N` write half a reply, then exit 1 with a panic on stderr; `--crash-once FILE`
limits `--crash-at-request` to the first process that gets there (a transient crash; FILE marks
that it happened); `--hang-on TACTIC` never answers; `--runaway-on TACTIC` allocates memory until
the address-space limit kills it (capped by `--runaway-cap-mb` when there is no limit, then it
hangs); `--alloc-on TACTIC=MB` writes MB of memory (resident) and keeps it before answering;
`--reserve-on TACTIC=MB` maps MB of address space without touching it (as Lean's memory-mapped
`.olean` files do: address space, not resident memory; fails, with `MemoryError` on stderr, under an
address-space limit below it); `--slow-on TACTIC=SECONDS` sleeps that long before answering (after
`--alloc-on`); `--grow-mb-per-request MB` keeps MB more resident memory per request; `--latency-ms MS`
sleeps before every reply; `--header-error TEXT` makes header commands fail. In both modes:
`--exit-at-start CODE` exits before reading anything; `--stderr-banner TEXT` writes TEXT to stderr.

Environments remember what their commands declared, as Lean's do: a command on env N sees the
theorems (and their axioms) of N's commands, so `#print axioms t` works in a later command. Besides
the scripted theorems, commands may hold the lines of the verifier's probe, each on one line:
`axiom A SIGNATURE` (A depends on itself; its type is SIGNATURE), `theorem C : True := A` (C has
A's axioms), `theorem X : type_of% @A := @B` (an error "type mismatch" unless A's signature and B's,
whitespace collapsed, are the same; X has B's axioms) and `#print axioms X` on any of them.

Attacks that need Lean's cooperation (scripted mode; a tactic changes no goal, like `skip`, and its
text is checked by substring, so `decide (config := forge_reply)` triggers it in a proof, modelling a
`(config := ...)` term whose evaluation opens `/dev/stdout`):
- `forge_reply`: while the command (or tactic) elaborates, writes a complete forged reply to stdout
  before the real one: for a command `{"env": <the env number this command will get>, "messages":
  [info "'NAME' does not depend on any axioms"]}` for every theorem the command declares, for a
  tactic `Completed` with no goals. The real reply follows.
- `forge_probe`: a forger that knows the verifier's probe: a clean forged reply without messages,
  then a second one guessing the probe's answer (env + 1, `#print axioms` answers for made-up
  canary and alias names, since the real ones are drawn later).
- `forge_garbage`: writes `forged output` and a blank line (not JSON) before the real reply.
- `forge_late`: writes a forged reply after the real reply to the next request, not before (a
  background task the proof left running, writing late).
A header command with a line `macro_rules ... #print axioms ...` makes every `#print axioms` of that
environment and those built on it answer "'X' does not depend on any axioms" whatever X depends on
(a header that rewrites the command).

Helpers for tests: `ScriptTheorem`, `linear_theorem` (a theorem proved by a list of tactics),
`write_script`, `generator_table` (candidates for `ScriptedGenerator`) and `stand_in_command`
(the argv for `ReplConfig.command`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
DEFAULT_TRANSCRIPT_DIR = HERE.parents[2].parent / "shared" / "data" / "lean-repl-transcripts"
STANDARD_AXIOMS = ("propext", "Classical.choice", "Quot.sound")
WIDTH = 80

# --------------------------------------------------------------------------------------------
# Lean's Json.pretty: a Wadler-style document (text, line, nest, group) printed at width 80.
# --------------------------------------------------------------------------------------------

_LINE = ("line",)


def _escape(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _bracket(left: str, body: tuple[Any, ...], right: str) -> tuple[Any, ...]:
    return ("group", ("nest", len(left), ("cat", [("text", left), body, ("text", right)])))


def _join(parts: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    items: list[tuple[Any, ...]] = []
    for index, part in enumerate(parts):
        if index:
            items += [("text", ","), _LINE]
        items.append(part)
    return ("cat", items)


def _document(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ("text", "null")
    if value is True:
        return ("text", "true")
    if value is False:
        return ("text", "false")
    if isinstance(value, int):
        return ("text", str(value))
    if isinstance(value, float):
        return ("text", repr(value))
    if isinstance(value, str):
        return ("text", _escape(value))
    if isinstance(value, list):
        return _bracket("[", _join([_document(item) for item in value]), "]")
    if isinstance(value, dict):
        # Lean's JSON objects are red-black maps folded into a list back to front.
        fields = [
            ("group", ("cat", [("text", _escape(key) + ":"), _LINE, _document(value[key])]))
            for key in sorted(value, reverse=True)
        ]
        return _bracket("{", _join(fields), "}")
    raise TypeError(f"not JSON: {value!r}")


class _Group:
    __slots__ = ("flatten", "items")

    def __init__(self, flatten: bool, items: list[tuple[tuple[Any, ...], int]]) -> None:
        self.flatten = flatten
        self.items = items  # a stack: the next item is last


def _space_up_to_line(groups: Iterable[_Group], budget: int) -> int:
    """Width of the text up to the next line break that will not be flattened (stops past `budget`)."""
    space = 0
    for group in groups:
        for doc, _ in reversed(group.items):
            stack = [(doc, group.flatten)]
            while stack:
                node, flat = stack.pop()
                kind = node[0]
                if kind == "text":
                    space += len(node[1])
                elif kind == "line":
                    if not flat:
                        return space
                    space += 1
                elif kind == "cat":
                    stack.extend((child, flat) for child in reversed(node[1]))
                elif kind == "nest":
                    stack.append((node[2], flat))
                else:  # group: measured flat
                    stack.append((node[1], True))
                if space > budget:
                    return space
    return space


def lean_pretty(value: Any, width: int = WIDTH) -> str:
    """`value` laid out exactly as Lean's `Json.pretty` lays it out."""
    out: list[str] = []
    column = 0
    groups = [_Group(False, [(_document(value), 0)])]
    while groups:
        group = groups[-1]
        if not group.items:
            groups.pop()
            continue
        doc, indent = group.items.pop()
        kind = doc[0]
        if kind == "text":
            out.append(doc[1])
            column += len(doc[1])
        elif kind == "line":
            if group.flatten:
                out.append(" ")
                column += 1
            else:
                out.append("\n" + " " * indent)
                column = indent
        elif kind == "cat":
            group.items.extend((child, indent) for child in reversed(doc[1]))
        elif kind == "nest":
            group.items.append((doc[2], indent + doc[1]))
        elif group.flatten:
            group.items.append((doc[1], indent))
        else:
            items = [(doc[1], indent)]
            available = max(0, width - column)
            space = _space_up_to_line([_Group(True, items)], available)
            if space <= available:
                space += _space_up_to_line(reversed(groups), available - space)
            groups.append(_Group(space <= available, items))
    return "".join(out)


def render_reply(value: Any) -> str:
    """One reply on the wire: the pretty JSON and the blank line after it."""
    return lean_pretty(value) + "\n\n"


# --------------------------------------------------------------------------------------------
# Script helpers (imported by tests).
# --------------------------------------------------------------------------------------------

_DECLARATION = re.compile(r"^\s*(?:@\[[^\]]*\]\s*)?(?:private\s+|protected\s+)?(?:theorem|lemma)\s+([^\s(:{\[]+)")


def declaration_name(statement: str) -> str:
    match = _DECLARATION.match(statement)
    if match is None:
        raise ValueError(f"not a `theorem NAME ...` statement: {statement[:80]!r}")
    return match.group(1)


def statement_without_by(statement: str) -> str:
    return re.sub(r":=\s*(by)?\s*$", "", statement.rstrip()).rstrip()


def _signature(statement: str) -> str:
    """What follows the name (and universe parameters) of a statement, whitespace collapsed."""
    body = statement_without_by(statement)
    match = _DECLARATION.match(body)
    rest = body[match.end() :] if match else body
    return re.sub(r"\s+", " ", re.sub(r"^\.\{[^}]*\}", "", rest)).strip()


class ScriptTheorem:
    """One theorem of a script: its statement, initial goal, transitions and axioms.

    (A plain class: `dataclasses` would cost the stand-in a noticeable share of its start-up.)
    """

    def __init__(
        self,
        statement: str,
        goal: str,
        states: dict[str, dict[str, Any]] | None = None,
        axioms: Sequence[str] = STANDARD_AXIOMS,
        name: str = "",
    ) -> None:
        self.statement = statement
        self.goal = goal
        self.states: dict[str, dict[str, Any]] = states if states is not None else {}
        self.axioms = tuple(axioms)
        self.name = name or declaration_name(statement)

    def __repr__(self) -> str:
        return f"ScriptTheorem({self.name!r}, goal={self.goal!r}, states={len(self.states)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statement": self.statement,
            "goal": self.goal,
            "axioms": list(self.axioms),
            "states": self.states,
        }


def _statement_of(theorem: Any) -> str:
    return theorem if isinstance(theorem, str) else str(theorem.formal_statement)


def default_goal(statement: str) -> str:
    """A goal text for a statement: `⊢ ` and what follows the name, whitespace collapsed."""
    body = statement_without_by(statement)
    rest = body[_DECLARATION.match(body).end() :] if _DECLARATION.match(body) else body  # type: ignore[union-attr]
    return "⊢ " + re.sub(r"\s+", " ", rest).strip()


def linear_theorem(
    theorem: Any,
    tactics: Sequence[str] | None,
    *,
    goal: str | None = None,
    dead_ends: Mapping[str, Any] | None = None,
    closing: Mapping[str, Any] | None = None,
) -> ScriptTheorem:
    """A theorem (a `Theorem` or its formal statement) proved by `tactics` in order.

    Tactic i takes state i to state i+1 (a new hypothesis line `s{i+1} : step {i+1}`); the last
    one closes the proof. `tactics=None` scripts no proof at all. `dead_ends` adds the same
    failing outcomes (e.g. `{"bad": {"error": "..."}}`) to every state; `closing` overrides the
    outcome of the last tactic (e.g. `{"goals": [], "axioms": ["sorryAx"]}`).
    """
    statement = _statement_of(theorem)
    start = goal or default_goal(statement)
    states: dict[str, dict[str, Any]] = {}
    current = start
    steps = list(tactics or [])
    for index, tactic in enumerate(steps):
        transitions = states.setdefault(current, dict(dead_ends or {}))
        if index == len(steps) - 1:
            transitions[tactic] = dict(closing) if closing is not None else {"goals": []}
        else:
            following = f"s{index + 1} : step {index + 1}\n{start}"
            transitions[tactic] = following
            current = following
    if not steps and dead_ends:
        states[start] = dict(dead_ends)
    return ScriptTheorem(statement=statement, goal=start, states=states)


def script_json(theorems: Iterable[ScriptTheorem], *, unscripted: str = "trap") -> dict[str, Any]:
    return {"unscripted": unscripted, "theorems": [t.to_json() for t in theorems]}


def write_script(path: Path | str, theorems: Iterable[ScriptTheorem], *, unscripted: str = "trap") -> Path:
    """Write a script file for `theorems`; returns its path."""
    target = Path(path)
    target.write_text(json.dumps(script_json(theorems, unscripted=unscripted), ensure_ascii=False), encoding="utf-8")
    return target


def generator_table(
    theorems: Iterable[ScriptTheorem], logprob: float = -1.0
) -> dict[str, list[tuple[str, float, int]]]:
    """A `ScriptedGenerator` table proposing every scripted tactic of every state, in script order."""
    table: dict[str, list[tuple[str, float, int]]] = {}
    for theorem in theorems:
        for state, tactics in theorem.states.items():
            table.setdefault(state, []).extend((tactic, logprob, 1) for tactic in tactics)
    return table


def stand_in_command(
    *, script: Path | str | None = None, transcript: str | None = None, flags: Sequence[str] = ()
) -> tuple[str, ...]:
    """The argv that starts this stand-in (for `ReplConfig.command` or `PROVER_LEAN__REPL_COMMAND`)."""
    argv = [sys.executable, "-S", str(HERE)]  # -S: only the standard library is needed, start faster
    if script is not None:
        argv += ["--script", str(script)]
    if transcript is not None:
        argv += ["--transcript", transcript]
    return (*argv, *flags)


def stand_in_config(
    *,
    script: Path | str | None = None,
    transcript: str | None = None,
    flags: Sequence[str] = (),
    **fields: Any,
) -> Any:
    """A `lean_env.repl.ReplConfig` that runs this stand-in, with test-friendly defaults.

    `fields` override any `ReplConfig` field (workers, timeouts, limits...).
    """
    from lean_env.repl import ReplConfig  # lazily: the stand-in process itself never imports our code

    defaults: dict[str, Any] = {
        "workers": 2,
        "memory_limit_mb": 1024,
        "max_requests_per_worker": 10_000,
        "acquire_timeout_s": 10.0,
        "start_timeout_s": 10.0,
        "restart_backoff_s": 0.01,
        "max_restart_backoff_s": 0.1,
        "command_timeout_s": 10.0,
    }
    defaults.update(fields)
    return ReplConfig(command=stand_in_command(script=script, transcript=transcript, flags=flags), **defaults)


# --------------------------------------------------------------------------------------------
# The process.
# --------------------------------------------------------------------------------------------


class _Crash(Exception):
    """Write half of this reply, then die."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__("crash")
        self.reply = reply


def _message(severity: str, text: str, line: int = 0, column: int = 0, end: tuple[int, int] | None = None):
    end_line, end_column = end if end is not None else (line, column)
    return {
        "severity": severity,
        "pos": {"line": line, "column": column},
        "endPos": {"line": end_line, "column": end_column},
        "data": text,
    }


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1)
    return line, column


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _match_statement(text: str, start: int, statement: str) -> int | None:
    """The index in `text` right after `statement` (compared up to whitespace), or None."""
    wanted = _normalise(statement)
    i, j = start, 0
    while j < len(wanted):
        if i >= len(text):
            return None
        if wanted[j] == " ":
            if not text[i].isspace():
                return None
            while i < len(text) and text[i].isspace():
                i += 1
            j += 1
        elif text[i] == wanted[j]:
            i += 1
            j += 1
        else:
            return None
    return i


def _split_tactic_block(block: str) -> list[tuple[str, int]]:
    """Tactics of a `by` block (text after `by`) with their offsets: one indentation level each."""
    stripped = block.lstrip(" ")
    if stripped and not stripped.startswith("\n"):
        first_line = stripped.split("\n", 1)[0].strip()
        return [(first_line, len(block) - len(stripped))] if first_line else []
    tactics: list[tuple[list[str], int]] = []
    indent: int | None = None
    offset = 0
    for line in block.split("\n"):
        here = offset
        offset += len(line) + 1
        if not line.strip():
            if tactics:
                tactics[-1][0].append("")
            continue
        width = len(line) - len(line.lstrip(" "))
        if indent is None:
            indent = width
        if width == indent:
            tactics.append(([line[indent:]], here + indent))
        elif tactics:
            tactics[-1][0].append(line[indent:])
    return [("\n".join(lines).rstrip("\n"), where) for lines, where in tactics]


class FakeLean:
    """The scripted "Lean" behind `--script`, plus the failure modes."""

    def __init__(self, script: Mapping[str, Any] | None, options: argparse.Namespace) -> None:
        self.options = options
        script = script or {}
        self.unscripted = script.get("unscripted", "trap")
        self.theorems = [dict(t) for t in script.get("theorems", [])]
        for theorem in self.theorems:
            theorem.setdefault("name", declaration_name(theorem["statement"]))
            theorem.setdefault("axioms", list(STANDARD_AXIOMS))
            theorem.setdefault("states", {})
        self.envs = 0
        # Per environment: what its commands declared (name -> axioms), their signatures, and whether a
        # header of it rewrote `#print axioms`.
        self.env_states: list[dict[str, Any]] = []
        self.later: list[list[Any]] = []  # [replies still to go, text]
        self.states: list[tuple[tuple[str, ...], dict[str, Any] | None]] = []
        self.requests = 0
        self.hoard: list[Any] = []

    # -- dispatch --

    def handle(self, request: Any) -> dict[str, Any]:
        self.requests += 1
        if self.options.grow_mb_per_request:
            self.hoard.append(bytearray(self.options.grow_mb_per_request * 1024 * 1024))
        if self.options.latency_ms:
            time.sleep(self.options.latency_ms / 1000)
        if not isinstance(request, dict):
            return {"message": "Could not parse JSON: expected an object"}
        if "tactic" in request:
            reply = self.tactic(request)
        elif "cmd" in request:
            reply = self.command(request)
        else:
            reply = {"message": "fake_repl: this request kind is not scripted"}
        if self.options.crash_at_request and self.requests == self.options.crash_at_request:
            marker = self.options.crash_once
            if marker is None:
                raise _Crash(reply)
            try:
                # O_EXCL makes the claim atomic: of processes getting here together, one crashes.
                claim = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return reply
            os.write(claim, b"crashed\n")
            os.close(claim)
            raise _Crash(reply)
        return reply

    def _failure(self, tactic: str) -> dict[str, Any] | None:
        options = self.options
        if tactic in options.hang_on:
            sys.stderr.write(f"fake_repl: hanging on {tactic!r}\n")
            sys.stderr.flush()
            while True:
                time.sleep(3600)
        if tactic in options.runaway_on:
            self._runaway()
        for spec in options.alloc_on:
            name, _, mb = spec.rpartition("=")
            if name == tactic:
                self.hoard.append(bytearray(b"\xa5" * (int(mb) * 1024 * 1024)))  # written, so resident
        for spec in options.reserve_on:
            name, _, mb = spec.rpartition("=")
            if name == tactic:
                self._reserve(int(mb))
        for spec in options.slow_on:
            name, _, seconds = spec.rpartition("=")
            if name == tactic:
                time.sleep(float(seconds))
        if tactic in options.crash_on:
            raise _Crash({"proofStatus": "Incomplete: open goals remain", "proofState": 0, "goals": ["⊢ crash"]})
        if tactic in options.unknown_state_on:
            return {"message": "Unknown proof state."}
        return None

    def _forge(self, tactic: str, *, names: Sequence[str] = (), tactic_mode: bool = False) -> None:
        """Model code that writes to the process's stdout while `tactic` elaborates (see the docstring)."""
        if "forge_" not in tactic:
            return
        clean = [_message("info", f"'{name}' does not depend on any axioms", 1, 0) for name in names]
        if tactic_mode:
            forged: dict[str, Any] = {"proofStatus": "Completed", "proofState": len(self.states), "goals": []}
        else:
            forged = {"env": self.envs}
            if clean and "forge_probe" not in tactic:
                forged["messages"] = clean
        if "forge_late" in tactic:
            self.later.append([2, render_reply(forged)])  # after this reply and the next one
            return
        if "forge_garbage" in tactic:
            _write("forged output\n\n")
            return
        _write(render_reply(forged))
        if "forge_probe" in tactic:
            guess = [
                _message("info", "'lean_env_canary_0' depends on axioms: [lean_env_canary_ax_0]", 5, 0),
                _message("info", "'lean_env_alias_0' does not depend on any axioms", 6, 0),
            ]
            _write(render_reply({"env": self.envs + 1, "messages": guess}))

    def _reserve(self, mb: int) -> None:
        import mmap

        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
        try:
            self.hoard.append(mmap.mmap(-1, mb * 1024 * 1024, flags=flags))  # type: ignore[arg-type]
        except OSError as error:
            sys.stderr.write(f"fake_repl: MemoryError: cannot map {mb} MiB: {error}\n")
            sys.stderr.flush()
            os._exit(1)

    def _runaway(self) -> None:
        sys.stderr.write("fake_repl: allocating without bound\n")
        sys.stderr.flush()
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        cap = None if soft != resource.RLIM_INFINITY else self.options.runaway_cap_mb
        blocks: list[bytearray] = []
        while cap is None or len(blocks) * 16 < cap:
            blocks.append(bytearray(16 * 1024 * 1024))  # zero-filled, so resident
        while True:  # no limit set: behave like a hang instead of eating the machine
            time.sleep(3600)

    # -- tactic mode --

    def _new_state(self, goals: Sequence[str], theorem: dict[str, Any] | None) -> int:
        self.states.append((tuple(goals), theorem))
        return len(self.states) - 1

    def _outcome(self, theorem: dict[str, Any] | None, goals: Sequence[str], tactic: str) -> Any:
        if tactic.strip() in ("sorry", "admit"):
            return {"sorry": True}
        if theorem is not None:
            transitions = theorem["states"].get("\n\n".join(goals), {})
            if tactic in transitions:
                outcome = transitions[tactic]
                if isinstance(outcome, str):
                    return {"goals": [g.strip() for g in outcome.split("\n\n") if g.strip()]}
                return outcome
        message = f"fake_repl: no scripted outcome for {tactic!r} on this state"
        return {"lean_error": message} if self.unscripted == "lean_error" else {"error": message}

    def tactic(self, request: dict[str, Any]) -> dict[str, Any]:
        tactic = str(request["tactic"])
        state = request.get("proofState")
        failure = self._failure(tactic)
        if failure is not None:
            return failure
        if not isinstance(state, int) or not 0 <= state < len(self.states):
            return {"message": "Unknown proof state."}
        goals, theorem = self.states[state]
        if "forge_" in tactic:
            self._forge(tactic, tactic_mode=True)
            return {
                "proofStatus": "Incomplete: open goals remain" if goals else "Completed",
                "proofState": self._new_state(goals, theorem),
                "goals": list(goals),
            }
        if tactic in self.options.trap_on:
            outcome: Any = {"error": f"fake_repl: {tactic!r} fails to elaborate"}
        else:
            outcome = self._outcome(theorem, goals, tactic)
        if "lean_error" in outcome:
            return {"message": "Lean error:\n" + outcome["lean_error"]}
        if "error" in outcome:
            return {
                "proofStatus": "Incomplete: contains sorry",
                "proofState": self._new_state([], theorem),
                "messages": [_message("error", outcome["error"])],
                "goals": [],
            }
        if "kernel_error" in outcome:
            return {
                "proofStatus": "Error: kernel type check failed: " + outcome["kernel_error"],
                "proofState": self._new_state([], theorem),
                "goals": [],
            }
        if outcome.get("metavariables"):
            return {
                "proofStatus": "Incomplete: contains metavariable(s)",
                "proofState": self._new_state([], theorem),
                "goals": [],
            }
        if outcome.get("sorry"):
            sorry_state = self._new_state(goals[:1], theorem)
            return {
                "sorries": [{"proofState": sorry_state, "goal": goals[0] if goals else ""}],
                "proofStatus": "Incomplete: contains sorry",
                "proofState": self._new_state([], theorem),
                "goals": [],
            }
        new_goals = list(outcome.get("goals", []))
        return {
            "proofStatus": "Completed" if not new_goals else "Incomplete: open goals remain",
            "proofState": self._new_state(new_goals, theorem),
            "goals": new_goals,
        }

    # -- command mode --

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        env = request.get("env")
        if env is not None and (not isinstance(env, int) or not 0 <= env < self.envs):
            return {"message": "Unknown environment."}
        text = str(request["cmd"])
        reply: dict[str, Any] = {}
        messages: list[dict[str, Any]] = []
        sorries: list[dict[str, Any]] = []
        empty: dict[str, Any] = {"declared": {}, "types": {}, "rewrites": False}
        parent = self.env_states[env] if env is not None else empty
        declared: dict[str, list[str]] = dict(parent["declared"])
        types: dict[str, str] = dict(parent["types"])
        rewrites = bool(parent["rewrites"])
        found = False
        located = []
        for theorem in self.theorems:
            match = re.search(r"\b(?:theorem|lemma)\s+" + re.escape(theorem["name"]) + r"(?=[\s:({\[])", text)
            if match is not None:
                located.append((match.start(), match, theorem))
        # Lean elaborates declarations in text order, so sorries (and their proof states) come in that order.
        for _, match, theorem in sorted(located, key=lambda item: item[0]):
            found = True
            types[theorem["name"]] = _signature(theorem["statement"])
            self._declaration(text, match, theorem, messages, sorries, declared)
        found = self._probe_lines(text, messages, declared, types) or found
        for match in re.finditer(r"^#print axioms\s+(\S+)", text, re.MULTILINE):
            name = match.group(1)
            line, column = _position(text, match.start())
            end = (line, column + len("#print axioms"))
            if name not in declared:
                messages.append(_message("error", f"Unknown constant `{name}`", line, column, end))
            elif rewrites:
                messages.append(_message("info", f"'{name}' does not depend on any axioms", line, column, end))
            elif declared[name]:
                listed = ", ".join(declared[name])
                messages.append(_message("info", f"'{name}' depends on axioms: [{listed}]", line, column, end))
            else:
                messages.append(_message("info", f"'{name}' does not depend on any axioms", line, column, end))
            found = True
        if not found:
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            header_words = (
                "import ",
                "open ",
                "set_option ",
                "--",
                "namespace ",
                "section",
                "end",
                "universe ",
                "macro_rules ",
            )
            if all(line.startswith(header_words) for line in lines):
                rewrites = rewrites or any(
                    line.startswith("macro_rules ") and "#print axioms" in line for line in lines
                )
                if self.options.header_error:
                    messages.append(_message("error", self.options.header_error, 1, 0, (1, 6)))
            else:
                messages.append(_message("error", "fake_repl: the script has no theorem in this command", 1, 0))
        if sorries:
            reply["sorries"] = sorries
        if messages:
            reply["messages"] = messages
        reply["env"] = self.envs
        self.envs += 1
        self.env_states.append({"declared": declared, "types": types, "rewrites": rewrites})
        return reply

    def _probe_lines(
        self, text: str, messages: list[dict[str, Any]], declared: dict[str, list[str]], types: dict[str, str]
    ) -> bool:
        """Declare the probe's one-line `axiom` and alias `theorem`s (see the module docstring)."""
        found = False
        for match in re.finditer(r"^(axiom|theorem)[ \t]+(\S+?)(\.\{[^}]*\})?[ \t]+(.*)$", text, re.MULTILINE):
            kind, name, rest = match.group(1), match.group(2), match.group(4)
            line, column = _position(text, match.start())
            if kind == "axiom":
                declared[name] = [name]
                types[name] = _normalise(rest)
                found = True
                continue
            canary = re.fullmatch(r":\s*True\s*:=\s*(\S+)", rest)
            alias = re.fullmatch(r":\s*type_of%\s*@(\S+?)(?:\.\{[^}]*\})?\s*:=\s*@(\S+?)(?:\.\{[^}]*\})?", rest)
            if canary is None and alias is None:
                continue
            found = True
            used = [canary.group(1)] if canary is not None else [alias.group(1), alias.group(2)]  # type: ignore[union-attr]
            unknown = [n for n in used if n not in declared]
            if unknown:
                messages.append(_message("error", f"Unknown identifier '{unknown[0]}'", line, column))
                declared[name] = ["sorryAx"]
            elif alias is not None and types.get(alias.group(1)) != types.get(alias.group(2)):
                messages.append(
                    _message("error", "type mismatch\n  the statement asked for and the theorem differ", line, column)
                )
                declared[name] = ["sorryAx"]
            else:
                declared[name] = list(declared[used[-1]])
                types[name] = types.get(used[-1], "")
        return found

    def _sorry(self, text: str, where: int, goal: str, theorem: dict[str, Any]) -> dict[str, Any]:
        """A `sorries` entry for the `sorry` at `where`, with a fresh proof state on `goal`."""
        line, column = _position(text, where)
        return {
            "proofState": self._new_state([goal], theorem),
            "pos": {"line": line, "column": column},
            "goal": goal,
            "endPos": {"line": line, "column": column + 5},
        }

    def _declaration(
        self,
        text: str,
        match: re.Match[str],
        theorem: dict[str, Any],
        messages: list[dict[str, Any]],
        sorries: list[dict[str, Any]],
        declared: dict[str, list[str]],
    ) -> None:
        name = theorem["name"]
        name_start = match.end() - len(name)
        name_pos = _position(text, name_start)
        name_end = (name_pos[0], name_pos[1] + len(name))
        after = _match_statement(text, match.start(), statement_without_by(theorem["statement"]))
        rest = text[after:] if after is not None else ""
        assign = re.match(r"\s*:=", rest)
        if after is None or assign is None:
            messages.append(_message("error", "fake_repl: the statement differs from the script", *name_pos, name_end))
            declared[name] = ["sorryAx"]
            return
        body_start = after + assign.end()
        end = re.search(r"\n(?=\S)", text[body_start:])
        proof = text[body_start : body_start + end.start()] if end else text[body_start:]
        if proof.strip() in ("sorry", "by sorry"):
            where = body_start + proof.index("sorry")
            sorries.append(self._sorry(text, where, theorem["goal"], theorem))
            messages.append(_message("warning", "declaration uses `sorry`", *name_pos, name_end))
            declared[name] = ["sorryAx"]
            return
        by = re.match(r"\s*by\b", proof)
        if by is None:
            messages.append(_message("error", "fake_repl: only tactic proofs are scripted", *name_pos, name_end))
            declared[name] = ["sorryAx"]
            return
        block_start = body_start + by.end()
        goals: list[str] = [theorem["goal"]]
        axioms = list(theorem["axioms"])
        used_sorry = False
        failed = False
        for tactic, offset in _split_tactic_block(text[block_start : body_start + len(proof)]):
            line, column = _position(text, block_start + offset)
            span = (line, column + len(tactic.split("\n", 1)[0]))
            if not goals:
                messages.append(_message("error", "No goals to be solved", line, column, span))
                failed = True
                break
            focused = tactic.startswith("· ")
            # `· TACTICS` runs TACTICS (its first line and the lines under it) on the main goal alone,
            # which they must close; the other goals wait.
            steps = [t for t, _ in _split_tactic_block("\n  " + tactic[2:])] if focused else [tactic]
            target, waiting = (goals[:1], goals[1:]) if focused else (goals, [])
            search_from = block_start + offset
            problem = None
            for inner in steps:
                if not target:
                    problem = "No goals to be solved"
                    break
                if inner == "sorry":
                    # `sorry` closes the main goal and opens a proof state on it.
                    where = text.index("sorry", search_from)
                    search_from = where + len("sorry")
                    sorries.append(self._sorry(text, where, target[0], theorem))
                    used_sorry = True
                    target = target[1:]
                    continue
                if "forge_" in inner:
                    self._forge(inner, names=[name])
                    continue
                failure = self._failure(inner)
                outcome = (
                    {"error": failure["message"]}
                    if failure is not None
                    else {"error": f"fake_repl: {inner!r} fails to elaborate"}
                    if inner in self.options.trap_on
                    else self._outcome(theorem, target, inner)
                )
                problem = outcome.get("error") or outcome.get("lean_error") or outcome.get("kernel_error")
                if outcome.get("metavariables"):
                    problem = "don't know how to synthesize placeholder"
                if problem:
                    break
                if outcome.get("sorry"):
                    used_sorry = True
                    target = []
                    continue
                for extra in outcome.get("axioms", []):
                    if extra not in axioms:
                        axioms.append(extra)
                target = list(outcome.get("goals", []))
            if problem:
                messages.append(_message("error", problem, line, column, span))
                failed = True
                break
            if focused and target:
                messages.append(_message("error", "unsolved goals\n" + "\n\n".join(target), line, column))
                failed = True
                break
            goals = target + waiting
        if not failed and goals:
            line, column = _position(text, block_start - 2)
            messages.append(_message("error", "unsolved goals\n" + "\n\n".join(goals), line, column))
            failed = True
        if used_sorry and not failed:
            messages.append(_message("warning", "declaration uses `sorry`", *name_pos, name_end))
        if failed or used_sorry:
            axioms.append("sorryAx")
        declared[name] = axioms


class Replay:
    """Answers a recorded session's requests with its recorded replies, byte for byte."""

    def __init__(self, requests: list[str], replies: list[str], name: str) -> None:
        self.requests = requests
        self.replies = replies
        self.name = name
        self.index = 0

    def handle_raw(self, text: str) -> str:
        index = self.index
        self.index += 1
        if index >= len(self.replies):
            return render_reply({"message": f"fake_repl: transcript {self.name} has only {len(self.replies)} replies"})
        if not _same_request(text, self.requests[index]):
            sys.stderr.write(f"fake_repl: request {index + 1} differs from transcript {self.name}: {text!r}\n")
            sys.stderr.flush()
            return render_reply({"message": f"fake_repl: request {index + 1} differs from transcript {self.name}"})
        return self.replies[index] + "\n\n"


def _same_request(got: str, recorded: str) -> bool:
    try:
        return bool(json.loads(got) == json.loads(recorded))
    except json.JSONDecodeError:
        return got.strip() == recorded.strip()


def split_requests(text: str) -> list[str]:
    """Requests of an input stream as the REPL reads them (lines joined without their line breaks)."""
    requests: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            requests.append("".join(current))
            current = []
    if current:
        requests.append("".join(current))
    return requests


def transcript_paths(spec: str, directory: Path = DEFAULT_TRANSCRIPT_DIR) -> tuple[Path, Path]:
    """The `.in` and `.expected.out` files of a transcript given by name or path."""
    path = Path(spec)
    base = str(path)
    for suffix in (".expected.out", ".in"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    if not Path(base + ".in").exists() and os.sep not in spec:
        base = str(directory / spec)
    return Path(base + ".in"), Path(base + ".expected.out")


def _read_request(stdin: Any) -> str | None:
    lines: list[str] = []
    while True:
        raw = stdin.readline()
        if not raw:
            break
        line = raw.decode("utf-8", errors="replace")
        if not line.strip():
            break
        lines.append(line.rstrip("\n"))
    return "".join(lines) if lines else None


def _write(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _die_mid_reply(reply: dict[str, Any]) -> None:
    text = render_reply(reply)
    sys.stdout.buffer.write(text[: max(1, len(text) // 2)].encode("utf-8"))
    sys.stdout.buffer.flush()
    sys.stderr.write("fake_repl: INTERNAL PANIC: simulated crash in the middle of a reply\n")
    sys.stderr.flush()
    os._exit(1)


def _options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A stand-in for the Lean REPL (see the module docstring).")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--transcript", help="replay a recorded session (NAME or path)")
    mode.add_argument("--script", type=Path, help="a JSON script driving the scripted Lean")
    parser.add_argument("--transcript-dir", type=Path, default=DEFAULT_TRANSCRIPT_DIR)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--trap-on", action="append", default=[])
    parser.add_argument("--unknown-state-on", action="append", default=[])
    parser.add_argument("--crash-on", action="append", default=[])
    parser.add_argument("--crash-at-request", type=int, default=0)
    parser.add_argument("--crash-once", default=None, help="with --crash-at-request: only if this file is absent")
    parser.add_argument("--hang-on", action="append", default=[])
    parser.add_argument("--runaway-on", action="append", default=[])
    parser.add_argument("--runaway-cap-mb", type=int, default=2048)
    parser.add_argument("--grow-mb-per-request", type=int, default=0)
    parser.add_argument("--alloc-on", action="append", default=[], help="TACTIC=MB: write MB of memory")
    parser.add_argument("--reserve-on", action="append", default=[], help="TACTIC=MB: map MB, never touch it")
    parser.add_argument("--slow-on", action="append", default=[], help="TACTIC=SECONDS: answer after a delay")
    parser.add_argument("--header-error", default="")
    parser.add_argument("--exit-at-start", type=int, default=None)
    parser.add_argument("--stderr-banner", default="")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = _options(argv)
    if options.stderr_banner:
        sys.stderr.write(options.stderr_banner + "\n")
        sys.stderr.flush()
    if options.exit_at_start is not None:
        sys.stderr.write("fake_repl: cannot start (simulated start failure)\n")
        sys.stderr.flush()
        return int(options.exit_at_start)
    replay: Replay | None = None
    lean: FakeLean | None = None
    if options.transcript:
        source, expected = transcript_paths(options.transcript, options.transcript_dir)
        replay = Replay(
            split_requests(source.read_text(encoding="utf-8")),
            [block for block in expected.read_text(encoding="utf-8").split("\n\n") if block.strip()],
            source.stem,
        )
    else:
        script = json.loads(options.script.read_text(encoding="utf-8")) if options.script else None
        lean = FakeLean(script, options)
    stdin = sys.stdin.buffer
    while True:
        text = _read_request(stdin)
        if text is None:
            return 0
        if replay is not None:
            _write(replay.handle_raw(text))
            continue
        assert lean is not None
        try:
            request = json.loads(text)
        except json.JSONDecodeError as error:
            _write(render_reply({"message": f"Could not parse JSON:\n{error}"}))
            continue
        try:
            reply = lean.handle(request)
        except _Crash as crash:
            _die_mid_reply(crash.reply)
        _write(render_reply(reply))
        for pending in lean.later:
            pending[0] -= 1
            if pending[0] == 0:
                _write(pending[1])
        lean.later = [pending for pending in lean.later if pending[0] > 0]


if __name__ == "__main__":
    sys.exit(main())

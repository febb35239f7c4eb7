"""The wire format of leanprover-community/repl: framing, typed replies, and what a reply means.

Framing: a request is one JSON object followed by a blank line. A reply is a JSON value
pretty-printed over one or more lines and terminated by a blank line; no line inside a reply is
empty (strings escape their newlines), so a reply is exactly the bytes up to the first `\\n\\n`.
An empty request or end of input makes the REPL exit, so a request must never be empty.

Replies come in three shapes, parsed into frozen dataclasses:
- `CommandReply` (`{"env": N, "messages"?, "sorries"?, "tactics"?, "infotree"?}`) for `cmd`,
  `path`, `pickleTo` and `unpickleEnvFrom`;
- `TacticReply` (`{"proofState": K, "goals": [...], "proofStatus"?, "messages"?, "sorries"?,
  "traces"?}`) for `tactic` and `unpickleProofStateFrom`;
- `ReplError` (`{"message": "..."}`) when the request itself failed: `Lean error:\\n...`,
  `Unknown proof state.`, `Unknown environment.`.
Empty lists are omitted by the REPL and default to `()` here. Lean's messages become our
`LeanMessage`. Anything else raises `ReplProtocolError`.

`tactic_outcome` decides what a tactic reply means for the search, and guards against the REPL's
known trap: a tactic that fails to elaborate can come back as an ordinary reply with an error
message, `goals: []` and `Incomplete: contains sorry`. A step closes the proof only when
`proofStatus` is `Completed` and no message has severity error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lean_env.types import (
    LeanMessage,
    Progress,
    ProofClosed,
    ProofState,
    Severity,
    TacticError,
    TacticErrorKind,
    TacticOutcome,
)

REPLY_TERMINATOR = b"\n\n"
"""What ends every reply (and every request) on the wire."""


class ReplProtocolError(ValueError):
    """The REPL answered something that is not one of its reply shapes (or not JSON at all)."""


@dataclass(frozen=True, slots=True)
class ReplSorry:
    """A `sorry` in a command or tactic, with the proof state it opens (`sorries` entries).

    `line`/`column` is the REPL's `pos` and `end_line`/`end_column` its `endPos` (the span of the
    `sorry` text); all 0 when the REPL gave none (sorries of a tactic reply carry no position).
    """

    proof_state: int
    goal: str
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0


@dataclass(frozen=True, slots=True)
class ReplTacticInfo:
    """One tactic of a command's `tactics` list (asked for with `"allTactics": true`)."""

    tactic: str
    proof_state: int
    goals: str
    used_constants: tuple[str, ...] = ()
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The answer to a command: the new environment id and what Lean said about the command."""

    env: int
    messages: tuple[LeanMessage, ...] = ()
    sorries: tuple[ReplSorry, ...] = ()
    tactics: tuple[ReplTacticInfo, ...] = ()
    infotree: Any = field(default=None, compare=False, repr=False)
    """The raw `infotree` JSON when it was asked for; kept as parsed JSON, not interpreted."""

    @property
    def errors(self) -> tuple[LeanMessage, ...]:
        return tuple(m for m in self.messages if m.is_error)


class ProofStatus(StrEnum):
    """The REPL's `proofStatus`, reduced to its kind (`Error: <text>` becomes ERROR)."""

    COMPLETED = "Completed"
    OPEN_GOALS = "Incomplete: open goals remain"
    CONTAINS_SORRY = "Incomplete: contains sorry"
    METAVARIABLES = "Incomplete: contains metavariable(s)"
    ERROR = "Error"
    UNRECOGNISED = "unrecognised"


@dataclass(frozen=True, slots=True)
class TacticReply:
    """The answer to a tactic: the new proof state id, its goals and the REPL's verdict.

    `proof_status` is the text the REPL sent, or None for REPL versions older than the field.
    """

    proof_state: int
    goals: tuple[str, ...]
    proof_status: str | None = None
    messages: tuple[LeanMessage, ...] = ()
    sorries: tuple[ReplSorry, ...] = ()
    traces: tuple[str, ...] = ()

    @property
    def status(self) -> ProofStatus | None:
        if self.proof_status is None:
            return None
        if self.proof_status.startswith("Error"):
            return ProofStatus.ERROR
        try:
            return ProofStatus(self.proof_status)
        except ValueError:
            return ProofStatus.UNRECOGNISED

    @property
    def errors(self) -> tuple[LeanMessage, ...]:
        return tuple(m for m in self.messages if m.is_error)


@dataclass(frozen=True, slots=True)
class ReplError:
    """The request itself failed; `message` is the REPL's text (e.g. `Lean error:\\n...`)."""

    message: str

    @property
    def is_unknown_proof_state(self) -> bool:
        return self.message.startswith("Unknown proof state")

    @property
    def is_unknown_environment(self) -> bool:
        return self.message.startswith("Unknown environment")

    @property
    def is_lean_error(self) -> bool:
        return self.message.startswith("Lean error")


ReplReply = CommandReply | TacticReply | ReplError


def encode_request(payload: Mapping[str, Any]) -> bytes:
    """One request on the wire: compact JSON (newlines inside strings are escaped) plus a blank line."""
    if not payload:
        raise ValueError("encode_request: an empty request would make the REPL exit")
    return json.dumps(payload, ensure_ascii=False).encode("utf-8") + REPLY_TERMINATOR


def command_request(
    cmd: str, env: int | None = None, *, all_tactics: bool = False, infotree: str | None = None
) -> dict[str, Any]:
    """A `cmd` request; without `env` the REPL elaborates it in a fresh environment (imports allowed)."""
    payload: dict[str, Any] = {"cmd": cmd}
    if env is not None:
        payload["env"] = env
    if all_tactics:
        payload["allTactics"] = True
    if infotree is not None:
        payload["infotree"] = infotree
    return payload


def tactic_request(tactic: str, proof_state: int) -> dict[str, Any]:
    """A `tactic` request on a proof state id of the same process."""
    return {"tactic": tactic, "proofState": proof_state}


def split_replies(text: str) -> list[str]:
    """Split a REPL output stream into the text of each reply (without the terminating blank line)."""
    return [block for block in text.split("\n\n") if block.strip()]


def decode_reply(raw: bytes | str) -> ReplReply:
    """Parse one reply as read off the wire (with or without its terminating blank line)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReplProtocolError(f"the REPL's reply is not JSON ({error}): {text[:200]!r}") from error
    return parse_reply(value)


def parse_reply(value: Any) -> ReplReply:
    """Turn a parsed JSON reply into a typed reply; raises `ReplProtocolError` for anything else."""
    if not isinstance(value, dict):
        raise ReplProtocolError(f"a REPL reply must be a JSON object, got {type(value).__name__}")
    try:
        if "env" in value:
            return CommandReply(
                env=_int(value["env"], "env"),
                messages=_messages(value),
                sorries=_sorries(value),
                tactics=tuple(_tactic_info(item) for item in _list(value, "tactics")),
                infotree=value.get("infotree"),
            )
        if "proofState" in value:
            return TacticReply(
                proof_state=_int(value["proofState"], "proofState"),
                goals=tuple(_str(goal, "goals") for goal in _list(value, "goals")),
                proof_status=_optional_str(value.get("proofStatus"), "proofStatus"),
                messages=_messages(value),
                sorries=_sorries(value),
                traces=tuple(_str(trace, "traces") for trace in _list(value, "traces")),
            )
        if "message" in value:
            return ReplError(message=_str(value["message"], "message"))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, ReplProtocolError):
            raise
        raise ReplProtocolError(f"malformed REPL reply ({error}): {json.dumps(value)[:200]}") from error
    raise ReplProtocolError(f"unrecognised REPL reply: {json.dumps(value)[:200]}")


def parse_message(value: Mapping[str, Any]) -> LeanMessage:
    """One `messages` entry as our `LeanMessage` (position is where the message starts)."""
    try:
        severity = Severity(value["severity"])
    except ValueError as error:
        raise ReplProtocolError(f"unknown message severity {value.get('severity')!r}") from error
    line, column = _pos(value.get("pos"))
    return LeanMessage(severity=severity, text=_str(value.get("data", ""), "data"), line=line, column=column)


def message_texts(messages: tuple[LeanMessage, ...]) -> tuple[str, ...]:
    """Messages as `severity: text` lines, the form outcomes and verdicts carry."""
    return tuple(f"{m.severity.value}: {m.text}" for m in messages)


def tactic_outcome(reply: TacticReply | ReplError, handle: Any = None) -> TacticOutcome:
    """What one tactic reply means for the search.

    - a request error (`Lean error`, unknown proof state) -> `TacticError(LEAN_ERROR)`;
    - any error message, whatever `proofStatus` says (the trap) -> `TacticError(LEAN_ERROR)`;
    - `Error: ...` status (e.g. the kernel rejected the step) -> `TacticError(LEAN_ERROR)`;
    - sorries or `Incomplete: contains sorry` without an error -> `TacticError(USED_SORRY)`;
    - `Incomplete: contains metavariable(s)` -> `TacticError(LEAN_ERROR)`;
    - `Completed` with no goals -> `ProofClosed`;
    - open goals -> `Progress` with `ProofState.from_goals(goals, handle=handle)`.
    A REPL without `proofStatus` closes on no goals and no error.
    """
    if isinstance(reply, ReplError):
        return TacticError(TacticErrorKind.LEAN_ERROR, reply.message)
    errors = reply.errors
    if errors:
        return TacticError(TacticErrorKind.LEAN_ERROR, "\n".join(m.text for m in errors))
    status = reply.status
    if status is ProofStatus.ERROR:
        return TacticError(TacticErrorKind.LEAN_ERROR, reply.proof_status or "")
    if reply.sorries or status is ProofStatus.CONTAINS_SORRY:
        return TacticError(TacticErrorKind.USED_SORRY, "the tactic used `sorry`")
    if status is ProofStatus.METAVARIABLES:
        return TacticError(TacticErrorKind.LEAN_ERROR, "the tactic left unassigned metavariables")
    others = message_texts(reply.messages)
    if not reply.goals:
        if status is ProofStatus.COMPLETED or status is None:
            return ProofClosed(messages=others)
        return TacticError(TacticErrorKind.LEAN_ERROR, f"no goals left but proofStatus is {reply.proof_status!r}")
    if status in (ProofStatus.OPEN_GOALS, ProofStatus.COMPLETED, None):
        return Progress(ProofState.from_goals(reply.goals, handle=handle), messages=others)
    return TacticError(TacticErrorKind.LEAN_ERROR, f"unrecognised proofStatus {reply.proof_status!r}")


def _list(value: Mapping[str, Any], key: str) -> list[Any]:
    items = value.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ReplProtocolError(f"`{key}` must be a list, got {type(items).__name__}")
    return items


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReplProtocolError(f"`{key}` must be an integer, got {value!r}")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ReplProtocolError(f"`{key}` must be a string, got {value!r}")
    return value


def _optional_str(value: Any, key: str) -> str | None:
    return None if value is None else _str(value, key)


def _pos(value: Any) -> tuple[int, int]:
    if not isinstance(value, dict):
        return 0, 0
    return _int(value.get("line", 0), "line"), _int(value.get("column", 0), "column")


def _messages(value: Mapping[str, Any]) -> tuple[LeanMessage, ...]:
    return tuple(parse_message(item) for item in _list(value, "messages"))


def _sorries(value: Mapping[str, Any]) -> tuple[ReplSorry, ...]:
    out = []
    for item in _list(value, "sorries"):
        line, column = _pos(item.get("pos"))
        end_line, end_column = _pos(item.get("endPos"))
        out.append(
            ReplSorry(
                proof_state=_int(item["proofState"], "proofState"),
                goal=_str(item["goal"], "goal"),
                line=line,
                column=column,
                end_line=end_line,
                end_column=end_column,
            )
        )
    return tuple(out)


def _tactic_info(item: Mapping[str, Any]) -> ReplTacticInfo:
    line, column = _pos(item.get("pos"))
    return ReplTacticInfo(
        tactic=_str(item["tactic"], "tactic"),
        proof_state=_int(item["proofState"], "proofState"),
        goals=_str(item.get("goals", ""), "goals"),
        used_constants=tuple(_str(name, "usedConstants") for name in _list(item, "usedConstants")),
        line=line,
        column=column,
    )

"""Reading theorem statements given by users: a statement string or a named theorem in a Lean file.

Malformed input raises `StatementError` with a message that says what is wrong and where.
"""

from __future__ import annotations

import re
from pathlib import Path

from lean_env.guard import check_statement_text
from lean_env.types import Theorem

MINIF2F_HEADER = "import Mathlib\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"
"""The header every miniF2F-lean4 file starts with; the default for `prover prove --statement`."""

_DECLARATION = re.compile(r"(?m)^[ \t]*(?:@\[[^\]]*\][ \t]*)?(?:theorem|lemma)[ \t]+(?P<name>[^\s(:{\[⦃]+)")
_OPENING = {"(": ")", "[": "]", "{": "}", "⦃": "⦄", "⟨": "⟩"}
_CLOSING = set(_OPENING.values())


class StatementError(ValueError):
    """A statement or file the user gave cannot be used; the message says why."""


def _end_of_signature(text: str, start: int) -> int:
    """Index just past the `:=` that ends the signature beginning at `start`, ignoring nested brackets."""
    depth = 0
    index = start
    while index < len(text) - 1:
        char = text[index]
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth = max(0, depth - 1)
        elif char == ":" and text[index + 1] == "=" and depth == 0:
            return index + 2
        index += 1
    return -1


def split_declaration(text: str, name: str | None = None) -> tuple[str, str, str, str] | None:
    """Split Lean source at a theorem: `(header, name, statement through ":= by", rest after ":=")`.

    Takes the theorem called `name`, or the first one when `name` is None; None when there is none or
    its signature has no `:=`. The header is the text before the declaration.
    """
    for match in _DECLARATION.finditer(text):
        if name is not None and match.group("name") != name:
            continue
        end = _end_of_signature(text, match.end())
        if end < 0:
            return None
        start = match.start()
        return text[:start], match.group("name"), text[start:end] + " by", text[end:]
    return None


def theorem_from_statement(statement: str, header: str = MINIF2F_HEADER, name: str | None = None) -> Theorem:
    """A `Theorem` from `theorem name <binders> : <type> := by` (the trailing `by` may be omitted).

    Nothing after `:=` is allowed: the search writes the proof. Raises `StatementError`.
    """
    text = statement.strip()
    if not text:
        raise StatementError("--statement: the statement is empty")
    match = _DECLARATION.match(text)
    if match is None:
        raise StatementError(
            f"--statement: it must start with `theorem <name>` (or `lemma <name>`), but starts with {text[:40]!r}"
        )
    end = _end_of_signature(text, match.end())
    if end < 0:
        raise StatementError("--statement: the statement has no `:=`; end it with `:= by`")
    after = text[end:].strip()
    if after not in ("", "by"):
        raise StatementError(
            f"--statement: nothing may follow `:= by` (the prover writes the proof); found {after[:40]!r}"
        )
    if ":" not in text[match.end() : end - 2]:
        raise StatementError(
            "--statement: the statement has no type (expected `theorem name ... : <proposition> := by`)"
        )
    formal = text[:end] + " by"
    problem = check_statement_text(formal)
    if problem is not None:
        raise StatementError(f"--statement: {problem}")
    return Theorem(
        name=name or match.group("name"),
        header=header if header.endswith("\n") or not header else header + "\n",
        formal_statement=formal,
    )


def theorem_from_file(path: Path, name: str) -> Theorem:
    """The theorem called `name` in the Lean file `path`; the text before it becomes the header."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise StatementError(f"--file: {path} does not exist") from error
    except UnicodeDecodeError as error:
        raise StatementError(f"--file: {path} is not UTF-8 text") from error
    if any(match.group("name") == name for match in _DECLARATION.finditer(text)):
        parts = split_declaration(text, name)
        if parts is None:
            raise StatementError(
                f"{path}, theorem {name}: the statement has no `:=`; write it as `theorem name ... := by`"
            )
        header, _, statement, _ = parts
        problem = check_statement_text(statement)
        if problem is not None:
            raise StatementError(f"{path}, theorem {name}: {problem}")
        return Theorem(name=name, header=header, formal_statement=statement.strip())
    found = [m.group("name") for m in _DECLARATION.finditer(text)]
    hint = f" (it declares: {', '.join(found[:10])})" if found else " (it declares no theorem)"
    raise StatementError(f"--name: no theorem named {name!r} in {path}{hint}")

"""The wire format of Isabelle's server (system manual, chapter "The Isabelle server"; `byte_message.scala`).

A message is UTF-8 text, `name argument` (the argument empty, or JSON here). It travels either as a
short message, one line ending in `\n`, or as a long message: a line holding only the decimal byte
length, then exactly that many bytes, the length counting the message's final newline. Isabelle writes
the long form when the message is over 100 bytes or holds a newline, and reads both; so do we.

Replies are `OK`, `ERROR`, `NOTE`, `FINISHED` or `FAILED`, each with an optional body that is JSON
or, when it does not parse, plain text (`parse_reply` keeps it as a string).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

LONG_THRESHOLD = 100
"""Messages longer than this many bytes (or holding a newline) are sent in the long form."""
MAX_MESSAGE_BYTES = 1 << 30
"""A length header beyond this is treated as a protocol violation rather than an allocation."""


class ReplyKind(StrEnum):
    """The first word of a server reply."""

    OK = "OK"
    ERROR = "ERROR"
    NOTE = "NOTE"
    FINISHED = "FINISHED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Reply:
    """One server reply: its kind and body (a JSON value, a plain string, or None when empty)."""

    kind: ReplyKind
    body: Any = None

    @property
    def task(self) -> str | None:
        """The task id a `NOTE`/`FINISHED`/`FAILED` (or an async command's `OK`) names, if any."""
        if isinstance(self.body, dict) and isinstance(self.body.get("task"), str):
            return str(self.body["task"])
        return None


class ProtocolError(ValueError):
    """Bytes that are not a message of the protocol (a bad length header, a truncated long message)."""


def frame(text: str) -> bytes:
    """The bytes of one message: `text\\n`, or `<n>\\n` + `text\\n` (n counting the final newline) when
    the text is over `LONG_THRESHOLD` bytes or holds a newline."""
    payload = text.encode("utf-8")
    if len(payload) > LONG_THRESHOLD or b"\n" in payload:
        return f"{len(payload) + 1}\n".encode("ascii") + payload + b"\n"
    return payload + b"\n"


def format_message(name: str, argument: Any = None) -> str:
    """`name` followed by its argument: nothing for None, the text itself for a `str` that is already
    encoded, else compact JSON."""
    if argument is None:
        return name
    encoded = argument if isinstance(argument, str) else json.dumps(argument, ensure_ascii=False)
    return f"{name} {encoded}"


def encode_message(name: str, argument: Any = None) -> bytes:
    """`frame(format_message(name, argument))`: what a client writes for one command."""
    return frame(format_message(name, argument))


async def read_message(reader: asyncio.StreamReader) -> str | None:
    """The next message's text (without its final newline), or None at end of stream.

    A line holding only decimal digits is a length header: exactly that many bytes follow and the
    trailing newline is dropped. Raises `ProtocolError` for a truncated message or an absurd length.
    """
    line = await reader.readline()
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError(f"connection ended inside a line: {line[:80]!r}")
    stripped = line.rstrip(b"\r\n")
    if stripped.isdigit():
        length = int(stripped)
        if length > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"long message of {length} bytes is over the limit")
        try:
            payload = await reader.readexactly(length)
        except asyncio.IncompleteReadError as error:
            raise ProtocolError(f"long message truncated: {len(error.partial)} of {length} bytes") from error
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        elif payload.endswith(b"\n"):
            payload = payload[:-1]
        return payload.decode("utf-8", errors="replace")
    return stripped.decode("utf-8", errors="replace")


def split_message(text: str) -> tuple[str, str]:
    """`(name, argument text)`: the name is the text up to the first space or newline."""
    for index, char in enumerate(text):
        if char in " \t\n":
            return text[:index], text[index + 1 :].strip()
    return text, ""


def parse_body(text: str) -> Any:
    """A reply body: None when empty, the JSON value when it parses, else the text itself."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_reply(text: str) -> Reply:
    """Parse one server reply; raises `ProtocolError` when its first word is not a reply kind."""
    name, rest = split_message(text)
    try:
        kind = ReplyKind(name)
    except ValueError as error:
        raise ProtocolError(f"not a server reply: {text[:120]!r}") from error
    return Reply(kind, parse_body(rest))


def format_reply(kind: ReplyKind | str, body: Any = None) -> bytes:
    """The framed bytes of a reply (used by the stand-in server; a `str` body is sent as a JSON string)."""
    text = str(kind) if body is None else f"{kind} {json.dumps(body, ensure_ascii=False)}"
    return frame(text)

"""The Isabelle server's framing: short and long messages, byte counts in UTF-8, reply parsing."""

from __future__ import annotations

import asyncio

import pytest

from lean_env.isabelle.protocol import (
    ProtocolError,
    ReplyKind,
    encode_message,
    frame,
    parse_reply,
    read_message,
)


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_short_message_is_one_line() -> None:
    assert encode_message("echo", {"a": 1}) == b'echo {"a": 1}\n'
    assert encode_message("help") == b"help\n"


def test_long_message_length_counts_utf8_bytes_and_the_final_newline() -> None:
    text = "echo " + '"' + "α" * 60 + '"'  # 60 two-byte characters: over 100 bytes, 66 characters
    framed = frame(text)
    payload = text.encode("utf-8")
    assert framed == f"{len(payload) + 1}\n".encode() + payload + b"\n"
    assert len(payload) + 1 != len(text) + 1


def test_a_newline_forces_the_long_form_even_when_short() -> None:
    assert frame("a\nb") == b"4\na\nb\n"


async def test_round_trips_of_both_forms() -> None:
    messages = ["OK", 'OK {"task":"x"}', "NOTE " + '"' + "ü" * 200 + '"', 'echo "two\nlines"']
    data = b"".join(frame(m) for m in messages)
    reader = _reader(data)
    assert [await read_message(reader) for _ in messages] == messages
    assert await read_message(reader) is None


async def test_truncated_long_message_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="truncated"):
        await read_message(_reader(b"50\nshort\n"))


def test_reply_bodies_json_or_plain_text() -> None:
    assert parse_reply('OK {"task": "t1"}').task == "t1"
    assert parse_reply("ERROR \"Bad command 'x'\"").body == "Bad command 'x'"
    assert parse_reply("FAILED not json at all").body == "not json at all"
    assert parse_reply("OK").body is None
    assert parse_reply("FINISHED [1, 2]").kind is ReplyKind.FINISHED
    with pytest.raises(ProtocolError):
        parse_reply("HELLO there")

"""`IsabelleClient` against the protocol stand-in: handshake, tasks, cancel on timeout, dropped connections."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from lean_env.errors import LeanEnvError
from lean_env.isabelle.checker import start_server
from lean_env.isabelle.client import IsabelleClient
from lean_env.isabelle.errors import (
    IsabelleAuthError,
    IsabelleCommandError,
    IsabelleConnectionLost,
    IsabelleTaskTimeout,
)
from tests.stand_ins.isabelle_server import IsabelleStandIn, Rule, Script

REPO_ROOT = Path(__file__).resolve().parents[2]


async def _client(server: IsabelleStandIn) -> IsabelleClient:
    return await IsabelleClient.connect(server.host, server.port, server.password, timeout=5)


async def _session(client: IsabelleClient) -> str:
    result = await client.task("session_start", {"session": "HOL"}, timeout=5)
    assert result.ok
    return str(result.result["session_id"])


def _theory(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.thy").write_text(f"theory {name} imports Main begin\n{body}\nend\n", encoding="utf-8")


async def test_right_password_gets_ok_and_commands_answer() -> None:
    async with IsabelleStandIn() as server, await _client(server) as client:
        assert client.hello["isabelle_name"] == "Isabelle2025"
        long_text = "ß" * 300  # the reply comes back as a long message
        assert await client.command("echo", {"text": long_text}) == {"text": long_text}
        assert "use_theories" in await client.command("help")


async def test_wrong_password_is_a_clear_error() -> None:
    async with IsabelleStandIn() as server:
        with pytest.raises(IsabelleAuthError, match="closed the connection after the password"):
            await IsabelleClient.connect(server.host, server.port, "wrong", timeout=5)


async def test_unknown_command_and_bad_argument_are_command_errors() -> None:
    async with IsabelleStandIn() as server, await _client(server) as client:
        with pytest.raises(IsabelleCommandError, match="Bad command 'frobnicate'"):
            await client.command("frobnicate")
        with pytest.raises(IsabelleCommandError, match="Malformed argument"):
            await client.command("echo", "bare words")
        assert await client.command("echo", [1]) == [1]  # the connection still works


async def test_task_collects_notes_then_finishes(tmp_path: Path) -> None:
    async with IsabelleStandIn() as server, await _client(server) as client:
        session = await _session(client)
        _theory(tmp_path, "A", 'lemma "True" by simp')
        seen: list[object] = []
        result = await client.task(
            "use_theories",
            {"session_id": session, "theories": ["A"], "master_dir": str(tmp_path)},
            timeout=5,
            on_note=seen.append,
        )
        assert result.ok and result.result["ok"] is True
        assert [note["message"] for note in result.notes] == ["theory Draft.A 0%", "theory Draft.A 100%"]
        assert list(result.notes) == seen


async def test_timeout_cancels_the_task_on_the_same_connection(tmp_path: Path) -> None:
    script = Script(rules=[Rule("HANG", outcome="hang")])
    async with IsabelleStandIn(script) as server, await _client(server) as client:
        session = await _session(client)
        _theory(tmp_path, "H", "(* HANG *)")
        args = {"session_id": session, "theories": ["H"], "master_dir": str(tmp_path)}
        with pytest.raises(IsabelleTaskTimeout) as caught:
            await client.task("use_theories", args, timeout=0.3, cancel_grace=5)
        assert caught.value.cancelled
        assert server.cancelled == [caught.value.task_id]
        assert isinstance(caught.value, LeanEnvError)
        assert await client.command("echo", '"still alive"') == "still alive"


async def test_cancel_from_another_connection_does_nothing(tmp_path: Path) -> None:
    script = Script(rules=[Rule("SLOW", outcome="ok", delay_s=0.3)])
    async with IsabelleStandIn(script) as server, await _client(server) as owner, await _client(server) as other:
        session = await _session(owner)
        _theory(tmp_path, "S", "(* SLOW *)")
        args = {"session_id": session, "theories": ["S"], "master_dir": str(tmp_path)}
        running = asyncio.create_task(owner.task("use_theories", args, timeout=5))
        await asyncio.sleep(0.1)
        ident = next(iter(next(c for c in server._open if c.tasks).tasks))
        await other.cancel(ident)
        assert (await running).ok and server.cancelled == []


async def test_dropped_connection_mid_task_raises_connection_lost(tmp_path: Path) -> None:
    script = Script(rules=[Rule("DROP", outcome="drop")])
    async with IsabelleStandIn(script) as server, await _client(server) as client:
        session = await _session(client)
        _theory(tmp_path, "D", "(* DROP *)")
        args = {"session_id": session, "theories": ["D"], "master_dir": str(tmp_path)}
        with pytest.raises(IsabelleConnectionLost):
            await client.task("use_theories", args, timeout=5)
        assert client.closed
        with pytest.raises(IsabelleConnectionLost):
            await client.command("echo", [1])


async def test_concurrent_tasks_on_one_connection_are_told_apart(tmp_path: Path) -> None:
    script = Script(rules=[Rule("FAIL", outcome="error", error="boom", delay_s=0.05), Rule("SLOW", "ok", delay_s=0.2)])
    async with IsabelleStandIn(script) as server, await _client(server) as client:
        session = await _session(client)
        names = [f"T{i}" for i in range(6)]
        for index, name in enumerate(names):
            _theory(tmp_path, name, "(* FAIL *)" if index % 2 else "(* SLOW *)")
        results = await asyncio.gather(
            *(
                client.task("use_theories", {"session_id": session, "theories": [n], "master_dir": str(tmp_path)}, 5)
                for n in names
            )
        )
        assert [r.result["ok"] for r in results] == [index % 2 == 0 for index in range(6)]
        assert [r.result["nodes"][0]["theory_name"] for r in results] == [f"Draft.{n}" for n in names]
        assert server.max_running == 6


async def test_start_server_parses_the_address_line(tmp_path: Path) -> None:
    fake = tmp_path / "isabelle"
    fake.write_text(
        f'#!/bin/sh\ncd {REPO_ROOT}\nexec {sys.executable} -m tests.stand_ins.isabelle_server "$@" --password pw\n'
    )
    fake.chmod(0o755)
    info = await start_server(fake, "mine", 0)
    try:
        assert (info.name, info.host, info.password) == ("mine", "127.0.0.1", "pw")
        async with await IsabelleClient.connect(info.host, info.port, info.password, timeout=5) as client:
            assert await client.command("echo", [2]) == [2]
            await client.command("shutdown")
        assert info.process is not None
        assert await asyncio.wait_for(info.process.wait(), 10) == 0
    finally:
        if info.process is not None and info.process.returncode is None:
            info.process.kill()
            await info.process.wait()

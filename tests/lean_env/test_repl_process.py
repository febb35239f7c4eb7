"""One REPL worker process against the stand-in: framing, deadlines, crashes, memory, start-up."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from lean_env.errors import BackendCrashed, BackendStartError, BackendTimeout
from lean_env.repl import CommandReply, ReplError, ReplProcess, TacticReply, decode_reply, split_replies
from tests.shared_data import needs_shared
from tests.stand_ins.fake_repl import (
    DEFAULT_TRANSCRIPT_DIR,
    linear_theorem,
    split_requests,
    stand_in_config,
    write_script,
)

HEADER = "import Mathlib\nopen Real\n\n"
STATEMENT = "theorem t1 (p : Prop) (hp : p) : p := by"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "script.json", [linear_theorem(STATEMENT, ["intro x", "exact hp"])])


async def started(script: Path, flags: tuple[str, ...] = (), header: str = HEADER, **fields: Any) -> ReplProcess:
    process = ReplProcess(stand_in_config(script=script, flags=flags, **fields), header)
    await process.start()
    return process


async def open_theorem(process: ReplProcess) -> int:
    reply = await process.command(STATEMENT + " sorry", env=process.header_env, timeout=5)
    assert isinstance(reply, CommandReply)
    return reply.sorries[-1].proof_state


def gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@needs_shared(DEFAULT_TRANSCRIPT_DIR)
@pytest.mark.parametrize("name", ["app_type_mismatch2", "name_generator", "self_proof_check", "infotree_theorem"])
async def test_client_reads_real_multi_line_replies(name: str) -> None:
    requests = split_requests((DEFAULT_TRANSCRIPT_DIR / f"{name}.in").read_text(encoding="utf-8"))
    expected = split_replies((DEFAULT_TRANSCRIPT_DIR / f"{name}.expected.out").read_text(encoding="utf-8"))
    process = ReplProcess(stand_in_config(transcript=name), header="")
    await process.start()
    try:
        for request, reply_text in zip(requests, expected, strict=True):
            assert await process.request(json.loads(request), timeout=5) == decode_reply(reply_text)
    finally:
        await process.close()
    assert not process.alive


async def test_header_is_elaborated_once_and_its_env_reused(script: Path) -> None:
    process = await started(script)
    try:
        assert process.header_env == 0
        first = await open_theorem(process)
        second = await open_theorem(process)
        assert first != second  # each command gets its own proof state
        reply = await process.tactic("intro x", first, timeout=5)
        assert isinstance(reply, TacticReply) and reply.goals
        assert process.requests == 4
    finally:
        await process.close()


async def test_timeout_kills_the_process_group_and_the_worker_is_never_reused(script: Path) -> None:
    process = await started(script, ("--hang-on", "intro x"))
    proof_state = await open_theorem(process)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(BackendTimeout) as caught:
        await process.tactic("intro x", proof_state, timeout=0.3)
    assert loop.time() - began < 3
    assert "hanging on 'intro x'" in caught.value.stderr  # stderr rides along
    assert not process.alive and process.death == "timeout"
    assert gone(process.pid)
    with pytest.raises(BackendCrashed):
        await process.tactic("exact hp", proof_state, timeout=5)


async def test_crash_in_the_middle_of_a_reply_raises_with_stderr(script: Path) -> None:
    process = await started(script, ("--crash-on", "intro x"))
    proof_state = await open_theorem(process)
    with pytest.raises(BackendCrashed) as caught:
        await process.tactic("intro x", proof_state, timeout=5)
    assert "middle of a reply" in caught.value.message
    assert "exited with code 1" in caught.value.message
    assert "INTERNAL PANIC" in caught.value.stderr
    assert "INTERNAL PANIC" in str(caught.value)
    assert not process.alive and process.death == "crash"


async def test_runaway_memory_is_stopped_by_the_address_space_limit(script: Path) -> None:
    # Without the limit the stand-in would allocate up to its cap and then hang into the timeout.
    process = await started(script, ("--runaway-on", "intro x"), memory_limit_mb=300)
    proof_state = await open_theorem(process)
    with pytest.raises(BackendCrashed) as caught:
        await process.tactic("intro x", proof_state, timeout=20)
    assert "MemoryError" in caught.value.stderr
    assert not process.alive


async def test_rss_of_the_process_tree_is_measured(script: Path) -> None:
    process = await started(script, ("--grow-mb-per-request", "30"))
    try:
        before = process.rss_bytes()
        for _ in range(3):
            await open_theorem(process)
        assert process.rss_bytes() - before > 60 * 2**20
    finally:
        await process.close()
    assert process.rss_bytes() == 0


async def test_start_failure_carries_stderr(script: Path) -> None:
    process = ReplProcess(stand_in_config(script=script, flags=("--exit-at-start", "3")), HEADER)
    with pytest.raises(BackendStartError) as caught:
        await process.start()
    assert "cannot start (simulated start failure)" in caught.value.stderr
    assert not process.alive


async def test_header_that_does_not_elaborate_is_a_start_error(script: Path) -> None:
    process = ReplProcess(stand_in_config(script=script, flags=("--header-error", "unknown package 'Mathlib'")), HEADER)
    with pytest.raises(BackendStartError) as caught:
        await process.start()
    assert "unknown package 'Mathlib'" in caught.value.message
    assert not process.alive


async def test_missing_command_is_a_start_error(tmp_path: Path) -> None:
    config = stand_in_config(script=tmp_path / "none.json")
    config = type(config)(command=(str(tmp_path / "no-such-repl"),), cwd=tmp_path)
    with pytest.raises(BackendStartError, match="cannot run"):
        await ReplProcess(config, HEADER).start()


async def test_cancelled_request_is_still_read_to_its_end(script: Path) -> None:
    # If the reply of a cancelled request stayed in the pipe, the next request would read it.
    process = await started(script, ("--latency-ms", "150"))
    try:
        proof_state = await open_theorem(process)
        task = asyncio.ensure_future(process.tactic("intro x", proof_state, timeout=5))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert process.busy
        reply = await process.tactic("nonsense", proof_state, timeout=5)
        assert isinstance(reply, TacticReply) and reply.errors  # the answer to *this* request
        assert process.alive
    finally:
        await process.close()


async def test_unknown_proof_state_and_environment_are_reply_values(script: Path) -> None:
    process = await started(script)
    try:
        unknown_state = await process.tactic("intro x", 999, timeout=5)
        assert isinstance(unknown_state, ReplError) and unknown_state.is_unknown_proof_state
        unknown_env = await process.command(STATEMENT + " sorry", env=42, timeout=5)
        assert isinstance(unknown_env, ReplError) and unknown_env.is_unknown_environment
        assert process.alive
    finally:
        await process.close()

"""The REPL wire format against real REPL sessions, and what each reply means for the search."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lean_env.repl.wire import (
    CommandReply,
    ProofStatus,
    ReplError,
    ReplProtocolError,
    TacticReply,
    decode_reply,
    encode_request,
    split_replies,
    tactic_outcome,
)
from lean_env.types import Progress, ProofClosed, ProofState, Severity, TacticError, TacticErrorKind
from tests.shared_data import needs_shared
from tests.stand_ins.fake_repl import DEFAULT_TRANSCRIPT_DIR, lean_pretty, split_requests, stand_in_command

TRANSCRIPTS = DEFAULT_TRANSCRIPT_DIR
needs_transcripts = needs_shared(TRANSCRIPTS)


def transcript_names() -> list[str]:
    if not TRANSCRIPTS.is_dir():
        return []
    return sorted(p.name[: -len(".expected.out")] for p in TRANSCRIPTS.glob("*.expected.out"))


def replies_of(name: str) -> list[str]:
    return split_replies((TRANSCRIPTS / f"{name}.expected.out").read_text(encoding="utf-8"))


def reply(name: str, index: int) -> CommandReply | TacticReply | ReplError:
    return decode_reply(replies_of(name)[index])


def step(name: str, index: int) -> TacticReply | ReplError:
    parsed = reply(name, index)
    assert isinstance(parsed, TacticReply | ReplError)
    return parsed


@needs_transcripts
def test_every_transcript_pair_is_found() -> None:
    # The data set ships 55 request/reply pairs; a silent glob mismatch must not skip everything.
    assert len(transcript_names()) >= 50


@needs_transcripts
@pytest.mark.parametrize("name", transcript_names())
def test_every_real_reply_parses_into_typed_replies(name: str) -> None:
    replies = replies_of(name)
    requests = split_requests((TRANSCRIPTS / f"{name}.in").read_text(encoding="utf-8"))
    assert len(replies) == len(requests)
    for request_text, text in zip(requests, replies, strict=True):
        parsed = decode_reply(text + "\n\n")
        request = json.loads(request_text)
        if "proofState" in request or "unpickleProofStateFrom" in request:
            assert isinstance(parsed, TacticReply | ReplError), text
        else:
            assert isinstance(parsed, CommandReply | ReplError), text
        if isinstance(parsed, TacticReply) and parsed.proof_status is not None:
            assert parsed.status is not ProofStatus.UNRECOGNISED, parsed.proof_status


@needs_transcripts
@pytest.mark.parametrize("name", transcript_names())
def test_stand_in_replays_each_transcript_byte_for_byte(name: str) -> None:
    source = (TRANSCRIPTS / f"{name}.in").read_bytes()
    expected = (TRANSCRIPTS / f"{name}.expected.out").read_bytes()
    done = subprocess.run(stand_in_command(transcript=name), input=source, capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == expected


@needs_transcripts
@pytest.mark.parametrize("name", transcript_names())
def test_stand_in_layout_reproduces_lean_json_pretty(name: str) -> None:
    # The scripted stand-in prints its own replies with this layout; it must be Lean's, exactly.
    for text in replies_of(name):
        assert lean_pretty(json.loads(text)) == text


@needs_transcripts
def test_command_reply_carries_sorries_messages_and_env() -> None:
    parsed = reply("assumption_proof", 0)
    assert isinstance(parsed, CommandReply)
    assert parsed.env == 0
    (sorry,) = parsed.sorries
    assert sorry.proof_state == 0
    assert sorry.goal == "x : Nat\nh1 : x = 2\n⊢ x = 2"
    assert (sorry.line, sorry.column) == (1, 49)
    (warning,) = parsed.messages
    assert warning.severity is Severity.WARNING
    assert warning.text == "declaration uses `sorry`"
    assert (warning.line, warning.column) == (1, 8)
    assert parsed.errors == ()


@needs_transcripts
def test_all_tactics_and_traces_are_parsed() -> None:
    parsed = reply("all_tactics", 0)
    assert isinstance(parsed, CommandReply)
    assert [t.tactic for t in parsed.tactics] == ["have t := 37", "exact t"]
    assert parsed.tactics[0].used_constants == ("instOfNatNat", "Nat", "OfNat.ofNat")
    traced = reply("trace_simp", 5)
    assert isinstance(traced, TacticReply)
    assert traced.traces == ("37",)
    assert traced.goals == ("⊢ f = 37",)


@needs_transcripts
def test_the_trap_is_a_lean_error_not_a_closed_proof() -> None:
    # invalid_tactic: `exact my_fake_premise` comes back with goals [] and "Incomplete: contains sorry".
    parsed = reply("invalid_tactic", 1)
    assert isinstance(parsed, TacticReply)
    assert parsed.goals == ()
    assert parsed.status is ProofStatus.CONTAINS_SORRY
    outcome = tactic_outcome(parsed)
    assert outcome == TacticError(TacticErrorKind.LEAN_ERROR, "Unknown identifier `my_fake_premise`")


@needs_transcripts
def test_error_message_beats_any_status() -> None:
    # name_generator: an error message alongside "contains metavariable(s)".
    parsed = step("name_generator", 7)
    assert isinstance(parsed, TacticReply) and parsed.errors
    outcome = tactic_outcome(parsed)
    assert isinstance(outcome, TacticError) and outcome.kind is TacticErrorKind.LEAN_ERROR
    assert "unsolved goals" in outcome.message


@needs_transcripts
def test_completed_closes_and_open_goals_progress() -> None:
    closed = step("proof_branching", 4)
    assert tactic_outcome(closed) == ProofClosed()
    opened = step("by_cases", 1)
    outcome = tactic_outcome(opened, handle="h")
    assert isinstance(outcome, Progress)
    assert outcome.state.goals == ("case pos\nx : Int\nh : x < 0\n⊢ x = x", "case neg\nx : Int\nh : ¬x < 0\n⊢ x = x")
    assert outcome.state.handle == "h"
    assert outcome.state == ProofState.from_goals(list(outcome.state.goals))


@needs_transcripts
def test_sorry_kernel_error_and_metavariables_are_not_progress() -> None:
    sorry = tactic_outcome(step("tactic_mode_sorry", 1))
    assert isinstance(sorry, TacticError) and sorry.kind is TacticErrorKind.USED_SORRY
    # A tactic that introduces a sorried `have` but leaves real goals is still a sorry.
    have_sorry = tactic_outcome(step("sorry_hypotheses", 1))
    assert isinstance(have_sorry, TacticError) and have_sorry.kind is TacticErrorKind.USED_SORRY
    kernel = tactic_outcome(step("self_proof_exact_check", 2))
    assert isinstance(kernel, TacticError) and kernel.kind is TacticErrorKind.LEAN_ERROR
    assert kernel.message.startswith("Error: kernel type check failed")
    metavariables = tactic_outcome(step("app_type_mismatch", 4))
    assert isinstance(metavariables, TacticError) and metavariables.kind is TacticErrorKind.LEAN_ERROR


@needs_transcripts
def test_request_errors_are_values() -> None:
    unknown_state = reply("unknown_proof_state", 1)
    assert isinstance(unknown_state, ReplError) and unknown_state.is_unknown_proof_state
    unknown_env = reply("unknown_environment", 0)
    assert isinstance(unknown_env, ReplError) and unknown_env.is_unknown_environment
    lean_error = step("unknown_tactic", 1)
    assert isinstance(lean_error, ReplError) and lean_error.is_lean_error
    assert tactic_outcome(lean_error) == TacticError(
        TacticErrorKind.LEAN_ERROR, "Lean error:\n<input>:1:1: unknown tactic"
    )


def test_old_repl_without_proof_status_closes_on_no_goals() -> None:
    closed = decode_reply('{"proofState": 3, "goals": []}')
    open_goal = decode_reply('{"proofState": 3, "goals": ["⊢ p"]}')
    assert isinstance(closed, TacticReply) and isinstance(open_goal, TacticReply)
    assert closed.proof_status is None and closed.status is None
    assert tactic_outcome(closed) == ProofClosed()
    progress = tactic_outcome(open_goal)
    assert isinstance(progress, Progress) and progress.state.pp == "⊢ p"


def test_requests_are_one_json_line_plus_a_blank_line() -> None:
    data = encode_request({"cmd": "theorem t : True := by\n\n  trivial", "env": 0})
    assert data.endswith(b"}\n\n")
    assert data.count(b"\n") == 2  # newlines inside the command are escaped, never raw
    assert json.loads(data) == {"cmd": "theorem t : True := by\n\n  trivial", "env": 0}
    assert "⊢".encode() in encode_request({"tactic": "show ⊢", "proofState": 1})
    with pytest.raises(ValueError):
        encode_request({})


@pytest.mark.parametrize(
    "text",
    [
        '{"proofStatus": "Completed", "proofState',
        "[1, 2]",
        '{"something": 1}',
        '{"env": "zero"}',
        '{"env": 0, "messages": [{"severity": "loud", "data": "x"}]}',
        '{"proofState": 1, "goals": "not a list"}',
    ],
)
def test_malformed_replies_raise_protocol_errors(text: str) -> None:
    with pytest.raises(ReplProtocolError):
        decode_reply(text)


def test_split_replies_keeps_each_reply_text() -> None:
    stream = '{"env": 0}\n\n{"messages":\n [{"severity": "info",\n   "data": "x"}],\n "env": 1}\n\n'
    assert split_replies(stream) == [
        '{"env": 0}',
        '{"messages":\n [{"severity": "info",\n   "data": "x"}],\n "env": 1}',
    ]


def test_replay_answers_a_differing_request_with_an_error(tmp_path: Path) -> None:
    (tmp_path / "mini.in").write_text('{"cmd": "def f := 1"}\n', encoding="utf-8")
    (tmp_path / "mini.expected.out").write_text('{"env": 0}\n\n', encoding="utf-8")
    done = subprocess.run(
        stand_in_command(transcript=str(tmp_path / "mini")),
        input=b'{"cmd": "def f := 2"}\n\n',
        capture_output=True,
        timeout=30,
        check=False,
    )
    parsed = decode_reply(done.stdout)
    assert isinstance(parsed, ReplError) and "differs from transcript" in parsed.message

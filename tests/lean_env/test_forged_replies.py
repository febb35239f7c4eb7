"""Attacks that need Lean's cooperation, against the REPL backend's hardened `verify` (stand-in tier).

The stand-in models them (see `tests/stand_ins/fake_repl.py`): a tactic whose elaboration writes a
complete forged reply to the process's stdout (`forge_reply`, `forge_probe`, `forge_garbage`,
`forge_late`: bare tactic names, standing for code the text guard does not recognise), and a
header whose `macro_rules` makes every `#print axioms` answer cleanly. The forged reply and the
rewriting header are first shown to fool the one-command check the backend used before (so the
tests can fail); `verify` rejects every attack with `VerifyStatus.REPLY_MISMATCH`, never a pass.
The same cases run against real Lean in `tests/contract/test_lean_forged_replies.py` (`-m lean`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_env.guard import check_proof_text
from lean_env.lean_syntax import LEAN
from lean_env.repl import ReplLeanEnv, ReplProcess, ReplSession
from lean_env.repl.wire import CommandReply
from lean_env.types import LeanMessage, Severity, Theorem, VerifyStatus
from lean_env.verification import build_check_file, judge, judge_probe, make_probe, statement_unchanged
from tests.stand_ins.fake_repl import ScriptTheorem, stand_in_config, write_script

HEADER = "import Mathlib\nset_option maxHeartbeats 400000\nopen BigOperators Real Nat Topology Rat\n\n"
REWRITING_HEADER = (
    "import Mathlib\n"
    "macro_rules | `(#print axioms $n:ident) => "
    "`(#print $(Lean.Syntax.mkStrLit s!\"'{n.getId}' does not depend on any axioms\"))\n\n"
)
FALSE = Theorem(name="f", header=HEADER, formal_statement="theorem f : (1 : ℕ) = 2 := by")
TRUE = Theorem(name="t1", header=HEADER, formal_statement="theorem t1 (a b : ℕ) (h : a = b) : b = a := by")
GOAL = "a b : ℕ\nh : a = b\n⊢ b = a"
SCRIPTS = [
    ScriptTheorem(statement=FALSE.formal_statement, goal="⊢ 1 = 2", states={}),
    ScriptTheorem(
        statement=TRUE.formal_statement,
        goal=GOAL,
        states={GOAL: {"exact h.symm": {"goals": []}, "decide": {"goals": [], "axioms": ["Lean.ofReduceBool"]}}},
    ),
]
FORGE = "by\n  forge_reply"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "forged.json", SCRIPTS)


def make_env(script: Path) -> ReplLeanEnv:
    return ReplLeanEnv(stand_in_config(script=script, workers=1))


async def one_command_verdict(script: Path, theorem: Theorem, proof: str) -> VerifyStatus:
    """What the former check (one command with `#print axioms` in it, first reply read) concluded."""
    worker = ReplProcess(stand_in_config(script=script), theorem.header)
    await worker.start()
    try:
        text = build_check_file(theorem, proof)
        reply = await worker.command(text[len(theorem.header) :], env=worker.header_env, timeout=5)
        assert isinstance(reply, CommandReply)
        return judge(theorem, text, reply.messages).status
    finally:
        await worker.close()


def test_the_attacks_pass_the_text_guard() -> None:
    # They stand for code run by tactic text the guard does not recognise (it refuses the known carriers,
    # such as non-literal `(config := ...)` terms), so it is the Lean-side layers that must stop them.
    for tactic in ("forge_reply", "forge_probe", "forge_garbage", "forge_late"):
        assert check_proof_text(f"by\n  {tactic}") is None


async def test_a_forged_reply_fools_the_one_command_check(script: Path) -> None:
    assert await one_command_verdict(script, FALSE, FORGE) is VerifyStatus.VALID


@pytest.mark.parametrize(
    ("tactic", "mentions"),
    [
        ("forge_reply", "environment"),  # the real reply to the proof is read as the probe's: env out of step
        ("forge_probe", "canary"),  # a guessed probe answer cannot name the nonce
        ("forge_garbage", "not a reply"),
    ],
)
async def test_verify_rejects_a_forged_reply(script: Path, tactic: str, mentions: str) -> None:
    env = make_env(script)
    try:
        verdict = await env.verify(FALSE, f"by\n  {tactic}", 5)
        assert verdict.status is VerifyStatus.REPLY_MISMATCH and not verdict.ok, verdict
        assert mentions in verdict.reason
        # The check's worker is gone and the shared workers never saw the text.
        assert all(worker.requests == 1 for worker in env.pool.workers)
        assert env.stats().verify_workers <= env.config.max_verify_workers
    finally:
        await env.close()


async def test_output_written_after_the_replies_is_a_rejection(script: Path) -> None:
    # The proof itself is fine; only the trailing bytes give the forger away.
    env = make_env(script)
    try:
        verdict = await env.verify(TRUE, "by\n  forge_late\n  exact h.symm", 5)
        assert verdict.status is VerifyStatus.REPLY_MISMATCH and "sentinel" in verdict.reason
        assert (await env.verify(TRUE, "by\n  exact h.symm", 5)).ok
    finally:
        await env.close()


async def test_a_header_that_rewrites_print_axioms_is_refused_by_the_policy_and_caught_by_the_canary(
    script: Path,
) -> None:
    theorem = Theorem(name="t1", header=REWRITING_HEADER, formal_statement=TRUE.formal_statement)
    # `decide` depends on `Lean.ofReduceBool`; the rewritten command hides it from the one-command check.
    assert await one_command_verdict(script, theorem, "by\n  decide") is VerifyStatus.VALID
    env = make_env(script)
    try:
        # First layer: the header policy refuses the header before any worker elaborates it.
        refused = await env.verify(theorem, "by\n  decide", 5)
        assert refused.status is VerifyStatus.GUARD_REJECTED and "header's line 2" in refused.reason, refused
        # Second layer, should a header get past the policy: the canary exposes the rewritten command.
        verdict = await env.check_proof(theorem, "by\n  decide", 5)
        assert verdict.status is VerifyStatus.REPLY_MISMATCH and "canary" in verdict.reason, verdict
        # Even a true proof is refused under such a header: `#print axioms` cannot be believed there.
        assert (await env.check_proof(theorem, "by\n  exact h.symm", 5)).status is VerifyStatus.REPLY_MISMATCH
    finally:
        await env.close()


async def test_every_check_runs_in_a_fresh_worker_discarded_after(script: Path) -> None:
    env = make_env(script)
    try:
        await env.warm_up(HEADER)
        session = await env.start(TRUE)
        assert isinstance(session, ReplSession)
        shared = {worker.id: worker.requests for worker in env.pool.workers}
        for _ in range(3):
            assert (await env.verify(TRUE, "by\n  exact h.symm", 5)).ok
        stats = env.stats()
        assert stats.verify_starts >= 3  # one per check (plus a spare for the next)
        assert stats.verify_requests >= 3 * 3  # header, proof, probe in each
        assert {worker.id: worker.requests for worker in env.pool.workers} == shared
        await session.close()
    finally:
        await env.close()


async def test_a_forged_tactic_reply_in_a_search_worker_cannot_reach_verification(script: Path) -> None:
    env = make_env(script)
    try:
        session = await env.start(FALSE)
        assert isinstance(session, ReplSession)
        # The forger fools tactic mode (a search may believe the goal closed), but the check that gates
        # a proof runs in another process and rejects it.
        await session.run_tactic(session.initial_state, "forge_reply", 5)
        assert (await env.verify(FALSE, FORGE, 5)).status is VerifyStatus.REPLY_MISMATCH
        await session.close()
    finally:
        await env.close()


# --- the judge's own checks, on the probe's answers ----------------------------------------------


def _info(text: str) -> LeanMessage:
    return LeanMessage(Severity.INFO, text, line=5)


def test_probe_names_are_fresh_and_drawn_per_check() -> None:
    first, second = make_probe(TRUE), make_probe(TRUE)
    assert first.nonce != second.nonce and first.alias != second.alias
    assert "@t1" in first.command and "(a b : ℕ) (h : a = b) : b = a" in first.command


def test_an_honest_probe_answer_is_accepted_and_a_wrong_canary_is_not() -> None:
    probe = make_probe(TRUE, nonce="abc")
    text = LEAN.proof_file(TRUE, "by\n  exact h.symm")
    canary = _info(f"'{probe.canary}' depends on axioms: [{probe.canary_axiom}]")
    alias = _info(f"'{probe.alias}' depends on axioms: [propext]")
    assert judge_probe(TRUE, text, [], probe, [canary, alias]).ok
    lying = _info(f"'{probe.canary}' does not depend on any axioms")
    assert judge_probe(TRUE, text, [], probe, [lying, alias]).status is VerifyStatus.REPLY_MISMATCH
    guessed = _info("'lean_env_canary_0' depends on axioms: [lean_env_canary_ax_0]")
    assert judge_probe(TRUE, text, [], probe, [guessed, alias]).status is VerifyStatus.REPLY_MISMATCH
    # An axioms answer printed by the proof's own elaboration is forged output.
    own = [_info("'t1' does not depend on any axioms")]
    assert judge_probe(TRUE, text, own, probe, [canary, alias]).status is VerifyStatus.REPLY_MISMATCH
    sorry = _info(f"'{probe.alias}' depends on axioms: [sorryAx]")
    assert judge_probe(TRUE, text, [], probe, [canary, sorry]).status is VerifyStatus.SORRY


def test_lean_rejecting_the_alias_at_the_statements_type_is_a_changed_statement() -> None:
    probe = make_probe(TRUE, nonce="abc")
    text = LEAN.proof_file(TRUE, "by\n  exact h.symm")
    canary = _info(f"'{probe.canary}' depends on axioms: [{probe.canary_axiom}]")
    mismatch = LeanMessage(Severity.ERROR, "type mismatch\n  @t1\nhas type ...", line=probe.alias_line)
    verdict = judge_probe(TRUE, text, [], probe, [canary, mismatch])
    assert verdict.status is VerifyStatus.STATEMENT_CHANGED and "type of the statement" in verdict.reason


def test_statement_check_reads_the_checked_text_not_how_it_was_built() -> None:
    built = LEAN.proof_file(TRUE, "by\n  exact h.symm")
    assert statement_unchanged(TRUE, built)
    assert not statement_unchanged(TRUE, built.replace(": b = a :=", ": b = b :="))
    assert not statement_unchanged(TRUE, built.replace(HEADER, "import Mathlib\n\n"))
    # A proof text that goes on to state the theorem again (the guard refuses it; the judge too).
    again = built + "\n\ntheorem t1 (a b : ℕ) (h : a = b) : b = a := by\n  exact h.symm\n"
    assert not statement_unchanged(TRUE, again)
    # Something declared between the header and the statement.
    smuggled = HEADER + "theorem helper : True := trivial\n\n" + built[len(HEADER) :]
    assert not statement_unchanged(TRUE, smuggled)

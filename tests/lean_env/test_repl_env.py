"""`ReplLeanEnv` over the scripted REPL stand-in: tactic outcomes, replay, verification, search, load."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lean_env.errors import BackendCrashed, BackendStartError
from lean_env.lean_syntax import LEAN
from lean_env.protocol import LeanEnv, ProofSession
from lean_env.repl import ReplConfig, ReplLeanEnv, ReplSession
from lean_env.types import (
    InvalidStatement,
    Progress,
    ProofClosed,
    ProofState,
    TacticError,
    TacticErrorKind,
    Theorem,
    VerifyStatus,
)
from search import BestFirstSearch, SearchConfig, SearchStatus
from tests.stand_ins.fake_repl import ScriptTheorem, generator_table, linear_theorem, stand_in_config, write_script
from tests.stand_ins.scripted import ScriptedGenerator

HEADER = "import Mathlib\nset_option maxHeartbeats 400000\nopen BigOperators Real Nat Topology Rat\n\n"
GOAL = "a b : ℕ\nh : a = b\n⊢ b = a"
AFTER_SUBST = "a : ℕ\n⊢ a = a"
T1 = Theorem(name="t1", header=HEADER, formal_statement="theorem t1 (a b : ℕ) (h : a = b) : b = a := by")
T1_SCRIPT = ScriptTheorem(
    statement=T1.formal_statement,
    goal=GOAL,
    states={
        GOAL: {
            "subst h": AFTER_SUBST,
            "exact h.symm": {"goals": []},
            "bad": {"error": "Unknown identifier `bad`"},
            "exact?": {"lean_error": "`exact?` could not close the goal."},
            "cheat": {"sorry": True},
            "rw [self]": {"kernel_error": "declaration has free variables"},
            "refine ?_": {"metavariables": True},
            "constructor": {"goals": ["case left\n⊢ b ≤ a", "case right\n⊢ a ≤ b"]},
            "decide": {"goals": [], "axioms": ["Lean.ofReduceBool"]},
            "unsound": {"goals": [], "axioms": ["sorryAx"]},
            "slow": {"goals": []},
        },
        AFTER_SUBST: {"rfl": {"goals": []}},
    },
)
STEPS = ["step_one", "step_two", "step_three", "step_four", "step_five"]
T2 = Theorem(name="t2", header=HEADER, formal_statement="theorem t2 (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by")
T2_SCRIPT = linear_theorem(T2, STEPS, dead_ends={"nlinarith": {"error": "linarith failed"}})
render_proof = LEAN.render_tactics


def theorem_of(script: ScriptTheorem, name: str) -> Theorem:
    return Theorem(name=name, header=HEADER, formal_statement=script.statement)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "script.json", [T1_SCRIPT, T2_SCRIPT])


def make_env(script: Path, flags: tuple[str, ...] = (), **fields: Any) -> ReplLeanEnv:
    fields.setdefault("workers", 1)
    return ReplLeanEnv(stand_in_config(script=script, flags=flags, **fields))


async def walk(session: ProofSession, tactics: list[str], timeout: float = 5) -> ProofState:
    state = session.initial_state
    for tactic in tactics:
        outcome = await session.run_tactic(state, tactic, timeout)
        assert isinstance(outcome, Progress), (tactic, outcome)
        state = outcome.state
    return state


async def test_protocol_and_initial_state(script: Path) -> None:
    env = make_env(script)
    try:
        assert isinstance(env, LeanEnv)
        session = await env.start(T1)
        assert isinstance(session, ProofSession)
        assert session.theorem is T1
        assert session.initial_state == ProofState.from_goals([GOAL])
        await session.close()
        await session.close()
    finally:
        await env.close()
        await env.close()


@pytest.mark.parametrize(
    ("tactic", "expected"),
    [
        ("subst h", Progress(ProofState.from_goals([AFTER_SUBST]))),
        ("exact h.symm", ProofClosed()),
        ("constructor", Progress(ProofState.from_goals(["case left\n⊢ b ≤ a", "case right\n⊢ a ≤ b"]))),
        ("bad", TacticError(TacticErrorKind.LEAN_ERROR, "Unknown identifier `bad`")),  # the trap
        ("exact?", TacticError(TacticErrorKind.LEAN_ERROR, "Lean error:\n`exact?` could not close the goal.")),
        ("cheat", TacticError(TacticErrorKind.USED_SORRY, "the tactic used `sorry`")),
        (
            "rw [self]",
            TacticError(TacticErrorKind.LEAN_ERROR, "Error: kernel type check failed: declaration has free variables"),
        ),
        ("refine ?_", TacticError(TacticErrorKind.LEAN_ERROR, "the tactic left unassigned metavariables")),
    ],
)
async def test_tactic_replies_map_to_outcomes(script: Path, tactic: str, expected: object) -> None:
    env = make_env(script)
    try:
        session = await env.start(T1)
        assert await session.run_tactic(session.initial_state, tactic, 5) == expected
    finally:
        await env.close()


async def test_failure_flags_trap_and_unknown_state(script: Path) -> None:
    env = make_env(script, ("--trap-on", "subst h", "--unknown-state-on", "exact h.symm"))
    try:
        session = await env.start(T1)
        trapped = await session.run_tactic(session.initial_state, "subst h", 5)
        assert isinstance(trapped, TacticError) and trapped.kind is TacticErrorKind.LEAN_ERROR
        lost = await session.run_tactic(session.initial_state, "exact h.symm", 5)
        assert lost == TacticError(TacticErrorKind.LEAN_ERROR, "Unknown proof state.")
    finally:
        await env.close()


async def test_unsafe_tactics_never_reach_lean(script: Path) -> None:
    env = make_env(script)
    try:
        session = await env.start(T1)
        before = env.stats().requests
        for tactic in ("sorry", "native_decide", "admit"):
            outcome = await session.run_tactic(session.initial_state, tactic, 5)
            assert isinstance(outcome, TacticError) and outcome.kind is TacticErrorKind.UNSAFE
        assert env.stats().requests == before
    finally:
        await env.close()


async def test_statements_that_do_not_elaborate_or_are_refused_are_values(script: Path) -> None:
    env = make_env(script)
    try:
        unknown = Theorem(name="u", header=HEADER, formal_statement="theorem u : 1 = 2 := by")
        invalid = await env.start(unknown)
        assert isinstance(invalid, InvalidStatement) and invalid.problem_name == "u"
        # Lean's own message is carried, not a summary of ours.
        assert "does not elaborate" in invalid.message and "the script has no theorem" in invalid.message
        smuggled = Theorem(name="v", header=HEADER, formal_statement="theorem v : True := by\n  sorry")
        refused = await env.start(smuggled)
        assert isinstance(refused, InvalidStatement) and "refused" in refused.message and "sorry" in refused.message
        # The pool is fine afterwards: a good statement opens on the same worker.
        assert isinstance(await env.start(T1), ReplSession)
        assert env.stats().crashes == 0
    finally:
        await env.close()


async def test_a_header_that_does_not_elaborate_is_an_infrastructure_failure(script: Path) -> None:
    env = make_env(script, ("--header-error", "unknown package 'Mathlib'"))
    try:
        with pytest.raises(BackendStartError, match="unknown package"):
            await env.start(T1)
    finally:
        await env.close()


async def test_timeout_replaces_the_worker_and_states_replay_transparently(script: Path) -> None:
    env = make_env(script, ("--hang-on", "loop_forever"))
    try:
        session = await env.start(T2)
        assert isinstance(session, ReplSession)
        deep = await walk(session, STEPS[:3])
        home = session.home
        outcome = await session.run_tactic(deep, "loop_forever", 0.3)
        assert outcome == TacticError(TacticErrorKind.TIMEOUT, "tactic timed out after 0.3 s")
        assert home is not None and not home.alive
        # The old states still work: the path is replayed on the fresh worker.
        after = await session.run_tactic(deep, STEPS[3], 5)
        assert isinstance(after, Progress)
        assert await session.run_tactic(after.state, STEPS[4], 5) == ProofClosed()
        assert session.home is not home
        stats = env.stats()
        assert stats.timeouts == 1 and stats.restarts == 1
    finally:
        await env.close()


async def test_recycling_is_invisible_to_the_session(script: Path) -> None:
    env = make_env(script, max_requests_per_worker=4)
    try:
        session = await env.start(T2)
        states = [session.initial_state]
        for tactic in STEPS[:-1]:
            outcome = await session.run_tactic(states[-1], tactic, 5)
            assert isinstance(outcome, Progress)
            states.append(outcome.state)
        # Go back to older states after several recycles: each replays where needed.
        assert await session.run_tactic(states[-1], STEPS[-1], 5) == ProofClosed()
        again = await session.run_tactic(states[1], STEPS[1], 5)
        assert isinstance(again, Progress) and again.state == states[2]
        failed = await session.run_tactic(states[2], "nlinarith", 5)
        assert failed == TacticError(TacticErrorKind.LEAN_ERROR, "linarith failed")
        assert env.stats().recycled >= 2
    finally:
        await env.close()


async def test_crash_is_retried_then_raised_with_stderr_and_the_pool_recovers(script: Path) -> None:
    env = make_env(script, ("--crash-on", "boom"), crash_retries=1)
    try:
        session = await env.start(T2)
        state = await walk(session, STEPS[:2])
        with pytest.raises(BackendCrashed) as caught:
            await session.run_tactic(state, "boom", 5)
        assert "INTERNAL PANIC" in caught.value.stderr
        assert env.stats().crashes == 2  # the first attempt and one retry on a fresh worker
        assert isinstance(await session.run_tactic(state, STEPS[2], 5), Progress)
    finally:
        await env.close()


async def test_a_transient_crash_is_absorbed(script: Path, tmp_path: Path) -> None:
    # The first process crashes on its 4th request; the retry replays the path and carries on.
    flags = ("--crash-at-request", "4", "--crash-once", str(tmp_path / "crashed"))
    env = make_env(script, flags, crash_retries=1)
    try:
        session = await env.start(T2)
        state = await walk(session, STEPS[:4])
        assert await session.run_tactic(state, STEPS[4], 5) == ProofClosed()
        assert env.stats().crashes == 1 and (tmp_path / "crashed").exists()
    finally:
        await env.close()


@pytest.mark.parametrize(
    ("tactics", "status"),
    [
        (["exact h.symm"], VerifyStatus.VALID),
        (["subst h", "rfl"], VerifyStatus.VALID),
        (["subst h"], VerifyStatus.LEAN_ERROR),
        (["bad"], VerifyStatus.LEAN_ERROR),
        (["unsound"], VerifyStatus.SORRY),
        (["cheat"], VerifyStatus.SORRY),
        (["decide"], VerifyStatus.NONSTANDARD_AXIOMS),
    ],
)
async def test_verify_judges_the_whole_file(script: Path, tactics: list[str], status: VerifyStatus) -> None:
    env = make_env(script)
    try:
        verdict = await env.verify(T1, render_proof(tactics), 5)
        assert verdict.status is status, verdict
        # What Lean checked as the proof command; `#print axioms` is asked by a separate probe, not in it.
        assert verdict.checked_text == LEAN.proof_file(T1, render_proof(tactics))
        if status is VerifyStatus.VALID:
            assert verdict.axioms == ("propext", "Classical.choice", "Quot.sound")
    finally:
        await env.close()


async def test_verify_refuses_guarded_text_without_asking_lean(script: Path) -> None:
    env = make_env(script)
    try:
        verdict = await env.verify(T1, "by\n  sorry", 5)
        assert verdict.status is VerifyStatus.GUARD_REJECTED
        assert env.stats().requests == 0
    finally:
        await env.close()


async def test_verify_timeout_is_a_verdict_and_the_worker_is_replaced(script: Path) -> None:
    env = make_env(script, ("--hang-on", "slow"))
    try:
        verdict = await env.verify(T1, render_proof(["slow"]), 0.3)
        assert verdict.status is VerifyStatus.TIMEOUT and not verdict.ok
        assert (await env.verify(T1, render_proof(["exact h.symm"]), 5)).ok
        assert env.stats().timeouts == 1
    finally:
        await env.close()


async def test_best_first_search_proves_a_theorem_through_the_repl(script: Path) -> None:
    env = make_env(script, workers=2)
    generator = ScriptedGenerator(generator_table([T2_SCRIPT]))
    try:
        result = await BestFirstSearch(
            T2, env, generator, SearchConfig(max_expansions=20, num_samples=4, debug_invariants=True)
        ).run()
        assert result.status is SearchStatus.PROVED, result.failure_reason
        assert result.verified and result.tactics == tuple(STEPS)
        assert result.proof == render_proof(STEPS)
        assert result.stats.errors_by_kind.get("lean_error", 0) >= 1  # the dead ends were tried and failed
    finally:
        await env.close()


async def test_search_does_not_report_a_proof_the_whole_file_check_rejects(tmp_path: Path) -> None:
    unsound = linear_theorem(
        "theorem t5 (n : ℕ) : n + 0 = n := by", ["intro_n", "closes"], closing={"goals": [], "axioms": ["sorryAx"]}
    )
    env = make_env(write_script(tmp_path / "unsound.json", [unsound]))
    try:
        theorem = theorem_of(unsound, "t5")
        result = await BestFirstSearch(
            theorem, env, ScriptedGenerator(generator_table([unsound])), SearchConfig(max_expansions=10)
        ).run()
        assert result.status is not SearchStatus.PROVED and result.proof is None
        assert result.rejected_proofs and result.rejected_proofs[0].verify.status is VerifyStatus.SORRY
    finally:
        await env.close()


@pytest.mark.parametrize("spread", [False, True])
async def test_hundreds_of_concurrent_sessions_each_get_their_own_answers(tmp_path: Path, spread: bool) -> None:
    scripts = [
        linear_theorem(
            f"theorem load_{i} (n : ℕ) (h : n = {i}) : n * 1 = {i} := by",
            [f"simp [h] -- {i}"],
            goal=f"n : ℕ\nh : n = {i}\n⊢ n * 1 = {i}",
            dead_ends={"omega": {"error": f"omega failed on {i}"}},
        )
        for i in range(200)
    ]
    env = make_env(
        write_script(tmp_path / "load.json", scripts), ("--latency-ms", "1"), workers=4, spread_tactics=spread
    )

    async def prove(index: int, script: ScriptTheorem) -> None:
        session = await env.start(theorem_of(script, f"load_{index}"))
        assert session.initial_state.pp == script.goal
        failed, closed = await asyncio.gather(
            session.run_tactic(session.initial_state, "omega", 5),
            session.run_tactic(session.initial_state, f"simp [h] -- {index}", 5),
        )
        assert failed == TacticError(TacticErrorKind.LEAN_ERROR, f"omega failed on {index}")
        assert closed == ProofClosed()
        wrong = await session.run_tactic(session.initial_state, f"simp [h] -- {(index + 1) % 200}", 5)
        assert isinstance(wrong, TacticError)
        await session.close()

    try:
        await asyncio.wait_for(asyncio.gather(*(prove(i, s) for i, s in enumerate(scripts))), 60)
        stats = env.stats()
        if spread:
            # A tactic on a guest worker costs at most one extra request here: opening the theorem there.
            assert 4 + 200 * 4 <= stats.requests <= 4 + 200 * 4 + 200 * 3
        else:
            assert stats.requests == 4 + 200 * 4  # headers, then start + 3 tactics per session, exactly
        assert stats.crashes == 0 and stats.timeouts == 0 and stats.workers == 4
    finally:
        await env.close()


async def test_cancelled_tactics_leave_the_worker_usable(script: Path) -> None:
    # The search cancels the rest of an expansion once a proof is found; the worker must survive.
    env = make_env(script, ("--latency-ms", "100"))
    try:
        session = await env.start(T1)
        home = session.home if isinstance(session, ReplSession) else None
        tasks = [asyncio.ensure_future(session.run_tactic(session.initial_state, t, 5)) for t in ("bad", "constructor")]
        await asyncio.sleep(0.03)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert await session.run_tactic(session.initial_state, "exact h.symm", 5) == ProofClosed()
        assert home is not None and home.alive and env.stats().timeouts == 0 and env.stats().crashes == 0
    finally:
        await env.close()


T1_OUTCOMES = {
    "subst h": Progress(ProofState.from_goals([AFTER_SUBST])),
    "exact h.symm": ProofClosed(),
    "bad": TacticError(TacticErrorKind.LEAN_ERROR, "Unknown identifier `bad`"),
    "constructor": Progress(ProofState.from_goals(["case left\n⊢ b ≤ a", "case right\n⊢ a ≤ b"])),
    "cheat": TacticError(TacticErrorKind.USED_SORRY, "the tactic used `sorry`"),
    "exact?": TacticError(TacticErrorKind.LEAN_ERROR, "Lean error:\n`exact?` could not close the goal."),
    "refine ?_": TacticError(TacticErrorKind.LEAN_ERROR, "the tactic left unassigned metavariables"),
    "decide": ProofClosed(),
}
LATENCY_S = 0.1


async def timed_batch(spread: bool, script: Path) -> tuple[float, int]:
    """Run the 8 tactics of `T1_OUTCOMES` at once on a fresh session; (seconds, workers that ran tactics)."""
    env = make_env(script, ("--latency-ms", str(LATENCY_S * 1000)), workers=4, spread_tactics=spread)
    try:
        await env.warm_up(HEADER, 4)
        session = await env.start(T1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(session.run_tactic(session.initial_state, t, 5) for t in T1_OUTCOMES)), 30
        )
        seconds = loop.time() - started
        assert dict(zip(T1_OUTCOMES, outcomes, strict=True)) == T1_OUTCOMES
        # States made on any worker go on, wherever the next tactic runs.
        after_subst = outcomes[0]
        assert isinstance(after_subst, Progress)
        closing = await asyncio.gather(*(session.run_tactic(after_subst.state, "rfl", 5) for _ in range(4)))
        assert closing == [ProofClosed()] * 4
        used = sum(1 for w in env.pool.workers if w.requests > 1)  # beyond the header
        stats = env.stats()
        assert stats.crashes == 0 and stats.timeouts == 0
        return seconds, used
    finally:
        await env.close()


async def test_concurrent_tactics_of_one_session_spread_over_idle_workers(script: Path) -> None:
    spread_s, spread_used = await timed_batch(True, script)
    home_s, home_used = await timed_batch(False, script)
    # Alone, 8 requests of LATENCY_S each on one process; spread, the first wave (home + 3 guests
    # opening the theorem) takes 2 latencies and the rest run on the 4 processes together.
    assert home_used == 1 and home_s >= 7.5 * LATENCY_S, home_s
    assert spread_used == 4, spread_used
    print(f"8 tactics, {LATENCY_S:g} s each: spread {spread_s:.3f} s on {spread_used}, home only {home_s:.3f} s")
    assert spread_s < 4.5 * LATENCY_S and spread_s < 0.6 * home_s, (spread_s, home_s)


async def test_a_guest_that_crashes_does_not_fail_the_session(script: Path, tmp_path: Path) -> None:
    # Every process crashes on its 4th request unless the marker exists; the home passes its 4th while
    # it does, so after the marker is removed the first guest to run a tactic (header, open, replay of
    # one step, tactic) crashes mid-request. That request is retried and the batch gets its answers.
    marker = tmp_path / "crashed"
    marker.write_text("not yet\n")
    flags = ("--latency-ms", "50", "--crash-at-request", "4", "--crash-once", str(marker))
    env = make_env(script, flags, workers=3, crash_retries=1)
    try:
        await env.warm_up(HEADER, 3)
        session = await env.start(T2)
        assert isinstance(session, ReplSession)
        first = await walk(session, STEPS[:1])
        second = await session.run_tactic(first, STEPS[1], 5)
        assert isinstance(second, Progress)
        assert session.home is not None and session.home.requests == 4
        marker.unlink()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(session.run_tactic(first, STEPS[1], 5) for _ in range(4))), 30
        )
        assert outcomes == [second] * 4
        assert marker.exists() and env.stats().crashes == 1
        assert isinstance(await session.run_tactic(second.state, STEPS[2], 5), Progress)
    finally:
        await env.close()


async def test_guests_never_take_a_worker_someone_waits_for(script: Path) -> None:
    # A (theorem t2) runs a batch on its home while B (theorem t1) holds the other worker and C (t1
    # again) waits for a worker: when B's worker comes free it goes to C, not to A as a guest.
    latency = 0.2
    env = make_env(script, ("--latency-ms", str(latency * 1000)), workers=2)
    try:
        await env.warm_up(HEADER, 2)
        a = await env.start(T2)
        b = await env.start(T1)
        assert isinstance(a, ReplSession) and isinstance(b, ReplSession) and a.home is not b.home
        loop = asyncio.get_running_loop()
        b_task = asyncio.ensure_future(b.run_tactic(b.initial_state, "subst h", 5))
        a_tasks = [asyncio.ensure_future(a.run_tactic(a.initial_state, STEPS[0], 5)) for _ in range(4)]
        await asyncio.sleep(0.02)
        started = loop.time()
        assert env.pool.try_acquire(HEADER) is None  # both leased
        c = await asyncio.wait_for(env.start(T1), 10)
        waited = loop.time() - started
        # C waited for B's tactic (one latency) and opened (one more); taking B's worker as A's guest
        # first would have added at least two (opening t2 there, then the tactic).
        assert waited < 2.9 * latency, waited
        assert isinstance(c, ReplSession) and c.home is b.home
        assert await b_task == Progress(ProofState.from_goals([AFTER_SUBST]))
        results = await asyncio.gather(*a_tasks)
        assert all(isinstance(r, Progress) for r in results) and len(set(results)) == 1
    finally:
        await env.close()


async def test_a_timeout_on_a_guest_kills_the_guest_not_the_home(script: Path) -> None:
    env = make_env(script, ("--latency-ms", "100", "--hang-on", "slow"), workers=2)
    try:
        await env.warm_up(HEADER, 2)
        session = await env.start(T1)
        assert isinstance(session, ReplSession)
        home = session.home
        on_home = asyncio.ensure_future(session.run_tactic(session.initial_state, "subst h", 5))
        await asyncio.sleep(0.02)
        hung = await session.run_tactic(session.initial_state, "slow", 0.5)
        assert hung == TacticError(TacticErrorKind.TIMEOUT, "tactic timed out after 0.5 s")
        assert await on_home == Progress(ProofState.from_goals([AFTER_SUBST]))
        assert session.home is home and home is not None and home.alive
        assert env.stats().timeouts == 1
        assert await session.run_tactic(session.initial_state, "exact h.symm", 5) == ProofClosed()
    finally:
        await env.close()


def test_spread_tactics_is_on_by_default() -> None:
    assert stand_in_config().spread_tactics is True
    assert stand_in_config(spread_tactics=False).spread_tactics is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workers", 0),
        ("acquire_timeout_s", 0),
        ("max_requests_per_worker", -1),
        ("memory_limit_mb", -5),
        ("crash_retries", -1),
        ("restart_backoff_s", -1.0),
    ],
)
def test_config_errors_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"ReplConfig\.{field}:"):
        stand_in_config(**{field: value})
    with pytest.raises(ValueError, match=r"ReplConfig\.command:"):
        ReplConfig(command=())


async def test_the_source_policy_applies_before_any_worker_starts(script: Path) -> None:
    """A header outside the policy, or input over its size limits, never reaches a REPL process."""
    from lean_env.source_policy import SourcePolicy
    from lean_env.types import InvalidStatement, VerifyStatus

    env = ReplLeanEnv(
        stand_in_config(script=script, workers=1), policy=SourcePolicy(max_proof_bytes=64, max_header_bytes=4096)
    )
    try:
        hostile = Theorem(name="t1", header=HEADER + "axiom cheat : False\n", formal_statement=T1.formal_statement)
        opened = await env.start(hostile)
        assert isinstance(opened, InvalidStatement) and "axiom cheat : False" in opened.message
        verdict = await env.verify(hostile, "by\n  exact h.symm", 5)
        assert verdict.status is VerifyStatus.GUARD_REJECTED and "header's line" in verdict.reason
        checked = await env.check(hostile.header + T1.formal_statement + " sorry\n", 5)
        assert not checked.ok and "refused before Lean" in checked.errors[0].text
        long_proof = "by\n  " + "exact h.symm <;> " * 10 + "exact h.symm"
        too_long = await env.verify(T1, long_proof, 5)
        assert too_long.status is VerifyStatus.GUARD_REJECTED and "lean.policy.max_proof_bytes" in too_long.reason
        assert env.pool.stats().starts == 0, "nothing above may start a Lean process"
        session = await env.start(T1)
        assert isinstance(session, ReplSession)
        outcome = await session.run_tactic(session.initial_state, "exact h.symm <;> " * 10 + "rfl", 5)
        assert isinstance(outcome, TacticError) and outcome.kind is TacticErrorKind.UNSAFE
        await session.close()
    finally:
        await env.close()

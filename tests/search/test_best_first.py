"""Best-first search end to end over the scripted environment and generator.

Every search here runs with `debug_invariants=True`, and the recorder (an event listener) re-checks
the tree after each expansion (see helpers.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping

import pytest

from lean_env.errors import BackendCrashed
from lean_env.types import (
    Hole,
    Position,
    ProofClosed,
    ProofState,
    TacticError,
    TacticErrorKind,
    Theorem,
    VerifyResult,
    VerifyStatus,
)
from search import (
    BestFirstSearch,
    EventHub,
    NodeStatus,
    PriorityScheme,
    ProofFound,
    ProofRejected,
    SearchFinished,
    SearchStarted,
    SearchStatus,
)
from tests.search.helpers import GUARD_S, Recorder, comparable, config, run_search
from tests.stand_ins.scripted import (
    Crash,
    Effect,
    Hang,
    Script,
    ScriptedEnv,
    ScriptedGenerator,
    Slow,
    Unsound,
    make_theorem,
    uniform_candidates,
)

CLOSED = ProofClosed()


def err(kind: TacticErrorKind = TacticErrorKind.LEAN_ERROR) -> TacticError:
    return TacticError(kind, f"scripted {kind.value}")


class Chain(Mapping[str, Mapping[str, Effect]]):
    """An endless graph: state `d{n}` has tactic `step` to `d{n+1}` (optionally slow) and a failing one."""

    def __init__(self, step_seconds: float = 0.0) -> None:
        self.step_seconds = step_seconds

    def __getitem__(self, state: str) -> Mapping[str, Effect]:
        if not state.startswith("d"):
            raise KeyError(state)
        following = f"d{int(state[1:]) + 1}"
        step: Effect = Slow(self.step_seconds, following) if self.step_seconds else following
        return {"step": step, "nope": err()}

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class ChainTable(Mapping[str, list[tuple[str, float, int]]]):
    def __getitem__(self, state: str) -> list[tuple[str, float, int]]:
        return [("step", -1.0, 1), ("nope", -2.0, 1)]

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# -- proofs -------------------------------------------------------------------------------------


async def test_finds_verifies_and_renders_a_two_step_proof() -> None:
    script: Script = {"root": {"intro x": "A", "bad": err()}, "A": {"simp [x]": CLOSED}}
    run = await run_search(script)
    result = run.result
    assert result.status is SearchStatus.PROVED and result.verified
    assert result.tactics == ("intro x", "simp [x]")
    assert result.proof == "by\n  intro x\n  simp [x]"
    assert result.failure_reason is None
    assert run.env.counters.verifies == 1
    assert run.env.counters.closes == run.env.counters.starts == 1
    assert result.stats.expansions == 2 and result.stats.nodes == 2
    assert result.stats.errors_by_kind == {"lean_error": 1}


async def test_a_proof_on_the_first_expansion() -> None:
    run = await run_search({"root": {"norm_num": CLOSED}})
    assert run.result.status is SearchStatus.PROVED
    assert run.result.proof == "by\n  norm_num" and run.result.stats.expansions == 1


async def test_multiline_tactics_are_rendered_so_that_verification_replays_them() -> None:
    calc = "calc a = b := by rw [h]\n  _ = c := by ring"
    focus = "· simp\n  · exact h₁\n  · exact h₂"
    induction = "induction n with\n  | zero => simp\n  | succ k ih =>\n    omega"
    script: Script = {
        "root": {"constructor": "two"},
        "two": {focus: "one"},
        "one": {induction: "last"},
        "last": {calc: CLOSED},
    }
    run = await run_search(script)
    assert run.result.status is SearchStatus.PROVED, run.result.failure_reason
    assert run.result.tactics == ("constructor", focus, induction, calc)
    assert run.result.proof == (
        "by\n  constructor\n  · simp\n    · exact h₁\n    · exact h₂\n  induction n with\n    | zero => simp\n"
        "    | succ k ih =>\n      omega\n  calc a = b := by rw [h]\n    _ = c := by ring"
    )


async def test_the_proof_is_checked_as_the_whole_file_of_the_theorem() -> None:
    seen: list[tuple[str, str]] = []

    class Recording(ScriptedEnv):
        async def verify(self, theorem: Theorem, proof: str, timeout: float) -> VerifyResult:
            seen.append((theorem.name, proof))
            return await super().verify(theorem, proof, timeout)

    script: Script = {"root": {"simp": CLOSED}}
    theorem = Theorem("amc12_2000_p1", "import Mathlib\n\n", "theorem amc12_2000_p1 (x : ℕ) : x = x := by")
    run = await run_search(script, env=Recording(script), theorem=theorem)
    assert run.result.status is SearchStatus.PROVED
    assert seen == [("amc12_2000_p1", "by\n  simp")]


# -- the node table -------------------------------------------------------------------------------


async def test_transposition_shares_one_node() -> None:
    script: Script = {"root": {"intro x": "X", "intros": "X", "rfl": err()}, "X": {"loop": "root"}}
    run = await run_search(script)
    tree = run.search.tree
    assert tree is not None
    node = next(n for n in tree.nodes.values() if n.state.pp == "X")
    assert len(tree.nodes) == 2 and len(node.in_edges) == 2
    assert sorted(edge.tactic for edge in node.in_edges) == ["intro x", "intros"]
    assert run.result.stats.nodes == 2 and run.result.stats.edges == 4
    assert run.result.stats.expansions == 2  # X is expanded once although reached twice
    assert run.recorder.expanded == ["root", "X"]


async def test_a_better_path_reprioritises_an_unexplored_node() -> None:
    script: Script = {"root": {"t1": "A", "t2": "B", "t3": "C"}, "B": {"t4": "A"}, "A": {}, "C": {}}
    table = {
        "root": [("t1", -3.0, 1), ("t2", -1.0, 1), ("t3", -2.0, 1)],
        "B": [("t4", -0.5, 1)],
        "A": [("a", -1.0, 1)],
        "C": [("c", -1.0, 1)],
    }
    run = await run_search(script, table=table)
    # Through B, A's priority rises from -3 to -1.5 and it overtakes C (-2).
    assert run.recorder.expanded == ["root", "B", "A", "C"]
    assert run.result.status is SearchStatus.FAILED


@pytest.mark.parametrize(
    ("scheme", "expected_order", "expected_proof"),
    [
        (PriorityScheme.LLEMMA, ["root", "X"], ("long_tactic", "finish_x")),
        (PriorityScheme.REPROVER, ["root", "Y"], ("y", "finish_y")),
    ],
)
async def test_priority_scheme_changes_exploration_order(
    scheme: PriorityScheme, expected_order: list[str], expected_proof: tuple[str, ...]
) -> None:
    # long_tactic: 8 tokens at -0.5 each (mean -0.5, sum -4); y: 1 token at -2 (mean -2, sum -2).
    script: Script = {"root": {"long_tactic": "X", "y": "Y"}, "X": {"finish_x": CLOSED}, "Y": {"finish_y": CLOSED}}
    table = {
        "root": [("long_tactic", -4.0, 8), ("y", -2.0, 1)],
        "X": [("finish_x", -1.0, 1)],
        "Y": [("finish_y", -1.0, 1)],
    }
    run = await run_search(script, table=table, cfg=config(priority=scheme))
    assert run.recorder.expanded == expected_order
    assert run.result.tactics == expected_proof


# -- errors, failure, budgets ---------------------------------------------------------------------


async def test_failed_tactics_become_error_edges_counted_by_kind() -> None:
    script: dict[str, dict[str, Effect]] = {
        "root": {
            "linarith": err(),
            "nlinarith": err(),
            "decide": err(TacticErrorKind.TIMEOUT),
            "sorry": err(TacticErrorKind.USED_SORRY),
            "native_decide": err(TacticErrorKind.UNSAFE),
            "aesop": Hang(),
            "intro": "A",
        },
        "A": {"exact h": CLOSED},
    }
    run = await run_search(script, cfg=config(tactic_timeout_s=0.05))
    assert run.result.status is SearchStatus.PROVED
    assert run.result.stats.errors_by_kind == {"lean_error": 2, "timeout": 2, "used_sorry": 1, "unsafe": 1}
    tree = run.search.tree
    assert tree is not None
    kinds = sorted(edge.kind for edge in tree.root.out_edges)
    assert kinds == ["lean_error", "lean_error", "progress", "timeout", "timeout", "unsafe", "used_sorry"]
    assert run.result.stats.tactics_tried == 8 and run.result.stats.edges == 8


async def test_failure_propagates_upward_and_ends_the_search_before_the_budget() -> None:
    script: Script = {
        "root": {"a": "A", "b": "B", "c": err()},
        "A": {"a1": "A1", "a2": err()},
        "A1": {"x": err(), "same": "A1"},
        "B": {"b1": err(TacticErrorKind.TIMEOUT), "into_a1": "A1"},
    }
    run = await run_search(script, cfg=config(max_expansions=100))
    assert run.result.status is SearchStatus.FAILED
    assert run.result.stats.expansions == 4 < 100
    assert run.result.failure_reason is not None and "root" in run.result.failure_reason
    tree = run.search.tree
    assert tree is not None
    assert {node.state.pp: node.status for node in tree.nodes.values()} == {
        "root": NodeStatus.FAILED,
        "A": NodeStatus.FAILED,
        "A1": NodeStatus.FAILED,
        "B": NodeStatus.FAILED,
    }
    assert not run.result.verified and run.result.proof is None


async def test_no_candidates_at_the_root_fails_at_once() -> None:
    run = await run_search({"root": {}}, table={})
    assert run.result.status is SearchStatus.FAILED and run.result.stats.expansions == 1


async def test_a_cycle_with_nothing_left_to_expand_fails() -> None:
    script: Script = {"root": {"a": "A", "c": "C"}, "A": {"b": "root", "x": err()}, "C": {"y": err()}}
    run = await run_search(script, cfg=config(max_expansions=100))
    assert run.result.status is SearchStatus.FAILED and run.result.stats.expansions == 3
    assert run.result.failure_reason == "no open state left to expand"


async def test_expansion_budget_exhausted() -> None:
    run = await run_search(Chain(), initial="d0", table=ChainTable(), cfg=config(max_expansions=7))
    assert run.result.status is SearchStatus.BUDGET_EXHAUSTED
    assert run.result.stats.expansions == 7 and run.generator.calls == 7
    assert run.result.failure_reason is not None and "7" in run.result.failure_reason
    assert len(run.recorder.events) == 7


async def test_wall_clock_runs_out_with_slow_tactics() -> None:
    cfg = config(max_expansions=10_000, wall_clock_s=0.25, tactic_timeout_s=1.0)
    run = await run_search(Chain(step_seconds=0.04), initial="d0", table=ChainTable(), cfg=cfg)
    assert run.result.status is SearchStatus.TIMED_OUT
    assert run.result.failure_reason is not None and "0.25" in run.result.failure_reason
    assert 0.24 <= run.result.stats.wall_seconds < 2.0  # generous: CI machines stall
    assert 1 <= run.result.stats.expansions < 10
    assert run.env.counters.closes == 1


async def test_wall_clock_interrupts_a_tactic_longer_than_the_budget() -> None:
    script: Script = {"root": {"slow": Slow(3.0, CLOSED)}}
    run = await run_search(script, cfg=config(wall_clock_s=0.1, tactic_timeout_s=5.0))
    assert run.result.status is SearchStatus.TIMED_OUT
    assert run.result.stats.wall_seconds < 2.0
    assert run.env.counters.in_flight == 0 and run.env.counters.closes == 1


async def test_tactic_timeout_is_separate_from_the_wall_clock() -> None:
    script: Script = {"root": {"aesop": Hang(), "simp": "A"}, "A": {"omega": Hang(), "ring": CLOSED}}
    table = {"root": [("aesop", -0.1, 1), ("simp", -1.0, 1)], "A": [("omega", -0.1, 1), ("ring", -1.0, 1)]}
    cfg = config(wall_clock_s=5.0, tactic_timeout_s=0.05, max_concurrent_tactics=1)
    run = await run_search(script, table=table, cfg=cfg)
    assert run.result.status is SearchStatus.PROVED
    assert run.result.stats.errors_by_kind == {"timeout": 2}
    # Two hangs of 0.05 s each, run one at a time, then the search goes on.
    assert 0.09 <= run.result.stats.wall_seconds < 2.0


async def test_verification_time_does_not_count_against_the_wall_clock() -> None:
    class SlowVerify(ScriptedEnv):
        async def verify(self, theorem: Theorem, proof: str, timeout: float) -> VerifyResult:
            await asyncio.sleep(0.3)
            return await super().verify(theorem, proof, timeout)

    script: Script = {"root": {"fake": Unsound(), "a": "A"}, "A": {"b": CLOSED}}
    table = {"root": [("fake", -0.1, 1), ("a", -1.0, 1)], "A": [("b", -1.0, 1)]}
    run = await run_search(script, table=table, env=SlowVerify(script), cfg=config(wall_clock_s=0.2))
    assert run.result.status is SearchStatus.PROVED, run.result.failure_reason
    assert run.result.stats.verify_seconds >= 0.55
    assert len(run.result.rejected_proofs) == 1


# -- infrastructure failures ----------------------------------------------------------------------


async def test_backend_crash_is_env_error_with_stderr() -> None:
    script: Script = {"root": {"a": "A", "boom": Crash("REPL died")}, "A": {"b": CLOSED}}
    table = {"root": [("boom", -0.5, 1), ("a", -1.0, 1)], "A": [("b", -1.0, 1)]}
    run = await run_search(script, table=table)
    result = run.result
    assert result.status is SearchStatus.ENV_ERROR and not result.verified
    assert result.failure_reason is not None
    assert "REPL died" in result.failure_reason and "process exited with 137" in result.failure_reason
    assert run.env.counters.closes == 1


async def test_generator_failure_is_env_error() -> None:
    script: Script = {"root": {"a": CLOSED}}
    generator = ScriptedGenerator(uniform_candidates(script), fail_with=RuntimeError("CUDA out of memory"))
    run = await run_search(script, generator=generator)
    assert run.result.status is SearchStatus.ENV_ERROR
    assert run.result.failure_reason is not None and "CUDA out of memory" in run.result.failure_reason
    assert run.env.counters.closes == 1


async def test_a_generator_timing_out_on_its_own_is_env_error_not_a_crash_of_the_search() -> None:
    script: Script = {"root": {"a": CLOSED}}
    generator = ScriptedGenerator(uniform_candidates(script), fail_with=TimeoutError("model server timed out"))
    run = await run_search(script, generator=generator)
    assert run.result.status is SearchStatus.ENV_ERROR
    assert run.result.failure_reason is not None and "model server timed out" in run.result.failure_reason


async def test_start_failure_is_env_error() -> None:
    script: Script = {"root": {"a": CLOSED}}
    env = ScriptedEnv(script, start_error="unknown identifier 'Real.sqrt'")
    run = await run_search(script, env=env)
    assert run.result.status is SearchStatus.ENV_ERROR
    reason = run.result.failure_reason or ""
    assert "could not start" in reason and "Real.sqrt" in reason and "header failed" in reason
    assert run.generator.calls == 0 and run.search.tree is None


async def test_verifier_failure_is_env_error() -> None:
    class BrokenVerify(ScriptedEnv):
        async def verify(self, theorem: Theorem, proof: str, timeout: float) -> VerifyResult:
            raise BackendCrashed("verifier died", stderr="out of memory")

    script: Script = {"root": {"a": CLOSED}}
    run = await run_search(script, env=BrokenVerify(script))
    assert run.result.status is SearchStatus.ENV_ERROR and not run.result.verified
    assert "verifier died" in (run.result.failure_reason or "")


# -- verification -----------------------------------------------------------------------------------


async def test_unsound_close_is_rejected_and_the_search_finds_the_real_proof() -> None:
    script: Script = {
        "root": {"exact?": Unsound(), "intro": "A"},
        "A": {"apply?": Unsound("uses sorryAx"), "simp": CLOSED},
    }
    table = {
        "root": [("exact?", -0.1, 1), ("intro", -1.0, 1)],
        "A": [("apply?", -0.1, 1), ("simp", -1.0, 1)],
    }
    run = await run_search(script, table=table)
    result = run.result
    assert result.status is SearchStatus.PROVED and result.tactics == ("intro", "simp")
    assert [r.proof for r in result.rejected_proofs] == ["by\n  exact?", "by\n  intro\n  apply?"]
    assert [r.verify.reason for r in result.rejected_proofs] == ["declaration uses 'sorry'", "uses sorryAx"]
    assert result.stats.errors_by_kind == {"unverified": 2}
    assert run.env.counters.verifies == 3


async def test_only_unsound_proofs_mean_not_proved() -> None:
    run = await run_search({"root": {"exact?": Unsound()}})
    result = run.result
    assert result.status is SearchStatus.FAILED
    assert not result.verified and result.proof is None and result.tactics == ()
    assert len(result.rejected_proofs) == 1
    assert result.failure_reason is not None and "rejected by verification" in result.failure_reason
    assert "sorry" in result.failure_reason


# -- candidates of one expansion ------------------------------------------------------------------


async def test_whitespace_variants_are_run_once() -> None:
    script: Script = {"root": {"simp  [h]": err(), "ring": err()}}
    table = {"root": [("simp  [h]", -0.1, 1), ("simp [h]", -0.2, 1), ("\n simp [h]  \n", -0.3, 1), ("ring", -0.4, 1)]}
    table["root"].append(("  \n", -0.5, 1))
    run = await run_search(script, table=table)
    assert run.env.counters.tactics == 2
    assert run.result.stats.duplicate_candidates == 3
    tree = run.search.tree
    assert tree is not None
    assert [edge.tactic for edge in tree.root.out_edges] == ["simp  [h]", "ring"]
    assert run.recorder.events[0].candidates == 2


async def test_concurrency_limit_is_respected() -> None:
    script: dict[str, dict[str, Effect]] = {"root": {f"t{i}": Slow(0.02, err()) for i in range(10)}}
    run = await run_search(script, cfg=config(max_concurrent_tactics=3))
    assert run.env.counters.max_in_flight == 3
    assert run.result.stats.tactics_tried == 10
    serial = await run_search(script, cfg=config(max_concurrent_tactics=1))
    assert serial.env.counters.max_in_flight == 1
    assert serial.result.stats.tactics_tried == 10


async def test_results_are_applied_in_candidate_order() -> None:
    # The first candidate finishes last; its proof must still win, and ids follow candidate order.
    script: Script = {
        "root": {"slow_a": Slow(0.08, "A"), "fast_b": "B", "slow_close": Slow(0.05, CLOSED), "fast_close": CLOSED}
    }
    table = {"root": [("slow_a", -0.1, 1), ("fast_b", -0.2, 1), ("slow_close", -0.3, 1), ("fast_close", -0.4, 1)]}
    runs = [await run_search(script, table=table, cfg=config(max_concurrent_tactics=4)) for _ in range(2)]
    for run in runs:
        assert run.result.status is SearchStatus.PROVED
        assert run.result.tactics == ("slow_close",)
        tree = run.search.tree
        assert tree is not None
        assert [(node.state.pp, node.id) for node in tree.nodes.values()] == [("root", 0), ("A", 1), ("B", 2)]
        assert run.env.counters.max_in_flight >= 2  # the two slow ones overlapped
    assert comparable(runs[0].result) == comparable(runs[1].result)
    serial = await run_search(script, table=table, cfg=config(max_concurrent_tactics=1))
    assert comparable(serial.result) == comparable(runs[0].result)


async def test_the_search_stops_applying_candidates_after_the_proof() -> None:
    script: Script = {"root": {"a": "A", "close": CLOSED, "b": "B", "c": err()}}
    table = {"root": [("a", -0.1, 1), ("close", -0.2, 1), ("b", -0.3, 1), ("c", -0.4, 1)]}
    run = await run_search(script, table=table, cfg=config(max_concurrent_tactics=1))
    assert run.result.status is SearchStatus.PROVED
    assert run.result.stats.tactics_tried == 2 and run.result.stats.edges == 2
    tree = run.search.tree
    assert tree is not None and [e.tactic for e in tree.root.out_edges] == ["a", "close"]


# -- running alongside other searches --------------------------------------------------------------


async def test_cancelling_a_search_closes_its_session_and_propagates() -> None:
    script: Script = {"root": {"a": Slow(5.0, CLOSED), "b": Hang()}}
    env = ScriptedEnv(script)
    search = BestFirstSearch(make_theorem(), env, ScriptedGenerator(uniform_candidates(script)), config())
    task = asyncio.create_task(search.run())
    await asyncio.sleep(0.05)
    assert env.counters.in_flight == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, GUARD_S)
    assert env.counters.closes == 1 and env.sessions[0].closed
    assert env.counters.in_flight == 0


async def test_two_hundred_searches_share_one_loop_and_one_env() -> None:
    scripts: dict[str, tuple[str, dict[str, dict[str, Effect]]]] = {}
    expected: dict[str, tuple[SearchStatus, tuple[str, ...]]] = {}
    for i in range(200):
        root = f"r{i}"
        kind = i % 4
        if kind == 0:
            script: dict[str, dict[str, Effect]] = {root: {f"a{i}": f"m{i}", "x": err()}, f"m{i}": {f"c{i}": CLOSED}}
            expected[f"t{i}"] = (SearchStatus.PROVED, (f"a{i}", f"c{i}"))
        elif kind == 1:
            script = {root: {f"s{i}": Slow(0.01 * (i % 5), Unsound()), f"a{i}": f"m{i}"}, f"m{i}": {f"c{i}": CLOSED}}
            expected[f"t{i}"] = (SearchStatus.PROVED, (f"a{i}", f"c{i}"))
        elif kind == 2:
            script = {root: {f"a{i}": f"m{i}"}, f"m{i}": {"x": err(), "h": Hang()}}
            expected[f"t{i}"] = (SearchStatus.FAILED, ())
        else:
            script = {root: {f"a{i}": f"m{i}"}, f"m{i}": {f"slow{i}": Slow(0.02, CLOSED)}}
            expected[f"t{i}"] = (SearchStatus.PROVED, (f"a{i}", f"slow{i}"))
        scripts[f"t{i}"] = (root, script)
    table: dict[str, list[tuple[str, float, int]]] = {}
    for _, script in scripts.values():
        table.update(uniform_candidates(script))
    env = ScriptedEnv({}, scripts=scripts, latency=lambda state, tactic: 0.001 * (len(state) % 3))
    generator = ScriptedGenerator(table, latency=0.002)
    cfg = config(tactic_timeout_s=0.05)
    names = list(scripts)
    async with asyncio.timeout(GUARD_S):
        results = await asyncio.gather(
            *(BestFirstSearch(make_theorem(name), env, generator, cfg).run() for name in names)
        )
    for name, result in zip(names, results, strict=True):
        assert result.theorem_name == name
        assert (result.status, result.tactics) == expected[name], name
        assert result.verified is (result.status is SearchStatus.PROVED)
    assert env.counters.starts == env.counters.closes == 200
    assert env.counters.in_flight == 0
    # The searches really overlapped: many tactics were in flight at once across sessions.
    assert env.counters.max_in_flight > 50


async def test_events_tell_the_whole_search_in_order() -> None:
    script: Script = {
        "root": {"a": "A", "b": "B"},
        "A": {"x": err()},
        "B": {"fake": Unsound(), "y": "C"},
        "C": {"z": CLOSED},
    }
    table = {"root": [("a", -0.1, 1), ("b", -0.2, 1)], "A": [("x", -1.0, 1)], "B": [("fake", -0.5, 1), ("y", -1.0, 1)]}
    table["C"] = [("z", -1.0, 1)]
    run = await run_search(script, table=table)
    assert run.result.status is SearchStatus.PROVED
    kinds = [type(event).__name__ for event in run.recorder.all]
    assert kinds == [
        "SearchStarted",
        "ExpansionDone",  # root
        "ExpansionDone",  # A
        "ProofRejected",  # B: `fake` closes step by step, the re-check refuses it
        "ExpansionDone",  # B
        "ProofFound",  # C: `z`
        "ExpansionDone",  # C
        "SearchFinished",
    ]
    started, finished = run.recorder.all[0], run.recorder.all[-1]
    assert isinstance(started, SearchStarted) and started.problem_name == "t" and started.at > 0
    assert isinstance(finished, SearchFinished) and finished.result is run.result
    rejected = next(event for event in run.recorder.all if isinstance(event, ProofRejected))
    assert rejected.proof == "by\n  b\n  fake" and "sorry" in rejected.reason
    found = next(event for event in run.recorder.all if isinstance(event, ProofFound))
    assert found.tactics == run.result.tactics == ("b", "y", "z") and found.proof == run.result.proof
    events = run.recorder.events
    assert len(events) == run.result.stats.expansions == 4
    assert [e.expansion for e in events] == [1, 2, 3, 4]
    assert [e.state for e in events] == ["root", "A", "B", "C"]
    assert [e.candidates for e in events] == [2, 1, 2, 1]
    # Open states left to expand after each expansion: {A, B}, {B}, {C}, {}.
    assert [e.frontier for e in events] == [2, 1, 1, 0]
    assert all(e.problem_name == "t" for e in events)


async def test_an_event_keeps_what_it_said_after_the_search_moves_on() -> None:
    run = await run_search(Chain(), initial="d0", table=ChainTable(), cfg=config(max_expansions=6))
    third = run.recorder.events[2]
    assert third.expansion == third.stats.expansions == 3
    assert third.stats.errors_by_kind == {"lean_error": 3}
    assert run.result.stats.expansions == 6 and run.result.stats.errors_by_kind == {"lean_error": 6}
    # Snapshots share nothing: not with the live counters, not with each other.
    assert third.stats.errors_by_kind is not run.recorder.events[3].stats.errors_by_kind
    assert run.search.stats == run.result.stats and run.search.stats is not run.result.stats
    with pytest.raises(dataclasses.FrozenInstanceError):
        third.stats.expansions = 99  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        third.expansion = 99  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.result.stats.nodes = 0  # type: ignore[misc]


async def test_a_failing_listener_does_not_break_the_search(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[object] = []

    def listener(event: object) -> None:
        heard.append(event)
        raise RuntimeError("listener bug")

    script: Script = {"root": {"intro x": "A"}, "A": {"simp [x]": CLOSED}}
    env, generator = ScriptedEnv(script), ScriptedGenerator(uniform_candidates(script))
    search = BestFirstSearch(make_theorem(), env, generator, config(), events=listener)
    result = await asyncio.wait_for(search.run(), GUARD_S)
    assert result.status is SearchStatus.PROVED and result.tactics == ("intro x", "simp [x]")
    assert [type(event).__name__ for event in heard] == [
        "SearchStarted",
        "ExpansionDone",
        "ProofFound",
        "ExpansionDone",
        "SearchFinished",
    ]
    assert "listener bug" in caplog.text


async def test_an_event_hub_streams_a_search_to_an_async_consumer() -> None:
    hub = EventHub()
    script: Script = {"root": {"intro x": "A"}, "A": {"simp [x]": CLOSED}}
    env, generator = ScriptedEnv(script), ScriptedGenerator(uniform_candidates(script))
    received: list[object] = []
    stream = hub.stream()  # subscribed from here on, before anyone iterates

    async def consume() -> None:
        async with stream:
            async for event in stream:
                received.append(event)
                if isinstance(event, SearchFinished):
                    break

    search = BestFirstSearch(make_theorem(), env, generator, config(), events=hub)
    result = await search.run()  # runs to the end before the consumer has even started
    await asyncio.wait_for(consume(), GUARD_S)
    assert [type(event).__name__ for event in received] == [
        "SearchStarted",
        "ExpansionDone",
        "ProofFound",
        "ExpansionDone",
        "SearchFinished",
    ]
    assert isinstance(received[-1], SearchFinished) and received[-1].result is result
    hub.publish("after the close")
    assert len(received) == 5  # closing the stream unsubscribed it


async def test_a_slow_stream_consumer_keeps_only_the_latest_events() -> None:
    hub = EventHub()
    stream = hub.stream(maxsize=3)
    for number in range(10):
        hub(number)  # a hub is itself a listener
    assert [await anext(stream) for _ in range(3)] == [7, 8, 9]
    await stream.aclose()
    await stream.aclose()


async def test_a_cancelled_search_publishes_no_finish_and_keeps_its_stats() -> None:
    script: Script = {"root": {"quick": err(), "a": "A"}, "A": {"hang": Hang()}}
    recorder = Recorder()
    env, generator = ScriptedEnv(script), ScriptedGenerator(uniform_candidates(script))
    search = BestFirstSearch(make_theorem(), env, generator, config(tactic_timeout_s=5.0), events=recorder)
    task = asyncio.create_task(search.run())
    await asyncio.sleep(0.1)  # root expanded, A's `hang` now running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, GUARD_S)
    assert [type(event).__name__ for event in recorder.all] == ["SearchStarted", "ExpansionDone"]
    stats = search.stats
    assert stats.expansions == 2 and stats.tactics_tried == 2 and stats.errors_by_kind == {"lean_error": 1}
    assert stats.wall_seconds >= 0.1


# -- statements that do not elaborate, and searches on a hole -------------------------------------


async def test_an_invalid_statement_is_reported_with_leans_message_and_no_expansion() -> None:
    script: Script = {"root": {"a": CLOSED}}
    message = "unknown identifier 'Real.sqrt'"
    env = ScriptedEnv(script, invalid={"t": message})
    run = await run_search(script, env=env)
    assert run.result.status is SearchStatus.INVALID_STATEMENT
    assert run.result.failure_reason == message
    assert run.result.stats.expansions == 0 and run.generator.calls == 0 and run.search.tree is None
    assert not run.result.verified and run.result.proof is None
    assert [type(event).__name__ for event in run.recorder.all] == ["SearchStarted", "SearchFinished"]


async def test_a_hole_search_proves_the_holes_goal_with_the_callers_check() -> None:
    script: Script = {"root": {"intro x": "A"}, "A": {"simp [x]": CLOSED}}
    env = ScriptedEnv(script)
    sketch = "theorem t : True := by\n  have h : True := by\n    sorry\n  sorry\n"
    checked = await env.check(sketch, 5.0)
    hole = checked.holes[1]
    asked: list[tuple[str, ...]] = []

    async def splice_and_check(tactics: tuple[str, ...]) -> VerifyResult:
        asked.append(tactics)
        text = env.syntax.splice(sketch, checked.holes, [["trivial"], tactics])
        return VerifyResult(VerifyStatus.VALID, checked_text=text)

    run = await run_search(script, env=env, hole=hole, verify=splice_and_check)
    assert run.result.status is SearchStatus.PROVED and run.result.verified
    assert run.result.tactics == ("intro x", "simp [x]") and asked == [("intro x", "simp [x]")]
    assert run.result.proof == "by\n  intro x\n  simp [x]"
    assert env.counters.verifies == 0  # the statement's whole-file check was never asked


async def test_a_rejection_by_the_callers_check_is_recorded_like_any_other() -> None:
    script: Script = {"root": {"a": CLOSED, "b": CLOSED}}
    table = {"root": [("a", -0.1, 1), ("b", -0.2, 1)]}

    async def only_b(tactics: tuple[str, ...]) -> VerifyResult:
        if tactics == ("b",):
            return VerifyResult(VerifyStatus.VALID)
        return VerifyResult(VerifyStatus.LEAN_ERROR, reason="the sketch does not close")

    run = await run_search(script, table=table, verify=only_b)
    assert run.result.status is SearchStatus.PROVED and run.result.tactics == ("b",)
    assert [r.verify.reason for r in run.result.rejected_proofs] == ["the sketch does not close"]
    assert run.result.stats.errors_by_kind == {"unverified": 1}


def test_a_hole_search_without_its_own_check_is_refused() -> None:
    env = ScriptedEnv({"root": {}})
    hole = Hole(0, "root", ProofState.from_pp("root"), Position(1, 0), Position(1, 5))
    with pytest.raises(ValueError, match="verify"):
        BestFirstSearch(make_theorem(), env, ScriptedGenerator({}), config(), hole=hole)


async def test_a_search_object_runs_once() -> None:
    script: Script = {"root": {"a": CLOSED}}
    search = BestFirstSearch(
        make_theorem(), ScriptedEnv(script), ScriptedGenerator(uniform_candidates(script)), config()
    )
    await search.run()
    with pytest.raises(RuntimeError, match="runs once"):
        await search.run()


# -- the candidate runner: inline first candidate, helper tasks once Lean makes the search wait ----


async def test_a_crash_in_a_candidate_run_by_a_helper_is_env_error() -> None:
    script: Script = {"root": {"slow": Slow(0.03, err()), "boom": Crash("worker 3 died"), "later": err()}}
    table = {"root": [("slow", -0.1, 1), ("boom", -0.2, 1), ("later", -0.3, 1)]}
    run = await run_search(script, table=table, cfg=config(max_concurrent_tactics=3))
    assert run.result.status is SearchStatus.ENV_ERROR
    assert "worker 3 died" in (run.result.failure_reason or "")
    assert run.result.stats.tactics_tried == 1  # the outcome before the crash was applied, in order
    assert run.env.counters.in_flight == 0 and run.env.counters.closes == 1


async def test_a_crash_after_the_tactic_started_waiting_is_env_error() -> None:
    script: Script = {"root": {"slow_crash": Slow(0.02, Crash("died mid-tactic")), "other": err()}}
    run = await run_search(script, cfg=config(max_concurrent_tactics=2))
    assert run.result.status is SearchStatus.ENV_ERROR
    assert "died mid-tactic" in (run.result.failure_reason or "")


@pytest.mark.parametrize("limit", [1, 2, 8])
async def test_a_crash_after_the_proof_in_candidate_order_is_never_seen(limit: int) -> None:
    script: Script = {"root": {"slow_close": Slow(0.03, CLOSED), "boom": Crash()}}
    table = {"root": [("slow_close", -0.1, 1), ("boom", -0.2, 1)]}
    run = await run_search(script, table=table, cfg=config(max_concurrent_tactics=limit))
    assert run.result.status is SearchStatus.PROVED and run.result.tactics == ("slow_close",)
    assert run.env.counters.in_flight == 0


async def test_cancelling_while_waiting_for_a_helper_cancels_the_helpers() -> None:
    script: Script = {"root": {"quick": Slow(0.01, err()), "long": Slow(5.0, CLOSED), "hang": Hang()}}
    table = {"root": [("quick", -0.1, 1), ("long", -0.2, 1), ("hang", -0.3, 1)]}
    env = ScriptedEnv(script)
    search = BestFirstSearch(make_theorem(), env, ScriptedGenerator(table), config(max_concurrent_tactics=3))
    task = asyncio.create_task(search.run())
    await asyncio.sleep(0.1)  # `quick` is applied; the search now waits for `long`, run by a helper
    assert env.counters.in_flight == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, GUARD_S)
    assert env.counters.in_flight == 0 and env.counters.closes == 1


async def test_the_wall_clock_stops_helpers_too() -> None:
    script: Script = {"root": {"quick": Slow(0.01, err()), "long": Slow(5.0, CLOSED), "hang": Hang()}}
    cfg = config(max_concurrent_tactics=3, wall_clock_s=0.15, tactic_timeout_s=5.0)
    run = await run_search(script, cfg=cfg)
    assert run.result.status is SearchStatus.TIMED_OUT
    assert run.result.stats.wall_seconds < 2.0
    assert run.env.counters.in_flight == 0


async def test_helpers_keep_at_most_the_limit_in_flight_across_expansions() -> None:
    script: dict[str, dict[str, Effect]] = {
        "root": {f"r{i}": Slow(0.005 * (i % 3 + 1), f"s{i}" if i < 3 else err()) for i in range(9)},
        **{f"s{j}": {f"t{i}": Slow(0.005 * (i % 2 + 1), err()) for i in range(7)} for j in range(3)},
    }
    for limit in (2, 4):
        run = await run_search(script, cfg=config(max_concurrent_tactics=limit))
        assert run.result.status is SearchStatus.FAILED
        assert run.env.counters.max_in_flight == limit
        assert run.result.stats.tactics_tried == 9 + 3 * 7


def test_a_search_can_be_built_outside_the_event_loop() -> None:
    script: Script = {"root": {"a": CLOSED}}
    generator = ScriptedGenerator(uniform_candidates(script))
    search = BestFirstSearch(make_theorem(), ScriptedEnv(script), generator, config())
    result = asyncio.run(search.run())
    assert result.status is SearchStatus.PROVED

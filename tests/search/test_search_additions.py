"""Cancel on proof, the service's hooks (expansion ids, `best_open`) and the candidate counters."""

from __future__ import annotations

import asyncio

from lean_env.types import ProofClosed, ProofState, TacticError, TacticErrorKind
from search import BestFirstSearch, SearchStats, SearchStatus
from search.tree import SearchTree
from search.types import TacticCandidate
from tests.search.helpers import config, run_search
from tests.stand_ins.scripted import Script, ScriptedEnv, ScriptedGenerator, Slow, make_theorem


def _slow_script() -> Script:
    # The first candidate closes the goal at once; the other seven take a second each.
    tactics = {f"slow{k}": Slow(1.0, "X") for k in range(7)}
    return {"root": {"close": Slow(0.01, ProofClosed()), **tactics}}


async def test_a_found_proof_cancels_the_tactics_still_running_and_returns_at_once() -> None:
    script = _slow_script()
    table = {"root": [("close", -0.1, 1)] + [(f"slow{k}", -1.0, 1) for k in range(7)]}
    loop = asyncio.get_running_loop()
    started = loop.time()
    run = await run_search(script, table=table, cfg=config(max_concurrent_tactics=8, tactic_timeout_s=5.0))
    assert run.result.status is SearchStatus.PROVED
    assert loop.time() - started < 0.5  # not the 1 s the slow tactics would take
    assert run.result.stats.tactics_cancelled == 7
    assert run.result.to_dict()["stats"]["tactics_cancelled"] == 7
    assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


async def test_without_cancel_on_proof_the_running_tactics_finish_first() -> None:
    script = _slow_script()
    table = {"root": [("close", -0.1, 1)] + [(f"slow{k}", -1.0, 1) for k in range(7)]}
    loop = asyncio.get_running_loop()
    started = loop.time()
    cfg = config(max_concurrent_tactics=8, tactic_timeout_s=5.0, cancel_on_proof=False)
    run = await run_search(script, table=table, cfg=cfg)
    assert run.result.status is SearchStatus.PROVED and run.result.stats.tactics_cancelled == 0
    assert loop.time() - started >= 0.9


async def test_expansion_events_name_the_node_and_its_parent() -> None:
    script: Script = {"root": {"a": "A", "b": "B"}, "A": {"c": "C"}, "B": {}, "C": {}}
    table = {"root": [("a", -0.1, 1), ("b", -2.0, 1)], "A": [("c", -0.1, 1)], "B": [], "C": []}
    run = await run_search(script, table=table)
    tree = run.search.tree
    assert tree is not None
    ids = {state.pp: node.id for state, node in tree.nodes.items()}
    got = [(event.state, event.node, event.parent) for event in run.recorder.events]
    assert got[:3] == [("root", 0, None), ("A", ids["A"], 0), ("C", ids["C"], ids["A"])]


async def test_best_open_lists_the_best_unexpanded_states_with_their_priorities() -> None:
    script: Script = {"root": {"a": "A", "b": "B", "c": "C"}, "A": {}, "B": {}, "C": {}}
    table = {"root": [("a", -0.5, 1), ("b", -0.1, 1), ("c", -3.0, 1)], "A": [], "B": [], "C": []}
    env = ScriptedEnv(script)
    search = BestFirstSearch(make_theorem(), env, ScriptedGenerator(table), config(max_expansions=1))
    assert search.best_open(3) == []  # nothing opened yet
    await search.run()
    assert search.best_open(2) == [("B", -0.1), ("A", -0.5)]
    assert search.best_open(10) == [("B", -0.1), ("A", -0.5), ("C", -3.0)]
    assert search.best_open(0) == []


def test_best_open_skips_stale_and_explored_entries() -> None:
    tree = SearchTree(_state("root"))
    root = tree.pop_best()
    assert root is not None
    low = TacticCandidate("x", -2.0, 1)
    tree.add_progress(root, low, -2.0, _state("X"))
    first = tree.add_progress(root, TacticCandidate("y", -1.0, 1), -1.0, _state("Y"))
    assert first.dst is not None
    # A better path to X re-pushes it; the old entry is stale and must not show twice.
    tree.add_progress(first.dst, TacticCandidate("z", -0.1, 1), -0.1, _state("X"))
    tree.mark_explored(root)
    assert [(node.state.pp, priority) for node, priority in tree.best_open(5)] == [("Y", -1.0), ("X", -1.1)]


async def test_distinct_candidates_count_what_survives_deduplication() -> None:
    script: Script = {"root": {"a": "A", "b": "A"}, "A": {}}
    table = {"root": [("a", -0.1, 1), ("a", -0.2, 1), (" a", -0.3, 1), ("b", -0.4, 1)], "A": [("a", -0.1, 1)]}
    run = await run_search(script, table=table)
    stats = run.result.stats
    assert stats.distinct_candidates == 2 + 1 and stats.duplicate_candidates == 2
    assert run.result.to_dict()["stats"]["distinct_candidates"] == 3
    assert SearchStats().to_dict()["distinct_candidates"] == 0


async def test_error_edges_are_built_on_reading_in_candidate_order() -> None:
    error = TacticError(TacticErrorKind.LEAN_ERROR, "no")
    script: Script = {"root": {"e1": error, "p": "A", "e2": error, "e3": error}, "A": {}}
    table = {"root": [("e1", -0.1, 1), ("p", -0.2, 1), ("e2", -0.3, 1), ("e3", -0.4, 1)], "A": []}
    run = await run_search(script, table=table)
    tree = run.search.tree
    assert tree is not None
    edges = tree.root.out_edges
    assert [(edge.tactic, edge.kind, edge.score) for edge in edges] == [
        ("e1", "lean_error", -0.1),
        ("p", "progress", -0.2),
        ("e2", "lean_error", -0.3),
        ("e3", "lean_error", -0.4),
    ]
    assert tree.root.out_edges is edges and edges[0].error is error
    assert run.result.stats.errors_by_kind == {"lean_error": 3} and tree.num_edges == 4


def _state(pp: str) -> ProofState:
    return ProofState.from_pp(pp)

"""Property tests over random scripted graphs (hypothesis, derandomized so CI is stable)."""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search import PriorityScheme, SearchConfig, SearchStatus
from search.tree import NodeStatus
from tests.search.helpers import Run, comparable, config, run_search
from tests.search.strategies import ROOT, RandomGraph, random_graphs
from tests.stand_ins.scripted import ScriptedEnv, make_theorem

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _config(graph: RandomGraph, **overrides: object) -> SearchConfig:
    # Each distinct state is expanded at most once, so one expansion per state (plus the step that
    # finds the frontier empty) is always enough: the search must end PROVED or FAILED.
    values: dict[str, object] = {
        "max_expansions": len(graph.script) + 1,
        "num_samples": max(graph.max_tactics, 1),
        "wall_clock_s": 20.0,
    }
    values.update(overrides)
    return config(**values)


def _search(graph: RandomGraph, cfg: SearchConfig) -> Run:
    return asyncio.run(run_search(graph.script, table=graph.table, cfg=cfg, initial=ROOT))


def _check_run(graph: RandomGraph, run: Run) -> None:
    result = run.result
    tree = run.search.tree
    assert tree is not None
    # With budget enough, the search proves exactly the theorems that have a sound proof in the graph.
    assert result.status in (SearchStatus.PROVED, SearchStatus.FAILED), result.failure_reason
    assert (result.status is SearchStatus.PROVED) == graph.has_proof()
    # Never proved without verification: the reported proof is one the environment accepts.
    if result.status is SearchStatus.PROVED:
        assert result.verified and result.proof is not None
        assert run.env.counters.verifies >= 1
        verdict = asyncio.run(ScriptedEnv(graph.script, ROOT).verify(make_theorem(), result.proof, 5.0))
        assert verdict.ok, verdict.reason
        assert tree.root.status is NodeStatus.PROVED
    else:
        assert not result.verified and result.proof is None and result.tactics == ()
    for rejected in result.rejected_proofs:
        assert not rejected.verify.ok
    # Each state is expanded at most once, whatever paths lead to it.
    assert len(run.recorder.expanded) == len(set(run.recorder.expanded)) == result.stats.expansions
    # The stats agree with the graph the search built.
    assert result.stats.nodes == len(tree.nodes)
    assert result.stats.edges == tree.num_edges == result.stats.tactics_tried
    error_kinds = Counter(edge.kind for edge in tree.iter_edges() if edge.error is not None)
    assert dict(error_kinds) == result.stats.errors_by_kind
    assert error_kinds["unverified"] == len(result.rejected_proofs)


@PROPERTY_SETTINGS
@given(
    graph=random_graphs(),
    scheme=st.sampled_from(list(PriorityScheme)),
    limits=st.tuples(st.sampled_from([1, 2, 8]), st.sampled_from([1, 3, 32])),
)
def test_search_agrees_with_the_graph_and_is_deterministic(
    graph: RandomGraph, scheme: PriorityScheme, limits: tuple[int, int]
) -> None:
    first = _search(graph, _config(graph, priority=scheme, max_concurrent_tactics=limits[0]))
    _check_run(graph, first)
    # Same inputs, same result, whatever the concurrency limit.
    second = _search(graph, _config(graph, priority=scheme, max_concurrent_tactics=limits[1]))
    assert comparable(second.result) == comparable(first.result)
    assert second.recorder.expanded == first.recorder.expanded


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs(max_states=6, slow=True), limit=st.sampled_from([2, 4, 16]))
def test_timing_of_tactics_does_not_change_the_result(graph: RandomGraph, limit: int) -> None:
    # Slow tactics finish out of candidate order; hanging ones time out after the tactic timeout.
    serial = _search(graph, _config(graph, tactic_timeout_s=0.02, max_concurrent_tactics=1))
    _check_run(graph, serial)
    concurrent = _search(graph, _config(graph, tactic_timeout_s=0.02, max_concurrent_tactics=limit))
    assert comparable(concurrent.result) == comparable(serial.result)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(graph=random_graphs(), budget=st.integers(1, 3))
def test_a_small_budget_ends_cleanly(graph: RandomGraph, budget: int) -> None:
    run = _search(graph, _config(graph, max_expansions=budget))
    result = run.result
    assert result.stats.expansions <= budget
    if result.status is SearchStatus.BUDGET_EXHAUSTED:
        assert result.stats.expansions == budget and not result.verified
    else:
        # Ending before the budget means a verified proof or a root with nothing left to try.
        assert result.status in (SearchStatus.PROVED, SearchStatus.FAILED)
        assert (result.status is SearchStatus.PROVED) == graph.has_proof()
        _check_run(graph, run)


def _plain_unique(texts: list[str]) -> list[str]:
    """De-duplication as specified: clean each text, key it by collapsed whitespace, keep the first."""
    seen: set[str] = set()
    unique = []
    for text in texts:
        lines = [line.rstrip() for line in text.strip("\n").splitlines()]
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        cleaned = textwrap.dedent("\n".join(lines))
        key = re.sub(r"\s+", " ", cleaned).strip()
        if key and key not in seen:
            seen.add(key)
            unique.append(cleaned)
    return unique


_candidate_text = st.lists(
    st.sampled_from([" ", "  ", "\t", "\n", "\u3000", "\xa0", "simp", "ring", "[h]", "·", "ℝ"]), max_size=8
).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(_candidate_text, max_size=10))
def test_candidates_are_deduplicated_after_normalising_whitespace(texts: list[str]) -> None:
    table = {ROOT: [(text, -0.1 * i, 1) for i, text in enumerate(texts)]}
    run = asyncio.run(run_search({}, table=table, initial=ROOT, cfg=config(num_samples=max(len(texts), 1))))
    tree = run.search.tree
    assert tree is not None
    assert [edge.tactic for edge in tree.root.out_edges] == _plain_unique(texts)
    assert run.result.stats.duplicate_candidates == len(texts) - len(tree.root.out_edges)

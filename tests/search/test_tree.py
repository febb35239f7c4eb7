"""The search graph on its own: node table, frontier order, status propagation and the invariant check."""

from __future__ import annotations

import pytest

from lean_env.types import ProofState, TacticError, TacticErrorKind
from search import NodeStatus, SearchTree, TacticCandidate, TreeInvariantError
from search.tree import Edge, Node

ERROR = TacticError(TacticErrorKind.LEAN_ERROR, "failed")


def S(text: str) -> ProofState:
    return ProofState.from_pp(text)


def C(text: str, logprob: float = -1.0) -> TacticCandidate:
    return TacticCandidate(text, logprob, 1)


def progress(tree: SearchTree, src: Node, tactic: str, state: str, score: float = -1.0) -> Edge:
    edge = tree.add_progress(src, C(tactic, score), score, S(state))
    tree.check_invariants()
    return edge


def test_root_is_in_the_table_and_popped_once() -> None:
    tree = SearchTree(S("⊢ p"))
    assert tree.nodes[S("⊢ p")] is tree.root
    assert tree.pop_best() is tree.root
    tree.mark_explored(tree.root)
    assert tree.pop_best() is None
    assert tree.root.status is NodeStatus.FAILED  # explored with no tactic at all
    tree.check_invariants()


def test_progress_creates_a_child_with_the_path_score() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    edge = progress(tree, root, "intro", "a", -2.5)
    child = tree.nodes[S("a")]
    assert edge.dst is child and edge.kind == "progress"
    assert (child.priority, child.depth, child.parent_edge) == (-2.5, 1, edge)
    assert child.in_edges == [edge] and root.out_edges == [edge]
    assert tree.num_edges == 1


def test_transposition_merges_into_one_node_with_two_in_edges() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    first = progress(tree, root, "intro x", "common", -1.0)
    second = progress(tree, root, "intros", "common", -3.0)
    assert len(tree.nodes) == 2
    node = tree.nodes[S("common")]
    assert first.dst is node and second.dst is node
    assert node.in_edges == [first, second]
    assert node.priority == -1.0 and node.parent_edge is first  # the worse path changes nothing
    tree.mark_explored(root)
    assert tree.pop_best() is node
    assert tree.pop_best() is None  # one frontier entry for the merged node


def test_better_path_reprioritises_an_unexplored_node() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    progress(tree, root, "t1", "A", -3.0)
    progress(tree, root, "t2", "B", -1.0)
    progress(tree, root, "t3", "C", -2.0)
    tree.mark_explored(root)
    b = tree.pop_best()
    assert b is not None and b.state == S("B")
    better = progress(tree, b, "t4", "A", -0.5)
    tree.mark_explored(b)
    a = tree.nodes[S("A")]
    assert a.priority == -1.5 and a.parent_edge is better
    assert [edge.tactic for edge in tree.path_to(a)] == ["t2", "t4"]
    # A (-1.5) now comes before C (-2.0); the stale A entry (-3.0) is skipped later.
    assert tree.pop_best() is a
    tree.mark_explored(a)
    c = tree.pop_best()
    assert c is not None and c.state == S("C")
    tree.mark_explored(c)
    assert tree.pop_best() is None


def test_better_path_to_an_ancestor_does_not_make_a_cycle() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    progress(tree, root, "down", "A", -1.0)
    a = tree.nodes[S("A")]
    # A (positive, artificial) score that would beat the root's own priority through its child.
    back = progress(tree, a, "up", "root", 5.0)
    assert root.parent_edge is None and root.priority == 0.0
    assert back in root.in_edges
    assert tree.path_to(a)[0].tactic == "down"


def test_ties_are_broken_by_insertion_order() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    for name in ["x", "y", "z"]:
        progress(tree, root, f"go {name}", name, -1.0)
    tree.mark_explored(root)
    order = []
    while (node := tree.pop_best()) is not None:
        order.append(node.state.pp)
        tree.mark_explored(node)
    assert order == ["x", "y", "z"]


def test_proof_propagates_to_every_parent_and_is_extracted_by_walking_down() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    progress(tree, root, "a", "A")
    progress(tree, root, "b", "B")
    tree.mark_explored(root)
    a = tree.nodes[S("A")]
    progress(tree, a, "a2", "D")
    b = tree.nodes[S("B")]
    progress(tree, b, "b2", "D")
    d = tree.nodes[S("D")]
    closing = tree.add_proof(d, C("omega"), -1.0)
    tree.check_invariants()
    assert closing.kind == "proof"
    assert {node.status for node in (root, a, b, d)} == {NodeStatus.PROVED}
    tactics = [edge.tactic for edge in tree.proof_edges()]
    assert tactics[-2:] == ["a2", "omega"] or tactics[-2:] == ["b2", "omega"]
    assert tactics[0] in {"a", "b"} and len(tactics) == 3


def test_progress_into_a_proved_state_proves_the_source() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    progress(tree, root, "a", "A")
    a = tree.nodes[S("A")]
    tree.add_proof(a, C("simp"), -1.0)
    assert root.status is NodeStatus.PROVED
    tree2 = SearchTree(S("root"))
    r2 = tree2.pop_best()
    assert r2 is not None
    progress(tree2, r2, "a", "A")
    tree2.add_proof(tree2.nodes[S("A")], C("simp"), -1.0)
    late = progress(tree2, r2, "b", "A")  # another route into the proved state
    assert late.dst is tree2.nodes[S("A")] and r2.status is NodeStatus.PROVED


def test_failure_needs_exploration_and_propagates_when_every_edge_is_dead() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    progress(tree, root, "a", "A")
    progress(tree, root, "b", "B")
    tree.add_error(root, C("bad"), -1.0, ERROR)
    tree.mark_explored(root)
    a = tree.nodes[S("A")]
    b = tree.nodes[S("B")]
    tree.add_error(a, C("x"), -1.0, ERROR)
    assert a.status is NodeStatus.OPEN  # not explored yet: more candidates may come
    tree.mark_explored(a)
    tree.check_invariants()
    assert a.status is NodeStatus.FAILED
    assert root.status is NodeStatus.OPEN  # B is still alive
    progress(tree, b, "loop", "B")  # a self-loop is a dead edge
    progress(tree, b, "back", "A")  # into a failed node: dead
    tree.mark_explored(b)
    tree.check_invariants()
    assert b.status is NodeStatus.FAILED and root.status is NodeStatus.FAILED


def test_a_cycle_between_explored_nodes_stays_open() -> None:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    progress(tree, root, "a", "A")
    tree.mark_explored(root)
    a = tree.pop_best()
    assert a is not None
    progress(tree, a, "back", "root")
    tree.mark_explored(a)
    tree.check_invariants()
    # Neither can fail while the other is open, and there is nothing left to expand.
    assert root.status is NodeStatus.OPEN and a.status is NodeStatus.OPEN
    assert tree.pop_best() is None
    assert tree.proof_edges() == []


def _small_tree() -> tuple[SearchTree, Node, Node]:
    tree = SearchTree(S("root"))
    root = tree.pop_best()
    assert root is not None
    progress(tree, root, "a", "A")
    tree.add_error(root, C("bad"), -1.0, ERROR)
    return tree, root, tree.nodes[S("A")]


def test_invariant_check_catches_proved_without_a_proving_edge() -> None:
    tree, root, _ = _small_tree()
    root.status = NodeStatus.PROVED
    with pytest.raises(TreeInvariantError, match="PROVED"):
        tree.check_invariants()


def test_invariant_check_catches_an_edge_with_two_outcomes() -> None:
    tree, root, _ = _small_tree()
    root.out_edges[1].closes_proof = True
    with pytest.raises(TreeInvariantError, match="outcomes"):
        tree.check_invariants()


def test_invariant_check_catches_a_lost_edge_count() -> None:
    tree, _, _ = _small_tree()
    tree.num_edges += 1
    with pytest.raises(TreeInvariantError, match="edge count"):
        tree.check_invariants()


def test_invariant_check_catches_a_node_that_should_have_failed() -> None:
    tree, root, a = _small_tree()
    tree.mark_explored(root)
    a.explored = True  # explored with no edge, but never marked FAILED
    with pytest.raises(TreeInvariantError, match="should have FAILED"):
        tree.check_invariants()


def test_invariant_check_catches_failed_with_a_live_edge() -> None:
    tree, root, _ = _small_tree()
    root.explored = True
    root.status = NodeStatus.FAILED
    with pytest.raises(TreeInvariantError, match="live edge"):
        tree.check_invariants()


def test_invariant_check_catches_a_missing_in_edge() -> None:
    tree, _, a = _small_tree()
    a.in_edges.clear()
    with pytest.raises(TreeInvariantError, match="in-edges"):
        tree.check_invariants()


def test_frontier_size_counts_open_unexplored_nodes_once() -> None:
    tree = SearchTree(S("root"))
    assert tree.frontier_size == 1
    root = tree.pop_best()
    assert root is not None
    progress(tree, root, "a", "A", -1.0)
    progress(tree, root, "b", "B", -3.0)
    progress(tree, root, "b'", "B", -0.5)  # a better path re-pushes B: two queue entries, one node
    progress(tree, root, "c", "C", -2.0)
    tree.mark_explored(root)
    assert tree.frontier_size == 3  # A, B, C
    a = tree.nodes[S("A")]
    tree.add_proof(tree.nodes[S("C")], C("done"), -1.0)  # C proved before it was expanded
    assert tree.frontier_size == 2 and tree.root.status is NodeStatus.PROVED
    tree.add_error(a, C("x"), -1.0, ERROR)
    tree.mark_explored(a)
    assert tree.frontier_size == 1
    tree.check_invariants()


def _edge_rows(node: Node) -> list[tuple[str, str, float]]:
    return [(edge.tactic, edge.kind, edge.score) for edge in node.out_edges]


def test_pass_errors_take_their_places_among_the_other_edges() -> None:
    # Candidates a (error), b (progress), c, d (errors), e (progress), f (error), as a search applies them.
    tree = SearchTree(S("root"))
    root = tree.root
    candidates = [C(text, -float(k + 1)) for k, text in enumerate("abcdef")]
    scores = [-float(k + 1) for k in range(6)]
    outcomes: list[TacticError | None] = [ERROR, None, ERROR, ERROR, None, ERROR]
    for index in (1, 4):
        tree.add_progress(root, candidates[index], scores[index], S(f"after {index}"))
    tree.add_pass_errors(root, candidates, scores, outcomes)
    assert tree.num_edges == 6
    expected = [("a", "lean_error", -1.0), ("b", "progress", -2.0), ("c", "lean_error", -3.0)]
    expected += [("d", "lean_error", -4.0), ("e", "progress", -5.0), ("f", "lean_error", -6.0)]
    assert _edge_rows(root) == expected
    assert all(edge.src is root for edge in root.out_edges)
    tree.mark_explored(root)
    tree.check_invariants()


def test_pass_errors_after_earlier_edges_keep_those_first() -> None:
    tree = SearchTree(S("root"))
    root = tree.root
    held = root.out_edges  # a caller may hold the list: it must see every edge
    first = tree.add_progress(root, C("first"), -1.0, S("x"))
    tree.add_pass_errors(root, [C("first"), C("bad")], [-1.0, -1.0], [None, ERROR])  # left unbuilt
    candidates = [C("g"), C("h")]
    tree.add_progress(root, candidates[1], -1.0, S("y"))
    tree.add_pass_errors(root, candidates, [-1.0, -1.0], [ERROR, None])
    assert [edge.tactic for edge in held] == ["first", "bad", "g", "h"]
    assert root.out_edges is held and held[0] is first
    assert tree.num_edges == 4
    tree.check_invariants()


def test_pass_errors_without_errors_add_nothing() -> None:
    tree = SearchTree(S("root"))
    tree.add_progress(tree.root, C("a"), -1.0, S("x"))
    tree.add_pass_errors(tree.root, [C("a")], [-1.0], [None])
    assert [edge.tactic for edge in tree.root.out_edges] == ["a"] and tree.num_edges == 1
    tree.check_invariants()

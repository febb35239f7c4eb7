"""The search graph: one node per distinct Lean state, edges that carry tactics.

Shaped after ReProver's search tree: a status per node (OPEN, PROVED, FAILED) that propagates
upward, error edges that record why a tactic failed, and proof extraction by walking down the
edges that proved each node. Unlike a tree, the node table is keyed by `ProofState`, so two tactic
paths that reach the same state share one node (it is a graph, possibly with cycles).
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Iterator, Sequence
from enum import StrEnum
from heapq import heappush
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lean_env.types import ProofState, TacticError, TacticOutcome
from search.types import TacticCandidate

if TYPE_CHECKING:
    import networkx as nx


class NodeStatus(StrEnum):
    OPEN = "open"
    PROVED = "proved"
    FAILED = "failed"


class TreeInvariantError(RuntimeError):
    """The search graph is inconsistent: a bug in the search, never a property of the theorem."""


class ScoreLookup(Protocol):
    """Scores by candidate index: a list of floats, or anything that computes them when read."""

    def __getitem__(self, index: int, /) -> float: ...


_ErrorRun = tuple[Sequence[TacticOutcome | None], Sequence[TacticCandidate], ScoreLookup, int]
"""(outcomes, candidates, scores, merged) of a node's error edges not built yet (`add_pass_errors`):
every `TacticError` in outcomes is an error edge and every None stands for the next of the first
`merged` entries of `_out`."""

_NO_EDGES: Any = ()
"""The out-edges of a node nothing was added to yet (shared: most nodes are never expanded)."""


class Edge:
    """A tactic applied to `src`. Exactly one of: leads to `dst`, closes the proof, or is an `error`."""

    # A plain slotted class with a hand-written constructor, not a dataclass: a search builds
    # several per expansion and the generated `__init__` costs noticeably more. Identity is equality.
    __slots__ = ("closes_proof", "dst", "error", "logprob", "num_tokens", "score", "src", "tactic")
    # The candidate's fields are kept rather than the candidate object: a search keeps every edge
    # alive, and one object fewer per edge is a third less for the garbage collector to walk.

    def __init__(
        self,
        src: Node,
        tactic: str,
        logprob: float,
        num_tokens: int,
        score: float,
        dst: Node | None = None,
        closes_proof: bool = False,
        error: TacticError | None = None,
    ) -> None:
        self.src = src
        self.tactic = tactic
        self.logprob = logprob
        self.num_tokens = num_tokens
        self.score = score
        self.dst = dst
        self.closes_proof = closes_proof
        self.error = error

    def __repr__(self) -> str:
        target = "proof" if self.closes_proof else (self.error if self.error is not None else self.dst)
        return f"Edge(src={self.src.id}, tactic={self.tactic!r}, score={self.score!r}, to={target!r})"

    @property
    def kind(self) -> str:
        if self.error is not None:
            return self.error.kind.value
        return "proof" if self.closes_proof else "progress"

    @property
    def is_dead(self) -> bool:
        """True when this edge can no longer lead to a proof."""
        if self.error is not None:
            return True
        if self.closes_proof:
            return False
        assert self.dst is not None
        return self.dst is self.src or self.dst.status is NodeStatus.FAILED


class Node:
    """One distinct proof state. `priority` is the best path score found so far (higher is better).

    `parent_edge` is the edge on the best-priority path from the root (None for the root).
    A plain slotted class for the same reason as `Edge`.
    """

    __slots__ = (
        "_errors",
        "_in",
        "_out",
        "depth",
        "explored",
        "id",
        "parent_edge",
        "priority",
        "proved_by",
        "state",
        "status",
    )

    def __init__(self, id: int, state: ProofState, priority: float, depth: int, parent_edge: Edge | None) -> None:
        self.id = id
        self.state = state
        self.priority = priority
        self.depth = depth
        self.parent_edge = parent_edge
        self.status = NodeStatus.OPEN
        self.explored = False
        self._out: list[Edge] = _NO_EDGES
        """The out-edges built so far, in the order they were added; the error edges of `_errors` are
        spliced in when `out_edges` is first read. Most nodes are never expanded, so a node starts
        with the shared empty tuple and gets its own list with its first out-edge."""
        self._in: Edge | list[Edge] = [] if parent_edge is None else parent_edge
        """`in_edges`, or its only edge (most nodes are reached once: no list for those)."""
        self.proved_by: Edge | None = None
        self._errors: _ErrorRun | None = None
        """The error edges not built yet (see `_ErrorRun`)."""

    def __repr__(self) -> str:
        return (
            f"Node(id={self.id}, state={self.state!r}, priority={self.priority!r}, depth={self.depth}, "
            f"status={self.status!r}, explored={self.explored})"
        )

    @property
    def in_edges(self) -> list[Edge]:
        """Every edge into this node; a new node's first is the edge that found it."""
        edges = self._in
        if edges.__class__ is Edge:
            edges = self._in = [edges]  # type: ignore[list-item]  # a list of its own from now on
        return edges  # type: ignore[return-value]

    def _add_in_edge(self, edge: Edge) -> None:
        edges = self._in
        if edges.__class__ is Edge:
            self._in = [edges, edge]  # type: ignore[list-item]
        else:
            edges.append(edge)  # type: ignore[union-attr]

    @property
    def out_edges(self) -> list[Edge]:
        """Every edge leaving this node, in the order it was added (error edges included)."""
        if self._errors is not None:
            self._build_error_edges()
        elif self._out is _NO_EDGES:
            self._out = []  # a list of its own: a caller may hold it while edges are added
        return self._out

    def _build_error_edges(self) -> None:
        assert self._errors is not None
        outcomes, candidates, scores, merged = self._errors
        built: list[Edge] = []
        out = self._out
        others = iter(out[:merged])
        for index, outcome in enumerate(outcomes):
            if outcome is None:
                built.append(next(others))
                continue
            assert isinstance(outcome, TacticError)
            candidate = candidates[index]
            built.append(
                Edge(self, candidate.text, candidate.logprob, candidate.num_tokens, scores[index], None, False, outcome)
            )
        built.extend(out[merged:])
        if out is _NO_EDGES:
            self._out = built
        else:
            out[:] = built  # in place: a caller may hold the list
        self._errors = None

    def has_live_edge(self) -> bool:
        """Whether an out-edge may still lead to a proof (error edges, built or not, never do)."""
        failed = NodeStatus.FAILED
        for edge in self._out:
            if edge.error is not None:
                continue
            if edge.closes_proof:
                return True
            dst = edge.dst
            if dst is not self and dst.status is not failed:  # type: ignore[union-attr]
                return True
        return False


class SearchTree:
    """The node table, the frontier (a max-priority queue with lazy deletion) and status propagation."""

    def __init__(self, root_state: ProofState) -> None:
        self._push_order = itertools.count()
        self.nodes: dict[ProofState, Node] = {}
        self._by_id: list[Node] = []
        self.root = self._new_node(root_state, priority=0.0, depth=0, parent_edge=None)
        # Entries hold the node's id, not the node: a tuple of numbers is one object fewer for the
        # garbage collector to walk, and a large search pushes hundreds of thousands of them.
        self._frontier: list[tuple[float, int, int]] = []
        self._push(self.root)
        self.num_edges = 0
        self._open = 1
        """Nodes that are OPEN and not explored yet: what `pop_best` may still return."""

    # -- building -------------------------------------------------------------------------

    def _new_node(self, state: ProofState, priority: float, depth: int, parent_edge: Edge | None) -> Node:
        node = Node(id=len(self._by_id), state=state, priority=priority, depth=depth, parent_edge=parent_edge)
        self.nodes[state] = node
        self._by_id.append(node)
        return node

    def _push(self, node: Node) -> None:
        # Ties broken by push order, so the search is deterministic.
        heappush(self._frontier, (-node.priority, next(self._push_order), node.id))

    def pop_best(self) -> Node | None:
        """The open, unexplored node with the highest priority, or None when there is none."""
        while self._frontier:
            neg_priority, _, node_id = heapq.heappop(self._frontier)
            node = self._by_id[node_id]
            if node.explored or node.status is not NodeStatus.OPEN or -neg_priority != node.priority:
                continue  # stale entry: explored, decided, or re-pushed with a better priority
            return node
        return None

    def add_progress(self, src: Node, candidate: TacticCandidate, score: float, state: ProofState) -> Edge:
        """Record that `candidate` took `src` to `state`, merging with an existing node for that state."""
        # The hot path of a search (several calls per expansion): node creation, the push and
        # `_link` are written out here rather than called.
        priority = src.priority + score
        nodes = self.nodes
        dst = nodes.get(state)
        edge = Edge(src, candidate.text, candidate.logprob, candidate.num_tokens, score)
        if dst is None:
            by_id = self._by_id
            node_id = len(by_id)  # ids count the nodes from 0
            edge.dst = dst = Node(node_id, state, priority, src.depth + 1, edge)  # `edge` is its in-edge
            nodes[state] = dst
            by_id.append(dst)
            self._open += 1
            heappush(self._frontier, (-priority, next(self._push_order), node_id))
            out = src._out
            if out is _NO_EDGES:
                src._out = [edge]
            else:
                out.append(edge)
            self.num_edges += 1
            return edge  # a new node is OPEN: nothing to propagate
        if priority > dst.priority and dst is not src and not _is_ancestor(dst, src):
            # A better path to a known state: the node keeps one identity and takes the better priority.
            dst.priority = priority
            dst.depth = min(dst.depth, src.depth + 1)
            dst.parent_edge = edge
            if not dst.explored and dst.status is NodeStatus.OPEN:
                self._push(dst)
        edge.dst = dst
        out = src._out
        if out is _NO_EDGES:
            src._out = [edge]
        else:
            out.append(edge)
        ins = dst._in  # `_add_in_edge`, inlined
        if ins.__class__ is Edge:
            dst._in = [ins, edge]  # type: ignore[list-item]
        else:
            ins.append(edge)  # type: ignore[union-attr]
        self.num_edges += 1
        if dst.status is NodeStatus.PROVED:
            self._mark_proved(src, edge)
        return edge

    def add_proof(self, src: Node, candidate: TacticCandidate, score: float) -> Edge:
        """Record that `candidate` closed every goal of `src`; propagates PROVED upward."""
        edge = Edge(src, candidate.text, candidate.logprob, candidate.num_tokens, score, closes_proof=True)
        self._link(edge)
        self._mark_proved(src, edge)
        return edge

    def add_error(self, src: Node, candidate: TacticCandidate, score: float, error: TacticError) -> Edge:
        """Record that `candidate` failed on `src` with `error`."""
        edge = Edge(src, candidate.text, candidate.logprob, candidate.num_tokens, score, None, False, error)
        self._link(edge)
        return edge

    def add_pass_errors(
        self,
        src: Node,
        candidates: Sequence[TacticCandidate],
        scores: ScoreLookup,
        outcomes: Sequence[TacticOutcome | None],
    ) -> None:
        """Record the error edges of one pass over `candidates` on `src`, in order among its other edges.

        `outcomes[i]` is what `candidates[i]` did, for each candidate applied, in order: a
        `TacticError` for an error edge to record now, or None for a candidate whose edge was
        already added (`add_progress`, `add_proof`, `add_error`), one each, in the same order, as
        the last out-edges of `src`. Most candidates fail, and an `Edge` object each is most of what
        a search allocates and what the garbage collector walks, so the sequences are kept (the
        caller must not change them) and the error edges are built only when `out_edges` is first
        read; `scores` is read only then, so it may compute its entries on demand.
        """
        others = outcomes.count(None)
        errors = len(outcomes) - others
        if not errors:
            return
        out = src._out
        if src._errors is not None or len(out) != others:
            # Edges from before this pass, or unbuilt ones: build the lot and splice these errors
            # in among the last `others` edges now. Never the case in a search, which expands a
            # node once.
            existing = src.out_edges
            before = len(existing) - others
            added = iter(existing[before:])
            existing[before:] = [
                next(added)
                if outcome is None
                else Edge(
                    src,
                    candidates[index].text,
                    candidates[index].logprob,
                    candidates[index].num_tokens,
                    scores[index],
                    None,
                    False,
                    outcome,  # type: ignore[arg-type]
                )
                for index, outcome in enumerate(outcomes)
            ]
            self.num_edges += errors
            return
        src._errors = (outcomes, candidates, scores, others)
        self.num_edges += errors

    def _link(self, edge: Edge) -> None:
        src = edge.src
        if src._out is _NO_EDGES:
            src._out = []
        src._out.append(edge)
        if edge.dst is not None:
            edge.dst._add_in_edge(edge)
        self.num_edges += 1

    def mark_explored(self, node: Node) -> None:
        """Call once every candidate of `node` has been applied; may propagate FAILED upward."""
        if node.status is NodeStatus.OPEN:
            if not node.explored:
                self._open -= 1
            node.explored = True
            if not node.has_live_edge():  # the common case, a live edge, needs no propagation
                self._maybe_fail(node)
        else:
            node.explored = True

    # -- status propagation -----------------------------------------------------------------

    def _mark_proved(self, node: Node, edge: Edge) -> None:
        stack = [(node, edge)]
        while stack:
            current, via = stack.pop()
            if current.status is NodeStatus.PROVED:
                continue
            if current.status is NodeStatus.OPEN and not current.explored:
                self._open -= 1
            current.status = NodeStatus.PROVED
            current.proved_by = via
            for parent_edge in current.in_edges:
                if parent_edge.src.status is not NodeStatus.PROVED:
                    stack.append((parent_edge.src, parent_edge))

    def _maybe_fail(self, node: Node) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if current.status is not NodeStatus.OPEN or not current.explored:
                continue
            if not current.has_live_edge():
                current.status = NodeStatus.FAILED
                stack.extend(edge.src for edge in current.in_edges)

    # -- reading ----------------------------------------------------------------------------

    def path_to(self, node: Node) -> list[Edge]:
        """The tactic edges on `node`'s best path from the root."""
        edges: list[Edge] = []
        current = node
        while current.parent_edge is not None:
            edges.append(current.parent_edge)
            current = current.parent_edge.src
        edges.reverse()
        return edges

    def proof_edges(self) -> list[Edge]:
        """The edges of the proof of the root, walking down `proved_by`. Empty if the root is not proved."""
        if self.root.status is not NodeStatus.PROVED:
            return []
        edges: list[Edge] = []
        current: Node | None = self.root
        while current is not None:
            edge = current.proved_by
            if edge is None:
                raise TreeInvariantError(f"node {current.id} is PROVED without a proving edge")
            edges.append(edge)
            current = None if edge.closes_proof else edge.dst
        return edges

    def best_open(self, k: int) -> list[tuple[Node, float]]:
        """The `k` open, unexplored nodes with the highest priority, best first, with their priority.

        One pass over the frontier (stale entries skipped): cheap enough a few times a second,
        not meant for every expansion.
        """
        if k <= 0:
            return []
        by_id = self._by_id
        live = (
            entry
            for entry in self._frontier
            if not (node := by_id[entry[2]]).explored and node.status is NodeStatus.OPEN and -entry[0] == node.priority
        )
        return [(by_id[node_id], -neg_priority) for neg_priority, _, node_id in heapq.nsmallest(k, live)]

    def iter_edges(self) -> Iterator[Edge]:
        for node in self.nodes.values():
            yield from node.out_edges

    @property
    def frontier_size(self) -> int:
        """How many nodes are open and not yet explored (stale queue entries are not counted)."""
        return self._open

    # -- debugging and export --------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise `TreeInvariantError` if statuses, edges or the node table disagree."""
        if self.nodes.get(self.root.state) is not self.root:
            raise TreeInvariantError("the root is not in the node table")
        edge_count = 0
        for state, node in self.nodes.items():
            if node.state != state:
                raise TreeInvariantError(f"node {node.id} is filed under another state")
            for edge in node.out_edges:
                edge_count += 1
                if edge.src is not node:
                    raise TreeInvariantError(f"edge {edge.tactic!r} of node {node.id} has another source")
                outcomes = (edge.dst is not None) + edge.closes_proof + (edge.error is not None)
                if outcomes != 1:
                    raise TreeInvariantError(f"edge {edge.tactic!r} of node {node.id} has {outcomes} outcomes")
                if edge.dst is not None and edge not in edge.dst.in_edges:
                    raise TreeInvariantError(f"edge {edge.tactic!r} missing from its target's in-edges")
                leads_to_proof = edge.closes_proof or (edge.dst is not None and edge.dst.status is NodeStatus.PROVED)
                if leads_to_proof and node.status is not NodeStatus.PROVED:
                    raise TreeInvariantError(f"node {node.id} has a proving edge but is {node.status}")
            if node.status is NodeStatus.PROVED:
                via = node.proved_by
                if via is None or via.src is not node:
                    raise TreeInvariantError(f"node {node.id} is PROVED without its own proving edge")
                if not (via.closes_proof or (via.dst is not None and via.dst.status is NodeStatus.PROVED)):
                    raise TreeInvariantError(f"node {node.id} is PROVED by an edge that proves nothing")
            elif node.status is NodeStatus.FAILED:
                if not node.explored:
                    raise TreeInvariantError(f"node {node.id} FAILED before it was explored")
                if not all(edge.is_dead for edge in node.out_edges):
                    raise TreeInvariantError(f"node {node.id} FAILED with a live edge")
            elif node.explored and all(edge.is_dead for edge in node.out_edges):
                raise TreeInvariantError(f"node {node.id} should have FAILED")
        if edge_count != self.num_edges:
            raise TreeInvariantError(f"edge count {self.num_edges} but {edge_count} edges in the graph")
        frontier = sum(1 for node in self.nodes.values() if node.status is NodeStatus.OPEN and not node.explored)
        if frontier != self._open:
            raise TreeInvariantError(f"frontier size {self._open} but {frontier} open unexplored nodes")
        try:
            self.proof_edges()
        except TreeInvariantError:
            raise
        except RecursionError as error:  # pragma: no cover - defensive
            raise TreeInvariantError("proof extraction does not terminate") from error

    def to_networkx(self) -> nx.MultiDiGraph:
        """A MultiDiGraph for inspection: state nodes, plus one sink per error and per proof edge."""
        import networkx as nx

        graph = nx.MultiDiGraph(root=f"n{self.root.id}")
        for node in self.nodes.values():
            graph.add_node(
                f"n{node.id}",
                kind="state",
                pp=node.state.pp,
                status=node.status.value,
                priority=node.priority,
                depth=node.depth,
                explored=node.explored,
            )
        sink_ids = itertools.count()
        proof_edges = {id(edge) for edge in self.proof_edges()}
        for edge in self.iter_edges():
            if edge.dst is not None:
                target = f"n{edge.dst.id}"
            else:
                target = f"{'proof' if edge.closes_proof else 'error'}{next(sink_ids)}"
                graph.add_node(target, kind=edge.kind, message=edge.error.message if edge.error else "")
            graph.add_edge(
                f"n{edge.src.id}",
                target,
                tactic=edge.tactic,
                kind=edge.kind,
                score=edge.score,
                logprob=edge.logprob,
                num_tokens=edge.num_tokens,
                on_proof=id(edge) in proof_edges,
            )
        return graph

    def to_json(self) -> dict[str, Any]:
        """The graph in networkx's node-link form, ready for `json.dumps`."""
        from networkx.readwrite import json_graph

        return dict(json_graph.node_link_data(self.to_networkx(), edges="edges"))

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")

    def write_graphml(self, path: Path) -> None:
        import networkx as nx

        nx.write_graphml(self.to_networkx(), path)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT: states as boxes, the proof path in bold green, errors as red sinks."""
        graph = self.to_networkx()

        def quote(text: object) -> str:
            return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\l") + '"'

        colours = {"proved": "darkgreen", "failed": "firebrick", "open": "black"}
        lines = ["digraph search {", "  node [fontname=monospace, fontsize=9];"]
        for name, data in graph.nodes(data=True):
            if data["kind"] == "state":
                label = f"{data['pp']}\n[{data['status']}, priority {data['priority']:.2f}]"
                colour = colours.get(data["status"], "black")
                lines.append(f"  {name} [shape=box, color={colour}, label={quote(label)}];")
            else:
                colour = "darkgreen" if data["kind"] == "proof" else "firebrick"
                lines.append(
                    f"  {name} [shape=point, color={colour}, xlabel={quote(str(data.get('message', ''))[:80])}];"
                )
        for source, target, data in graph.edges(data=True):
            style = (
                "style=bold, color=darkgreen"
                if data["on_proof"]
                else ("color=firebrick" if target.startswith("error") else "color=gray40")
            )
            lines.append(f"  {source} -> {target} [{style}, label={quote(data['tactic'])}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def write_dot(self, path: Path) -> None:
        path.write_text(self.to_dot(), encoding="utf-8")

    def write(self, path: Path) -> None:
        """Write the graph in the format `path`'s suffix names: `.json`, `.graphml` or `.dot`."""
        writers = {".json": self.write_json, ".graphml": self.write_graphml, ".dot": self.write_dot}
        writer = writers.get(path.suffix.lower())
        if writer is None:
            raise ValueError(f"{path}: the graph formats are {', '.join(writers)}; the suffix says which")
        writer(path)


TREE_FORMATS: tuple[str, ...] = (".json", ".graphml", ".dot")
"""The suffixes `SearchTree.write` understands."""


def _is_ancestor(candidate: Node, node: Node) -> bool:
    """Whether `candidate` lies on `node`'s best path from the root (re-parenting it would make a cycle)."""
    current: Node | None = node
    while current is not None:
        if current is candidate:
            return True
        current = current.parent_edge.src if current.parent_edge is not None else None
    return False

"""Exporting the search graph for inspection: networkx, node-link JSON and GraphML, read back by networkx."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
from networkx.readwrite import json_graph

from lean_env.types import ProofClosed, TacticError, TacticErrorKind
from search import SearchStatus, SearchTree
from tests.search.helpers import run_search
from tests.stand_ins.scripted import Script, Unsound

SCRIPT: Script = {
    "x : ℕ\n⊢ x + 0 = x": {
        "intro h": "⊢ ∀ y, y = y",
        "intros": "⊢ ∀ y, y = y",
        "norm_num [h₀]": TacticError(TacticErrorKind.LEAN_ERROR, "unsolved goals\n⊢ False"),
        "exact?": Unsound(),
    },
    "⊢ ∀ y, y = y": {"calc x = x := rfl\n  _ = x := rfl": ProofClosed()},
}
ROOT = "x : ℕ\n⊢ x + 0 = x"


async def _tree() -> SearchTree:
    run = await run_search(SCRIPT, initial=ROOT)
    assert run.result.status is SearchStatus.PROVED
    assert run.search.tree is not None
    return run.search.tree


def _edge_records(graph: nx.MultiDiGraph) -> list[tuple[str, str, str, str, bool]]:
    return sorted((u, v, data["tactic"], data["kind"], bool(data["on_proof"])) for u, v, data in graph.edges(data=True))


async def test_networkx_graph_has_states_sinks_and_the_proof() -> None:
    tree = await _tree()
    graph = tree.to_networkx()
    states = [n for n, d in graph.nodes(data=True) if d["kind"] == "state"]
    assert len(states) == len(tree.nodes) == 2
    assert graph.number_of_edges() == tree.num_edges == 5
    assert graph.graph["root"] == "n0" and graph.nodes["n0"]["pp"] == ROOT
    assert graph.nodes["n0"]["status"] == "proved"
    # The transposition: two parallel edges into one state node.
    assert graph.number_of_edges("n0", "n1") == 2
    kinds = sorted(d["kind"] for _, _, d in graph.edges(data=True))
    assert kinds == ["lean_error", "progress", "progress", "proof", "unverified"]
    on_proof = [d["tactic"] for _, _, d in graph.edges(data=True) if d["on_proof"]]
    assert sorted(on_proof) == sorted(edge.tactic for edge in tree.proof_edges())
    errors = [d for n, d in graph.nodes(data=True) if d["kind"] == "lean_error"]
    assert errors[0]["message"] == "unsolved goals\n⊢ False"


async def test_json_round_trips_through_networkx(tmp_path: Path) -> None:
    tree = await _tree()
    path = tmp_path / "tree.json"
    tree.write_json(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(tree.to_json()))
    graph = json_graph.node_link_graph(data, edges="edges")
    original = tree.to_networkx()
    assert isinstance(graph, nx.MultiDiGraph)
    assert dict(graph.nodes(data=True)) == dict(original.nodes(data=True))
    assert _edge_records(graph) == _edge_records(original)
    assert graph.graph["root"] == "n0"


async def test_graphml_round_trips_through_networkx(tmp_path: Path) -> None:
    tree = await _tree()
    path = tmp_path / "tree.graphml"
    tree.write_graphml(path)
    graph = nx.read_graphml(path, force_multigraph=True)
    original = tree.to_networkx()
    assert graph.is_directed()
    assert set(graph.nodes) == set(original.nodes)
    assert graph.nodes["n0"]["pp"] == ROOT  # unicode and newlines survive
    assert graph.nodes["n1"]["priority"] == original.nodes["n1"]["priority"]
    assert graph.nodes["n0"]["explored"] is True
    assert _edge_records(graph) == _edge_records(original)
    calc = next(d for _, _, d in graph.edges(data=True) if d["kind"] == "proof")
    assert calc["tactic"] == "calc x = x := rfl\n  _ = x := rfl"


def test_an_unexplored_tree_exports_just_the_root(tmp_path: Path) -> None:
    from lean_env.types import ProofState

    tree = SearchTree(ProofState.from_pp("⊢ p"))
    tree.write_graphml(tmp_path / "t.graphml")
    graph = nx.read_graphml(tmp_path / "t.graphml")
    assert list(graph.nodes) == ["n0"] and graph.number_of_edges() == 0


async def test_dot_marks_the_proof_path_and_escapes_labels(tmp_path: Path) -> None:
    import shutil
    import subprocess

    tree = await _tree()
    text = tree.to_dot()
    assert text.startswith("digraph search {") and text.rstrip().endswith("}")
    edges = [line for line in text.splitlines() if " -> " in line]
    assert len(edges) == tree.num_edges
    bold = [line for line in edges if "style=bold" in line]
    assert len(bold) == len(tree.proof_edges())
    # A tactic's quote and line break cannot end its label early.
    assert '"calc x = x := rfl\\l  _ = x := rfl"' in text
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr


async def test_write_picks_the_format_by_suffix_and_refuses_others(tmp_path: Path) -> None:
    import pytest

    tree = await _tree()
    for suffix in (".json", ".graphml", ".dot"):
        tree.write(tmp_path / f"tree{suffix}")
    assert json.loads((tmp_path / "tree.json").read_text())["directed"] is True
    assert nx.read_graphml(tmp_path / "tree.graphml").number_of_edges() == tree.num_edges
    assert (tmp_path / "tree.dot").read_text().startswith("digraph")
    with pytest.raises(ValueError, match=r"\.json, \.graphml, \.dot"):
        tree.write(tmp_path / "tree.png")

"""`prover tree RUN NAME`: draw one theorem's search tree, exported by `prover eval --export-trees`.

The tree file is the node-link JSON `SearchTree.write` produces (`search.tree.SearchTree.to_json`).
It is looked up in the `--export-trees` directory the run's manifest records, then in `RUN/trees`,
then in RUN itself; RUN may also be the JSON file. The drawing is matplotlib's (SVG or PNG, by the
suffix of `--out`), laid out here without Graphviz: depth is the row, and each state sits above the
middle of its children (a tidy tree over the shallowest path to every state).

What the picture shows: each state as a box (border green when proved, red when failed, grey when
open; a filled box was expanded) labelled with its id, its priority (the path score the search
ranks it by) and its first goal, truncated; progress edges in grey, the proof path thick green with
its tactics; the error edges of one state grouped by kind into one coloured dot with their count
(`x7`) and the legend naming the kinds; edges that rejoin a state reached earlier (transpositions)
dashed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from prover.cli.main import UserFacingError

ERROR_COLOURS: dict[str, str] = {
    "lean_error": "#d62728",
    "timeout": "#ff7f0e",
    "used_sorry": "#9467bd",
    "unsafe": "#8c564b",
    "unverified": "#e377c2",
}
"""One colour per `TacticErrorKind` value; an unknown kind is drawn black."""
PROOF_COLOUR = "#2ca02c"
STATUS_COLOURS = {"proved": PROOF_COLOUR, "failed": "#d62728", "open": "#7f7f7f"}
GOAL_CHARS = 34
TACTIC_CHARS = 28


@click.command(name="tree")
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.argument("name")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The picture: FILE.svg or FILE.png (default: NAME.svg beside the tree file).",
)
@click.option("--attempt", type=click.IntRange(min=0), help="An earlier attempt's tree (eval --attempts K).")
def tree(run: Path, name: str, out: Path | None, attempt: int | None) -> None:
    """Draw the search tree of theorem NAME from run directory RUN (exported with `eval --export-trees`).

    The proof path is thick green, errors are grouped by kind per state with a legend, and every
    state shows its priority and its goal.
    """
    source = find_tree(run, name, attempt)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserFacingError(f"{source}: not a readable search tree ({error})") from error
    target = out if out is not None else source.with_suffix(".svg")
    if target.suffix.lower() not in (".svg", ".png"):
        raise UserFacingError(f"--out {target}: the picture formats are .svg and .png; the suffix says which")
    title = name if attempt is None else f"{name} (attempt {attempt})"
    draw_tree(data, target, title=title)
    click.echo(str(target))


def tree_directories(run: Path) -> list[Path]:
    """Where the trees of run directory `run` may be: the manifest's `--export-trees` (latest session first),
    `run/trees`, `run`."""
    from prover.evaluation.manifest import MANIFEST_FILE

    places: list[Path] = []
    try:
        manifest = json.loads((run / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        manifest = {}
    if isinstance(manifest, dict):
        listed = manifest.get("sessions")
        sessions: list[Any] = listed if isinstance(listed, list) else []
        recorded = [session.get("trees") for session in reversed(sessions) if isinstance(session, dict)]
        recorded.append(manifest.get("trees"))
        places.extend(Path(place) for place in recorded if isinstance(place, str) and place)
    places.extend([run / "trees", run])
    unique: list[Path] = []
    for place in places:
        if place not in unique:
            unique.append(place)
    return unique


def find_tree(run: Path, name: str, attempt: int | None = None) -> Path:
    """The tree file of theorem `name` in run `run` (a run directory, a trees directory, or the file itself)."""
    from prover.evaluation.runner import tree_file

    if run.is_file():
        return run
    places = tree_directories(run)
    for place in places:
        candidate = tree_file(place, name, attempt)
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(tree_file(place, name, attempt)) for place in places)
    raise UserFacingError(
        f"no search tree of {name!r} in {run} (looked for {looked}); run `prover eval --export-trees`"
    )


@dataclass(slots=True)
class _Item:
    """One drawn thing: a state, the proof's end, or one state's errors of one kind."""

    key: str
    kind: str  # "state", "proof" or an error kind
    depth: int
    label: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    count: int = 1
    children: list[str] = field(default_factory=list)
    x: float = 0.0


@dataclass(slots=True)
class _Layout:
    items: dict[str, _Item]
    tree_edges: list[tuple[str, str, dict[str, Any]]]
    """Edges drawn solid: parent to child in the layout (progress, proof, grouped errors)."""
    extra_edges: list[tuple[str, str, dict[str, Any]]]
    """State-to-state edges outside the layout tree (transpositions, cycles, self-loops): drawn dashed."""
    leaves: int
    depth: int


def _goal_label(pp: str) -> str:
    goals = [line for line in pp.splitlines() if line.lstrip().startswith("⊢")]
    first = goals[0].strip() if goals else (pp.strip().splitlines() or [""])[-1].strip()
    if len(first) > GOAL_CHARS:
        first = first[: GOAL_CHARS - 1] + "…"
    more = f"  (+{len(goals) - 1} goals)" if len(goals) > 1 else ""
    return first + more


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def layout(data: dict[str, Any]) -> _Layout:
    """A tidy layered layout of the node-link tree `data`: rows by depth, parents over their children."""
    from networkx.readwrite import json_graph

    graph = json_graph.node_link_graph(data, edges="edges")
    root = graph.graph.get("root") or next(iter(graph.nodes), None)
    if root is None:
        raise UserFacingError("the search tree is empty")
    states = {node for node, attrs in graph.nodes(data=True) if attrs.get("kind") == "state"}
    items: dict[str, _Item] = {}
    tree_edges: list[tuple[str, str, dict[str, Any]]] = []
    extra_edges: list[tuple[str, str, dict[str, Any]]] = []

    def state_item(node: str, depth: int) -> _Item:
        attrs = graph.nodes[node]
        label = (
            f"#{node.lstrip('n')}  p={float(attrs.get('priority', 0.0)):.2f}\n{_goal_label(str(attrs.get('pp', '')))}"
        )
        return _Item(node, "state", depth, label, dict(attrs))

    # Breadth first from the root, best-scored edges first: each state hangs under the state that
    # reached it first at the shallowest depth, except that a state on the proof path hangs under its
    # predecessor on that path, so the proof is one unbroken line. Every other edge between states
    # is an extra edge.
    on_path = {target for _, target, attrs in graph.edges(data=True) if attrs.get("on_proof") and target in states}
    items[root] = state_item(root, 0)
    queue = [root]
    for node in queue:
        parent = items[node]
        out = sorted(graph.out_edges(node, data=True), key=lambda edge: -float(edge[2].get("score", 0.0)))
        buckets: dict[str, _Item] = {}
        for _, target, attrs in out:
            if target in states:
                reserved = target in on_path and not attrs.get("on_proof")
                if target in items or reserved:
                    extra_edges.append((node, target, attrs))
                    continue
                items[target] = state_item(target, parent.depth + 1)
                parent.children.append(target)
                tree_edges.append((node, target, attrs))
                queue.append(target)
            elif attrs.get("kind") == "proof":
                items[target] = _Item(target, "proof", parent.depth + 1, "QED", dict(graph.nodes[target]))
                parent.children.append(target)
                tree_edges.append((node, target, attrs))
            else:
                kind = str(attrs.get("kind", "error"))
                key = f"{node}:{kind}"
                if key not in buckets:
                    buckets[key] = items[key] = _Item(key, kind, parent.depth + 1, data={"score": attrs.get("score")})
                    tree_edges.append((node, key, {**attrs, "grouped": True}))
                else:
                    buckets[key].count += 1
        # Progress first (best score first), then the proof, then errors in a fixed kind order.
        order = {kind: index for index, kind in enumerate(ERROR_COLOURS)}
        grouped = sorted(buckets, key=lambda key: order.get(items[key].kind, len(order)))
        parent.children.extend(grouped)
    for item in items.values():
        if item.kind not in ("state", "proof"):
            item.label = f"×{item.count}"
    # States no path from the root reaches (none, in a well-formed tree) go on their own row below.
    deepest = max(item.depth for item in items.values())
    for node in sorted(states - set(items)):
        items[node] = state_item(node, deepest + 1)
    reached = _descendants(items, root)
    leaves = _place(items, root, [node for node in items if node not in reached])
    return _Layout(items, tree_edges, extra_edges, leaves, max(item.depth for item in items.values()))


def _descendants(items: dict[str, _Item], root: str) -> set[str]:
    seen = {root}
    stack = [root]
    while stack:
        for child in items[stack.pop()].children:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _place(items: dict[str, _Item], root: str, strays: Iterable[str]) -> int:
    """Leaves get consecutive x slots in depth-first order; a parent sits over its children's middle."""
    slot = 0
    stack: list[tuple[str, bool]] = [(root, False)]
    while stack:  # iterative post-order: deep proofs must not hit the recursion limit
        key, done = stack.pop()
        item = items[key]
        if done:
            first, last = items[item.children[0]].x, items[item.children[-1]].x
            item.x = (first + last) / 2
            continue
        if not item.children:
            item.x = slot
            slot += 1
            continue
        stack.append((key, True))
        stack.extend((child, False) for child in reversed(item.children))
    for key in strays:
        items[key].x = slot
        slot += 1
    return max(slot, 1)


def draw_tree(data: dict[str, Any], path: Path, *, title: str | None = None) -> Path:
    """Draw the node-link search tree `data` (`SearchTree.to_json`) to `path` (.svg or .png); returns `path`."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError as error:
        from lean_env.errors import MissingDependency

        raise MissingDependency("matplotlib", "Install it with: pip install 'llemma-prover[report]'") from error

    plan = layout(data)
    items = plan.items
    states = sum(1 for item in items.values() if item.kind == "state")
    width = min(max(2.0 + 1.25 * plan.leaves, 7.0), 120.0)
    height = min(max(1.5 + 1.25 * (plan.depth + 1), 4.0), 80.0)
    figure = Figure(figsize=(width, height))
    axes = figure.add_subplot()
    axes.set_axis_off()
    label_edges = states <= 80

    def point(key: str) -> tuple[float, float]:
        item = items[key]
        return item.x, -float(item.depth)

    for source, target, attrs in plan.tree_edges:
        (x0, y0), (x1, y1) = point(source), point(target)
        kind = items[target].kind
        on_proof = bool(attrs.get("on_proof"))
        if on_proof:
            colour, weight, order = PROOF_COLOUR, 4.0, 2
        elif kind in ("state", "proof"):
            colour, weight, order = "#9a9a9a", 1.2, 1
        else:
            colour, weight, order = ERROR_COLOURS.get(kind, "black"), 1.0, 1
        axes.plot([x0, x1], [y0, y1], color=colour, linewidth=weight, zorder=order, solid_capstyle="round")
        if on_proof or (label_edges and kind in ("state", "proof")):
            axes.text(
                (x0 + x1) / 2,
                (y0 + y1) / 2,
                _short(str(attrs.get("tactic", "")), TACTIC_CHARS),
                fontsize=8 if on_proof else 7,
                fontweight="bold" if on_proof else "normal",
                color="#1b5e20" if on_proof else "#555555",
                ha="center",
                va="center",
                zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )
    for source, target, attrs in plan.extra_edges:
        (x0, y0), (x1, y1) = point(source), point(target)
        colour = PROOF_COLOUR if attrs.get("on_proof") else "#b0b0b0"
        axes.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            zorder=1,
            arrowprops={
                "arrowstyle": "->",
                "color": colour,
                "linestyle": "--",
                "linewidth": 3.0 if attrs.get("on_proof") else 0.9,
                "connectionstyle": "arc3,rad=0.25" if source != target else "arc3,rad=1.2",
            },
        )
    for item in items.values():
        x, y = point(item.key)
        if item.kind == "state":
            status = str(item.data.get("status", "open"))
            explored = bool(item.data.get("explored"))
            axes.text(
                x,
                y,
                item.label,
                fontsize=7.5,
                family="DejaVu Sans",
                ha="center",
                va="center",
                zorder=5,
                bbox={
                    "boxstyle": "round,pad=0.35",
                    "fc": "#eef5ee" if status == "proved" else ("#f3f3f3" if explored else "white"),
                    "ec": STATUS_COLOURS.get(status, "black"),
                    "lw": 2.2 if status == "proved" else 1.2,
                },
            )
        elif item.kind == "proof":
            axes.scatter([x], [y], s=260, marker="*", color=PROOF_COLOUR, zorder=5)
            axes.text(x, y - 0.22, "proof", fontsize=8, color="#1b5e20", ha="center", va="top", zorder=5)
        else:
            colour = ERROR_COLOURS.get(item.kind, "black")
            axes.scatter([x], [y], s=110, color=colour, zorder=5, edgecolors="white", linewidths=0.8)
            axes.text(x, y - 0.18, item.label, fontsize=7.5, color=colour, ha="center", va="top", zorder=5)
    kinds = sorted({item.kind for item in items.values() if item.kind not in ("state", "proof")})
    handles = [Line2D([], [], color=PROOF_COLOUR, linewidth=4.0, label="proof path")]
    handles.append(Line2D([], [], color="#9a9a9a", linewidth=1.2, label="progress"))
    handles.extend(
        Line2D([], [], color=ERROR_COLOURS.get(kind, "black"), marker="o", linewidth=1.0, label=f"error: {kind}")
        for kind in kinds
    )
    if plan.extra_edges:
        handles.append(Line2D([], [], color="#b0b0b0", linestyle="--", label="rejoins a known state"))
    axes.legend(handles=handles, loc="upper left", fontsize=8, frameon=True, framealpha=0.9)
    xs = [item.x for item in items.values()]
    axes.set_xlim(min(xs) - 0.9, max(xs) + 0.9)
    axes.set_ylim(-plan.depth - 0.7, 0.7)
    root_status = items[next(iter(items))].data.get("status", "open")
    errors = sum(item.count for item in items.values() if item.kind not in ("state", "proof"))
    heading = f"{title}: " if title else ""
    axes.set_title(f"{heading}{root_status}, {states} states, {errors} failed tactics", fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110 if path.suffix.lower() == ".png" else None)
    return path

"""`prover tree`: find a run's exported search tree and draw it as PNG and SVG (matplotlib, no Graphviz)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lean_env.types import ProofClosed, TacticError, TacticErrorKind
from prover.cli.main import cli
from prover.cli.tree_cmd import layout
from prover.evaluation.runner import tree_file
from search import SearchStatus, SearchTree
from tests.search.helpers import run_search
from tests.stand_ins.scripted import Script, Unsound

pytest.importorskip("matplotlib")

ROOT = "x y : ℕ\nh₀ : x = 2 * y\n⊢ x + 0 = 2 * y"
STEP = "x y : ℕ\nh₀ : x = 2 * y\n⊢ x = 2 * y"
SIDE = "x y : ℕ\nh₀ : x = 2 * y\n⊢ x + 0 = y + y"
DEAD = "x y : ℕ\n⊢ False"
LEAN = TacticError(TacticErrorKind.LEAN_ERROR, "unsolved goals")
SCRIPT: Script = {
    ROOT: {
        "simp only [Nat.add_zero]": STEP,
        "rw [two_mul]": SIDE,
        "norm_num": LEAN,
        "omega": LEAN,
        "exact?": TacticError(TacticErrorKind.TIMEOUT, "timed out"),
        "intro h": DEAD,
        "sorry": TacticError(TacticErrorKind.USED_SORRY, "declaration uses 'sorry'"),
    },
    SIDE: {"simp": STEP, "ring_nf": LEAN, "decide": Unsound()},
    DEAD: {"contradiction": LEAN, "simp": LEAN},
    STEP: {"exact h₀": ProofClosed(), "linarith": LEAN},
}
TABLE = {
    ROOT: [
        ("rw [two_mul]", -0.5, 1),
        ("simp only [Nat.add_zero]", -0.9, 1),
        ("intro h", -1.2, 1),
        ("norm_num", -1.5, 1),
        ("omega", -1.7, 1),
        ("exact?", -2.0, 1),
        ("sorry", -2.5, 1),
    ],
    SIDE: [("decide", -0.2, 1), ("ring_nf", -0.6, 1), ("simp", -0.8, 1)],
    DEAD: [("contradiction", -0.3, 1), ("simp", -0.4, 1)],
    STEP: [("linarith", -0.3, 1), ("exact h₀", -0.4, 1)],
}


def _tree() -> SearchTree:
    run = asyncio.run(run_search(SCRIPT, table=TABLE, initial=ROOT))
    assert run.result.status is SearchStatus.PROVED
    assert run.search.tree is not None
    return run.search.tree


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "trees").mkdir(parents=True)
    _tree().write(tree_file(run / "trees", "mathd_algebra_10"))
    return run


def test_layout_puts_depth_on_rows_and_parents_over_their_children() -> None:
    plan = layout(_tree().to_json())
    states = {key: item for key, item in plan.items.items() if item.kind == "state"}
    assert len(states) == 4 and states["n0"].depth == 0
    root = states["n0"]
    assert root.x == pytest.approx((plan.items[root.children[0]].x + plan.items[root.children[-1]].x) / 2), (
        "a parent sits over the middle of its children"
    )
    # The root's errors are grouped into one item per kind, with their count.
    groups = {plan.items[key].kind: plan.items[key].count for key in root.children if key.startswith("n0:")}
    assert groups == {"lean_error": 2, "timeout": 1, "used_sorry": 1}
    # The proof path (root -> SIDE -> STEP -> proof) is one unbroken chain of layout edges; the root's
    # direct edge into STEP, a state the proof reaches another way, is an extra (dashed) edge.
    assert sum(bool(attrs.get("on_proof")) for _, _, attrs in plan.tree_edges) == 3
    assert [(source, target) for source, target, _ in plan.extra_edges] == [("n0", "n2")]
    assert sum(1 for item in plan.items.values() if item.kind == "proof") == 1
    assert {item.depth for item in plan.items.values()} == {0, 1, 2, 3}


def test_tree_command_writes_svg_and_png(run_dir: Path) -> None:
    svg = CliRunner().invoke(cli, ["tree", str(run_dir), "mathd_algebra_10"], catch_exceptions=False)
    assert svg.exit_code == 0, svg.output
    default = run_dir / "trees" / "mathd_algebra_10.svg"
    assert svg.output.strip() == str(default)
    text = default.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    png = run_dir / "picture.png"
    done = CliRunner().invoke(cli, ["tree", str(run_dir), "mathd_algebra_10", "--out", str(png)])
    assert done.exit_code == 0, done.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_tree_found_through_the_manifest_and_errors_are_clear(tmp_path: Path, run_dir: Path) -> None:
    elsewhere = tmp_path / "exported"
    elsewhere.mkdir()
    (run_dir / "trees" / "mathd_algebra_10.json").rename(elsewhere / "mathd_algebra_10.json")
    (run_dir / "manifest.json").write_text(json.dumps({"trees": str(elsewhere), "sessions": [{"trees": None}]}))
    out = tmp_path / "t.svg"
    done = CliRunner().invoke(cli, ["tree", str(run_dir), "mathd_algebra_10", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert out.exists()
    missing = CliRunner().invoke(cli, ["tree", str(run_dir), "imo_1959_p1"])
    assert missing.exit_code == 2 and "no search tree of 'imo_1959_p1'" in missing.output
    suffix = CliRunner().invoke(cli, ["tree", str(run_dir), "mathd_algebra_10", "--out", str(tmp_path / "t.pdf")])
    assert suffix.exit_code == 2 and ".svg and .png" in suffix.output


def test_tree_file_names_stay_inside_the_directory(tmp_path: Path) -> None:
    assert tree_file(tmp_path, "../../etc/passwd").parent == tmp_path
    assert tree_file(tmp_path, "a b/c", 2).name == "a_b_c.attempt2.json"

"""`bench/informal_sim.py` run small: both sides agree and the last line has the reported format."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(r"informal_speedup=(\d+\.\d+) proved_ours=(\d+) proved_reference=(\d+)")


@pytest.mark.slow
def test_small_run_agrees_and_prints_the_figure() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "informal_sim.py"), "--problems", "12", "--scale", "1000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert not [line for line in lines if line.startswith("MISMATCH")]
    match = LAST_LINE.fullmatch(lines[-1])
    assert match is not None, lines[-1]
    speedup, ours, reference = float(match[1]), int(match[2]), int(match[3])
    assert ours == reference
    assert 0 < ours < 12  # the seeded world has both provable and unprovable problems
    assert speedup > 0


def test_world_is_seeded_and_mixed() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.informal_sim import GAP_KINDS, make_world

    first, again = make_world(30, 1), make_world(30, 1)
    assert [sim.sketch for sim in first] == [sim.sketch for sim in again]
    assert all(2 <= sim.sketch.count("sledgehammer") <= 4 for sim in first)
    kinds = {kind for sim in first for kind in sim.gap_kinds}
    assert kinds == set(GAP_KINDS)

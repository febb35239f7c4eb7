"""`prover demo` as a newcomer runs it: the console command in a subprocess, from an unrelated directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from prover.demo import CHEAT, STATEMENTS

REPO_ROOT = Path(__file__).resolve().parents[2]


def _prover(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "prover"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "prover.cli.main"]
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "HOME": str(cwd),
        "PYTHONPATH": str(REPO_ROOT),
        "COLUMNS": "120",
        "TMPDIR": str(cwd),  # where `prover demo` without --out writes
    }
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=str(cwd), timeout=120)


def test_demo_runs_the_whole_product_in_under_a_minute(tmp_path: Path) -> None:
    out = tmp_path / "my demo"
    started = time.monotonic()
    done = _prover(tmp_path, "demo", "--out", str(out))
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < 60
    # The progress bar (standard error), the summary, a proof, the rejected cheat with its reason, the report.
    assert "4/4" in done.stderr and "proved" in done.stderr
    assert "proved 2/4" in done.stdout
    assert "A proof (mathd_algebra_1, judge: repl)" in done.stdout
    assert "    theorem mathd_algebra_1 (x : ℝ) (h₀ : 2 * x = 4) : x = 2 := by\n      field_simp at h₀\n" in done.stdout
    assert f"A rejected cheat ({CHEAT}" in done.stdout and "Lean.ofReduceBool" in done.stdout
    run = out.resolve() / "run"
    assert f"results:  {run / 'results.jsonl'}" in done.stdout
    assert f"report:   {run / 'report' / 'report.md'}" in done.stdout
    records = {r["name"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}
    assert set(records) == set(STATEMENTS)
    assert records["mathd_algebra_1"]["verified"] and records["mathd_numbertheory_2"]["proved"]
    assert not records[CHEAT]["proved"] and records[CHEAT]["proof"] is None
    assert "mathd_algebra_1" in (run / "report" / "report.md").read_text()
    assert next((run / "report").rglob("mathd_algebra_1.lean")).is_file()

    again = _prover(tmp_path, "demo", "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_demo_without_out_writes_a_fresh_directory(tmp_path: Path) -> None:
    done = _prover(tmp_path, "demo", "--no-progress")
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("results:  "))
    results = Path(line.split()[1])
    assert results.is_file() and len(results.read_text().splitlines()) == 4

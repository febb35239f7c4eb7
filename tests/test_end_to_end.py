"""The whole product as a user runs it: the `prover` console command in a subprocess, the real REPL
client and pool talking to the REPL stand-in over pipes, the real `openai` backend talking to the
completions stand-in over HTTP, the real search, verification, results files and report.

Nothing is monkeypatched: the stand-ins are reached only through the settings a user would give
(`--repl-command`, `--base-url`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stand_ins.fake_repl import linear_theorem, stand_in_command, write_script
from tests.stand_ins.openai_server import OpenAIStandIn

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADER = "import Mathlib\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"

STATEMENTS = {
    "mathd_algebra_1": "theorem mathd_algebra_1 (x : ℝ) (h₀ : 2 * x = 4) : x = 2 := by",
    "mathd_numbertheory_2": "theorem mathd_numbertheory_2 : (29 * 79 + 31 * 81) % 10 = 2 := by",
    "amc12a_2000_p3": "theorem amc12a_2000_p3 (a b : ℕ) (h : a < b) : a ≠ b := by",
    "imo_1959_p1": "theorem imo_1959_p1 (n : ℕ) (h₀ : 0 < n) : Nat.gcd (21 * n + 4) (14 * n + 3) = 1 := by",
}
PROOFS = {
    "mathd_algebra_1": ["field_simp at h₀", "linarith"],
    "mathd_numbertheory_2": ["norm_num"],
    "amc12a_2000_p3": None,  # no proof in the script: every tactic fails
    "imo_1959_p1": ["exact Nat.gcd_rec _ _ ▸ by simp"],  # closes goals, but with a non-standard axiom
}


def _query_key(state: str) -> str:
    # The query block of the Llemma prompt; unique to the state being asked about.
    return f"---\n{state}\n---\nNext tactic:"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    script_theorems = []
    table: dict[str, list[list[tuple[str, float]]]] = {}
    for name, statement in STATEMENTS.items():
        closing = {"goals": [], "axioms": ["propext", "Lean.ofReduceBool"]} if name == "imo_1959_p1" else None
        theorem = linear_theorem(
            statement, PROOFS[name], dead_ends={"nlinarith": {"error": "linarith failed"}}, closing=closing
        )
        script_theorems.append(theorem)
        for state, tactics in theorem.states.items():
            # The model proposes a failing tactic first (higher score), then the scripted ones.
            completions = [[("nlinarith", -0.05), ("\n---", -0.01)]]
            completions += [[(tactic, -0.5), ("\n---", -0.01)] for tactic in tactics if tactic != "nlinarith"]
            table[_query_key(state)] = completions
    # Deeper states first: the stand-in answers with the first key found in the prompt.
    table = dict(sorted(table.items(), key=lambda item: -item[0].count("step")))
    # A path with a space: `--repl-command` must be split like a shell would, not at every space.
    (tmp_path / "stand in").mkdir()
    script = write_script(tmp_path / "stand in" / "script.json", script_theorems)
    dataset = tmp_path / "minif2f.jsonl"
    with dataset.open("w", encoding="utf-8") as out:
        for name, statement in STATEMENTS.items():
            record = {
                "name": name,
                "split": "test",
                "header": HEADER,
                "formal_statement": statement,
                "source": f"stand-in:{name}",
                "informal_statement": "",
                "informal_proof": "",
                "informal_source": "",
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    with OpenAIStandIn(table, model="llemma-stand-in") as server:
        yield {
            "script": script,
            "dataset": dataset,
            "server": server,
            "repl": shlex.join(stand_in_command(script=script)),
            "home": tmp_path,
        }


def _prover(world: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "HOME": str(world["home"]),
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "prover.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(world["home"]),
        timeout=180,
    )


def _backend_flags(world: dict[str, object]) -> list[str]:
    server = world["server"]
    assert isinstance(server, OpenAIStandIn)
    return [
        "--repl-command",
        str(world["repl"]),
        "--workers",
        "2",
        "--backend",
        "openai",
        "--base-url",
        server.base_url,
        "--model",
        "llemma-stand-in",
        "--samples",
        "4",
        "--temperature",
        "1.0",  # sampling: at temperature 0 an OpenAI-style server gives one greedy completion
        "--expansions",
        "8",
        "--timeout",
        "60",
    ]


def test_eval_report_and_resume_end_to_end(world: dict[str, object], tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _prover(
        world,
        "eval",
        "minif2f",
        "--dataset",
        str(world["dataset"]),
        "--split",
        "test",
        "--concurrency",
        "4",
        "--no-progress",
        "--out",
        str(out),
        *_backend_flags(world),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    records = {r["name"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert set(records) == set(STATEMENTS)
    assert records["mathd_algebra_1"]["status"] == "proved" and records["mathd_algebra_1"]["verified"]
    assert records["mathd_algebra_1"]["proof"] == "by\n  field_simp at h₀\n  linarith"
    assert records["mathd_numbertheory_2"]["proof"] == "by\n  norm_num"
    assert records["amc12a_2000_p3"]["status"] in {"failed", "budget_exhausted"}
    # Soundness end to end: the step-by-step "proof" that needs Lean.ofReduceBool is not reported.
    cheat = records["imo_1959_p1"]
    assert cheat["status"] != "proved" and cheat["proof"] is None
    assert any("Lean.ofReduceBool" in rejected["reason"] for rejected in cheat["rejected_proofs"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["model"]["name"] == "llemma-stand-in"
    assert "2/4" in done.stdout  # the closing summary

    resumed = _prover(
        world,
        "eval",
        "minif2f",
        "--dataset",
        str(world["dataset"]),
        "--resume",
        "--no-progress",
        "--out",
        str(out),
        *_backend_flags(world),
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len((out / "results.jsonl").read_text().splitlines()) == 4  # nothing attempted twice

    reported = _prover(world, "report", str(out))
    assert reported.returncode == 0, reported.stderr
    report_dir = out / "report"
    assert "mathd_algebra_1" in (report_dir / "report.md").read_text()
    assert len(list(report_dir.rglob("*.png"))) == 3
    lean_file = next(report_dir.rglob("mathd_algebra_1.lean")).read_text()
    assert lean_file.startswith(HEADER) and STATEMENTS["mathd_algebra_1"][: -len(" := by")] in lean_file


def test_prove_one_theorem_end_to_end(world: dict[str, object]) -> None:
    done = _prover(
        world,
        "prove",
        "--statement",
        STATEMENTS["mathd_algebra_1"],
        "--json",
        *_backend_flags(world),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["verified"] and result["tactics"] == ["field_simp at h₀", "linarith"]
    assert result["stats"]["errors_by_kind"]["lean_error"] >= 1  # nlinarith was tried and failed

    unprovable = _prover(world, "prove", "--statement", STATEMENTS["amc12a_2000_p3"], *_backend_flags(world))
    assert unprovable.returncode == 1
    assert "amc12a_2000_p3" in unprovable.stdout

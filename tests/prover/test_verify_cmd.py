"""`prover verify`, through the real console command, over the REPL stand-in (and the comparator stand-in)."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lean_env.types import Problem
from prover.evaluation.results import EvalRecord
from tests.stand_ins.fake_repl import linear_theorem, stand_in_command, write_script

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPARATOR_STAND_IN = REPO_ROOT / "tests" / "stand_ins" / "comparator_stand_in.py"
HEADER = "import Mathlib\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"
STATEMENTS = {
    "mathd_algebra_1": "theorem mathd_algebra_1 (x : ℝ) (h₀ : 2 * x = 4) : x = 2 := by",
    "mathd_numbertheory_2": "theorem mathd_numbertheory_2 : (29 * 79 + 31 * 81) % 10 = 2 := by",
    "amc12a_2000_p3": "theorem amc12a_2000_p3 (a b : ℕ) (h : a < b) : a ≠ b := by",
}
TACTICS = {
    "mathd_algebra_1": ["field_simp at h₀", "linarith"],
    "mathd_numbertheory_2": ["norm_num"],
    "amc12a_2000_p3": ["omega"],
}


def _proof(tactics: list[str]) -> str:
    return "by\n" + "\n".join(f"  {tactic}" for tactic in tactics)


def _record(name: str, tactics: list[str] | None, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    problem = Problem(name, HEADER, STATEMENTS[name], split="test")
    proved = tactics is not None
    record = EvalRecord(
        name=name,
        split="test",
        category="mathd_algebra",
        statement_hash=problem.statement_hash,
        status="proved" if proved else "failed",
        proved=proved,
        verified=proved,
        proof=_proof(tactics) if tactics is not None else None,
        tactics=tactics or [],
        judge="repl" if proved else None,
        header=problem.header,
        formal_statement=problem.formal_statement,
    ).model_dump(mode="json")
    record.update(changes or {})
    return record


def _write_run(run: Path, records: list[dict[str, Any]]) -> Path:
    run.mkdir(parents=True)
    results = run / "results.jsonl"
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return results


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    script = write_script(
        tmp_path / "script.json", [linear_theorem(STATEMENTS[name], TACTICS[name]) for name in STATEMENTS]
    )
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    # `lake env PROGRAM ARGS` runs PROGRAM ARGS (what the comparator judge asks of Lake).
    lake = fake_bin / "lake"
    lake.write_text('#!/bin/sh\nshift\nexec "$@"\n')
    lake.chmod(lake.stat().st_mode | stat.S_IXUSR)
    return {"repl": shlex.join(stand_in_command(script=script)), "home": tmp_path, "bin": fake_bin}


def _prover(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{world['bin']}:{os.path.dirname(sys.executable)}:/usr/bin:/bin",
        "HOME": str(world["home"]),
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "prover.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(world["home"]),
        timeout=120,
    )


def _flags(world: dict[str, Any]) -> list[str]:
    return ["--repl-command", world["repl"], "--workers", "2"]


def _lines(path: Path) -> dict[str, dict[str, Any]]:
    return {line["name"]: line for line in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def test_verify_rechecks_every_proved_record_and_flags_the_bad_ones(world: dict[str, Any], tmp_path: Path) -> None:
    forged = "theorem mathd_numbertheory_2 : (29 * 79 + 31 * 81) % 10 = 3 := by"
    records = [
        _record("mathd_algebra_1", TACTICS["mathd_algebra_1"]),
        _record("mathd_numbertheory_2", ["decide"]),  # recorded as proved, but Lean rejects it
        _record("amc12a_2000_p3", None),  # not proved: nothing to re-check
    ]
    old = _record(
        "amc12a_2000_p3", TACTICS["amc12a_2000_p3"], {"name": "old_record", "header": None, "formal_statement": None}
    )
    edited = _record("mathd_algebra_1", TACTICS["mathd_algebra_1"], {"name": "edited", "formal_statement": forged})
    results = _write_run(tmp_path / "run", [*records, old, edited])
    before = results.read_bytes()

    done = _prover(world, "verify", str(tmp_path / "run"), *_flags(world))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verified 1/4 proofs (judge: repl)" in done.stdout
    verdicts = _lines(tmp_path / "run" / "verification.jsonl")
    assert set(verdicts) == {"mathd_algebra_1", "mathd_numbertheory_2", "old_record", "edited"}
    good = verdicts["mathd_algebra_1"]
    assert good["passed"] and good["status"] == "valid" and good["judge"] == "repl" and good["recorded_judge"] == "repl"
    bad = verdicts["mathd_numbertheory_2"]
    assert not bad["passed"] and bad["status"] == "lean_error" and bad["judge"] == "repl"
    assert verdicts["old_record"]["status"] == "missing_statement" and not verdicts["old_record"]["passed"]
    assert verdicts["edited"]["status"] == "statement_hash_mismatch" and not verdicts["edited"]["passed"]
    report = (tmp_path / "run" / "verification.md").read_text(encoding="utf-8")
    assert "1/4 proofs pass" in report and "mathd_numbertheory_2" in report
    assert results.read_bytes() == before  # nothing but the verification report is written
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "results.jsonl",
        "verification.jsonl",
        "verification.md",
    ]


def test_verify_exits_zero_when_every_proof_passes(world: dict[str, Any], tmp_path: Path) -> None:
    _write_run(tmp_path / "run", [_record(name, tactics) for name, tactics in TACTICS.items()])
    done = _prover(world, "verify", str(tmp_path / "run"), "--json", *_flags(world))
    assert done.returncode == 0, done.stdout + done.stderr
    # The last line: a library warning logged on the way out may precede it.
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["checked"] == summary["passed"] == 3 and summary["judge"] == "repl"


def test_verify_checks_a_users_own_pairs(world: dict[str, Any], tmp_path: Path) -> None:
    pairs = tmp_path / "mine.jsonl"
    lines = [
        {"name": "a", "header": HEADER, "formal_statement": STATEMENTS["mathd_algebra_1"], "proof": "by\n  linarith"},
        {"name": "b", "formal_statement": STATEMENTS["amc12a_2000_p3"], "proof": _proof(TACTICS["amc12a_2000_p3"])},
    ]
    pairs.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    done = _prover(world, "verify", "--pairs", str(pairs), *_flags(world))
    assert done.returncode == 1, done.stdout + done.stderr
    verdicts = _lines(tmp_path / "mine.verification.jsonl")
    assert verdicts["b"]["passed"] and not verdicts["a"]["passed"]  # `b` gets the default (miniF2F) header
    assert (tmp_path / "mine.verification.md").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["verify", "missing-run"], "no results.jsonl"),
        (["verify"], "give a run directory or --pairs"),
        (["verify", "--pairs", "bad.jsonl"], "bad.jsonl:1: not JSON"),
        (["verify", "--pairs", "noproof.jsonl"], "`proof` must be a non-empty string"),
    ],
)
def test_bad_input_exits_two_with_one_message(
    world: dict[str, Any], tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    (tmp_path / "noproof.jsonl").write_text(json.dumps({"formal_statement": STATEMENTS["amc12a_2000_p3"]}) + "\n")
    done = _prover(world, *args, *_flags(world))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def _comparator_tools(root: Path) -> dict[str, Path]:
    tools = {}
    for name, body in (
        ("comparator", f'#!/bin/sh\nexec "{sys.executable}" "{COMPARATOR_STAND_IN}" "$@"\n'),
        ("lean4export", "#!/bin/sh\nexit 0\n"),
        ("landrun", "#!/bin/sh\nexit 0\n"),
    ):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        tools[name] = path
    return tools


def test_verify_uses_comparator_when_it_is_installed(world: dict[str, Any], tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".lake" / "packages").mkdir(parents=True)
    (project / "lakefile.toml").write_text('name = "P"\n\n[[lean_lib]]\nname = "P"\n')
    tools = _comparator_tools(tmp_path / "tools")
    _write_run(
        tmp_path / "run",
        [_record("mathd_algebra_1", TACTICS["mathd_algebra_1"]), _record("amc12a_2000_p3", TACTICS["amc12a_2000_p3"])],
    )
    settings = [f"--set=lean.comparator.{name}_path={path}" for name, path in tools.items()]
    done = _prover(
        world, "verify", str(tmp_path / "run"), "--judge", "comparator", "--project-dir", str(project),
        *settings, *_flags(world),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "judge: comparator" in done.stdout
    verdicts = _lines(tmp_path / "run" / "verification.jsonl")
    assert {v["judge"] for v in verdicts.values()} == {"comparator"}
    assert all(v["passed"] for v in verdicts.values())

    missing = _prover(
        world, "verify", str(tmp_path / "run"), "--judge", "comparator", "--project-dir", str(project),
        *_flags(world),
    )  # fmt: skip
    assert missing.returncode == 2 and "comparator" in missing.stderr and "prover setup" in missing.stderr

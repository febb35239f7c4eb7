"""A run killed with SIGKILL at random moments and resumed records every theorem exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from prover.config import load_settings
from prover.evaluation.manifest import ResumeMismatch, read_manifest
from prover.evaluation.results import ResultsWriter, read_records
from prover.evaluation.session import RunDirectoryError, prepare_run
from prover.minif2f.dataset import load_dataset
from tests.evaluation.kill_driver import provable
from tests.evaluation.worlds import write_jsonl

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMES = [f"mathd_algebra_{index}" for index in range(40)]


def complete_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return [line + b"\n" for line in data.split(b"\n")[:-1]]


def start_driver(out_dir: Path, dataset: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.evaluation.kill_driver", str(out_dir), str(dataset)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes], deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while len(complete_lines(path)) < count and process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the driver wrote fewer than {count} records in {deadline_s} s")
        time.sleep(0.005)


def test_sigkill_at_random_moments_then_resume_records_each_theorem_once(tmp_path: Path) -> None:
    dataset = write_jsonl(tmp_path / "minif2f.jsonl", NAMES)
    out_dir = tmp_path / "run"
    results = out_dir / "results.jsonl"
    rng = random.Random(20240611)
    snapshots: list[list[bytes]] = []
    killed_mid_run = 0
    for _ in range(4):
        process = start_driver(out_dir, dataset)
        # Kill only once this session has made progress, then after a random extra delay: mid-search,
        # mid-write or between records.
        wait_for_lines(results, len(complete_lines(results)) + 1, process)
        time.sleep(rng.uniform(0.0, 0.25))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        process.wait(timeout=30)
        snapshots.append(complete_lines(results))
    assert killed_mid_run >= 3, "the test must actually interrupt runs"
    assert len(snapshots[-1]) < len(NAMES), "runs were killed before the end"
    final = start_driver(out_dir, dataset)
    stdout, stderr = final.communicate(timeout=60)
    assert final.returncode == 0, stderr.decode()
    assert b"done" in stdout

    lines = complete_lines(results)
    assert results.read_bytes().endswith(b"\n")
    names = Counter(json.loads(line)["name"] for line in lines)
    assert names == Counter(NAMES), "every theorem recorded exactly once"
    for snapshot in snapshots:
        assert set(snapshot) <= set(lines), "a completed record was lost or changed by a later session"
    records = read_records(results)
    assert {record.name for record in records if record.proved} == {name for name in NAMES if provable(name)}
    manifest = read_manifest(out_dir)
    assert manifest is not None and len(manifest["sessions"]) == 5


def test_resume_refuses_a_different_budget_unless_forced(tmp_path: Path) -> None:
    dataset = load_dataset(write_jsonl(tmp_path / "d.jsonl", NAMES[:3]))
    out_dir = tmp_path / "run"
    base = load_settings(environ={}, overrides={"search": {"expansions": 10, "samples": 4}})
    prepare_run(out_dir, base, dataset)
    with ResultsWriter(out_dir / "results.jsonl") as writer:
        writer.write({"name": NAMES[0], "status": "failed", "proved": False})
    with pytest.raises(RunDirectoryError, match="already holds results; pass --resume"):
        prepare_run(out_dir, base, dataset)
    other = load_settings(environ={}, overrides={"search": {"expansions": 20, "samples": 4}})
    with pytest.raises(ResumeMismatch, match=r"search\.expansions: recorded 10, now 20"):
        prepare_run(out_dir, other, dataset, resume=True)
    other_model = load_settings(
        environ={}, overrides={"search": {"expansions": 10, "samples": 4}, "model": {"name": "other/model"}}
    )
    with pytest.raises(ResumeMismatch, match=r"model\.name"):
        prepare_run(out_dir, other_model, dataset, resume=True)
    forced = prepare_run(out_dir, other, dataset, resume=True, force=True)
    assert forced.skip == {NAMES[0]}
    assert any("--force" in warning for warning in forced.warnings)
    same = prepare_run(out_dir, base, dataset, resume=True)
    assert same.skip == {NAMES[0]}
    manifest = read_manifest(out_dir)
    assert manifest is not None
    assert manifest["search_budget"]["expansions"] == 10, "the recorded budget stays the run's budget"
    assert len(manifest["sessions"]) == 3


def test_manifest_records_config_versions_revision_dataset_and_toolchain(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "d.jsonl", NAMES[:3])
    project = tmp_path / "miniF2F"
    project.mkdir()
    (project / "lean-toolchain").write_text("leanprover/lean4:v4.24.0\n")
    settings = load_settings(
        environ={"PROVER_MODEL__API_KEY": "sk-secret"},
        overrides={"lean": {"project_dir": project}, "model": {"name": "EleutherAI/llemma_7b"}},
    )
    prepare_run(tmp_path / "run", settings, load_dataset(jsonl), selection={"splits": ["test"]})
    manifest = read_manifest(tmp_path / "run")
    assert manifest is not None
    assert manifest["settings"]["search"]["expansions"] == 100
    assert manifest["settings"]["model"]["api_key"] == "<redacted>"
    assert "sk-secret" not in (tmp_path / "run" / "manifest.json").read_text()
    assert manifest["versions"]["llemma-prover"] == "0.1.0"
    assert "torch" in manifest["versions"]
    assert manifest["git_revision"] == "unknown" or len(manifest["git_revision"]) == 40
    assert manifest["dataset"]["sha256"] == __import__("hashlib").sha256(jsonl.read_bytes()).hexdigest()
    assert manifest["dataset"]["theorems"] == NAMES[:3]
    assert manifest["lean"]["toolchain"] == "leanprover/lean4:v4.24.0"
    assert manifest["model"] == {"backend": "hf", "name": "EleutherAI/llemma_7b"}


def test_retry_errors_removes_env_error_records_before_resuming(tmp_path: Path) -> None:
    dataset = load_dataset(write_jsonl(tmp_path / "d.jsonl", NAMES[:3]))
    out_dir = tmp_path / "run"
    settings = load_settings(environ={})
    prepare_run(out_dir, settings, dataset)
    with ResultsWriter(out_dir / "results.jsonl") as writer:
        writer.write({"name": NAMES[0], "status": "proved", "proved": True, "verified": True, "proof": "by simp"})
        writer.write({"name": NAMES[1], "status": "env_error", "proved": False, "failure_reason": "REPL died"})
    prepared = prepare_run(out_dir, settings, dataset, resume=True, retry_errors=True)
    assert prepared.retried == (NAMES[1],)
    assert prepared.skip == {NAMES[0]}


def test_retry_errors_never_removes_an_invalid_statement(tmp_path: Path) -> None:
    dataset = load_dataset(write_jsonl(tmp_path / "d.jsonl", NAMES[:3]))
    out_dir = tmp_path / "run"
    settings = load_settings(environ={})
    prepare_run(out_dir, settings, dataset)
    with ResultsWriter(out_dir / "results.jsonl") as writer:
        writer.write({"name": NAMES[0], "status": "invalid_statement", "proved": False, "failure_reason": "bad"})
        writer.write({"name": NAMES[1], "status": "env_error", "proved": False, "failure_reason": "REPL died"})
    prepared = prepare_run(out_dir, settings, dataset, resume=True, retry_errors=True)
    assert prepared.retried == (NAMES[1],)
    assert prepared.skip == {NAMES[0]}


def test_a_record_of_a_changed_statement_is_run_again(tmp_path: Path) -> None:
    dataset = load_dataset(write_jsonl(tmp_path / "d.jsonl", NAMES[:3]))
    out_dir = tmp_path / "run"
    settings = load_settings(environ={})
    prepare_run(out_dir, settings, dataset)
    current = {problem.name: problem.statement_hash for problem in dataset.problems}
    with ResultsWriter(out_dir / "results.jsonl") as writer:
        for name, digest in [(NAMES[0], current[NAMES[0]]), (NAMES[1], "0" * 64), (NAMES[2], "")]:
            writer.write({"name": name, "status": "failed", "proved": False, "statement_hash": digest})
    prepared = prepare_run(out_dir, settings, dataset, resume=True, force=True)
    assert prepared.changed == (NAMES[1],)
    assert prepared.skip == {NAMES[0], NAMES[2]}, "a record without a hash predates hashes and is kept"
    assert any("different statement" in warning for warning in prepared.warnings)

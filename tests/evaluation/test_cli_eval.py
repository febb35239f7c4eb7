"""`prover eval minif2f` plumbing, with `prover.wiring` patched to return scripted stand-ins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prover import wiring
from prover.cli.main import cli
from prover.config import LeanSettings, ModelSettings
from prover.evaluation.results import read_records
from tests.evaluation.worlds import NAMES, world, write_jsonl

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_JSONL = REPO_ROOT.parent / "shared" / "data" / "minif2f_lean4.jsonl"
PROVABLE = NAMES[:6]


class Backends:
    """Replaces `build_env`/`build_generator`, remembering the settings they were given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: list[str], provable: list[str]) -> None:
        self.lean: list[LeanSettings] = []
        self.model: list[ModelSettings] = []
        self.env, self.generator = world(provable, names)
        monkeypatch.setattr(wiring, "build_env", self._env)
        monkeypatch.setattr(wiring, "build_generator", self._generator)

    def _env(self, lean: LeanSettings) -> Any:
        self.lean.append(lean)
        return self.env

    def _generator(self, model: ModelSettings) -> Any:
        self.model.append(model)
        return self.generator


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["eval", "minif2f", *args], catch_exceptions=False)


def test_end_to_end_run_writes_records_manifest_and_prints_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROVER_EVAL__CONCURRENCY", raising=False)
    backends = Backends(monkeypatch, list(NAMES), list(PROVABLE))
    dataset = write_jsonl(tmp_path / "minif2f.jsonl", NAMES)
    out = tmp_path / "run"
    common = ["--dataset", str(dataset), "--out", str(out), "--model", "llemma-served", "--samples", "4"]
    flags = ["--concurrency", "3", "--workers", "2", "--repl-command", "fake-repl --x", "--backend", "openai"]
    done = invoke(*common, "--expansions", "5", *flags, "--base-url", "http://gpu:8000/v1")
    assert done.exit_code == 0, done.output
    assert "miniF2F test: proved 6/10 (60.0 %)" in done.output
    assert "mathd algebra" in done.output and "other number theory" in done.output
    assert f"results: {out / 'results.jsonl'}" in done.output
    records = read_records(out / "results.jsonl")
    assert sorted(record.name for record in records) == sorted(NAMES)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["search_budget"]["expansions"] == 5 and manifest["settings"]["eval"]["concurrency"] == 3
    assert manifest["dataset"]["count"] == 10
    # Flags reach the backends through the resolved settings.
    assert backends.lean[0].workers == 2 and backends.lean[0].repl_command == ["fake-repl", "--x"]
    model = backends.model[0]
    assert (model.backend, model.name, model.base_urls) == ("openai", "llemma-served", ["http://gpu:8000/v1"])
    assert backends.env.counters.starts == 10

    again = invoke(*common, "--expansions", "5")
    assert again.exit_code == 2 and "already holds results; pass --resume" in again.output
    resumed = invoke(*common, "--expansions", "5", "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.output)
    assert (summary["proved"], summary["attempted"], summary["expected"]) == (6, 10, 10)
    assert summary["by_category"]["mathd_algebra"] == [2, 2]
    assert backends.env.counters.starts == 10, "nothing re-run on resume"
    mismatch = invoke(*common, "--expansions", "7", "--resume")
    assert mismatch.exit_code == 2 and "search.expansions: recorded 5, now 7" in mismatch.output


def test_filters_and_partial_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backends = Backends(monkeypatch, list(NAMES), list(PROVABLE))
    dataset = write_jsonl(tmp_path / "minif2f.jsonl", NAMES)
    out = tmp_path / "run"
    first = invoke("--dataset", str(dataset), "--out", str(out), "--names", "mathd_*", "--no-progress")
    assert first.exit_code == 0, first.output
    assert "proved 3/4" in first.output
    only = invoke("--dataset", str(dataset), "--out", str(tmp_path / "b"), "--category", "amc", "--category", "imo")
    assert "proved 2/2" in only.output
    # Widening the selection on resume attempts only what is new.
    starts = backends.env.counters.starts
    wider = invoke("--dataset", str(dataset), "--out", str(out), "--limit", "6", "--resume", "--no-progress")
    assert wider.exit_code == 0, wider.output
    assert backends.env.counters.starts - starts == 3  # amc, aime, imo; the mathd ones are recorded
    assert "proved 6/6" in wider.output


def test_bad_input_exits_2_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Backends(monkeypatch, list(NAMES), [])
    missing = invoke("--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert missing.exit_code == 2 and "no such file or directory" in missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "x", "split": "test"}\n')
    malformed = invoke("--dataset", str(bad), "--out", str(tmp_path / "o"))
    assert malformed.exit_code == 2 and "bad.jsonl:1: field 'header'" in malformed.output
    empty = invoke("--dataset", str(write_jsonl(tmp_path / "d.jsonl", NAMES)), "--names", "zzz*")
    assert empty.exit_code == 2 and "no theorem" in empty.output
    assert invoke("--force").exit_code == 2


def test_a_dead_backend_stops_the_run_with_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.stand_ins.scripted import ScriptedEnv

    backends = Backends(monkeypatch, list(NAMES), [])
    dead = ScriptedEnv({}, start_error="REPL binary not found")
    monkeypatch.setattr(wiring, "build_env", lambda lean: dead)
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES)
    done = invoke(
        "--dataset",
        str(dataset),
        "--out",
        str(tmp_path / "o"),
        "--max-env-errors",
        "3",
        "--concurrency",
        "1",
        "--no-progress",
    )
    assert done.exit_code == 1
    assert "3 theorems in a row" in done.output and "--resume --retry-errors" in done.output
    assert len(read_records(tmp_path / "o" / "results.jsonl")) == 3
    retried = invoke("--dataset", str(dataset), "--out", str(tmp_path / "o"), "--resume", "--retry-errors")
    assert "retrying 3 theorem(s)" in retried.output
    del backends


def test_ray_executor_receives_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import prover.distributed

    seen: dict[str, Any] = {}

    async def fake_run_distributed(problems: Any, **kwargs: Any) -> None:
        seen.update(kwargs, problems=problems)

    monkeypatch.setattr(prover.distributed, "run_distributed", fake_run_distributed)
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES)
    done = invoke(
        "--dataset",
        str(dataset),
        "--out",
        str(tmp_path / "o"),
        "--executor",
        "ray",
        "--address",
        "ray://head:10001",
        "--ray-workers",
        "4",
        "--concurrency",
        "16",
        "--backend",
        "openai",
    )
    assert done.exit_code == 0, done.output
    options = seen["options"]
    assert (options.address, options.workers, options.concurrency_per_worker) == ("ray://head:10001", 4, 16)
    assert options.generator_mode == "worker", "an OpenAI server is already shared"
    assert seen["env_factory"].func is wiring.build_env and seen["generator_factory"].args[0].backend == "openai"
    assert len(seen["problems"]) == len(NAMES)


@pytest.mark.skipif(not SHARED_JSONL.exists(), reason=f"{SHARED_JSONL} is absent")
def test_real_minif2f_statements_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prover.minif2f.dataset import load_dataset

    names = load_dataset(SHARED_JSONL, splits=["test"]).names
    Backends(monkeypatch, names, names[::3])
    out = tmp_path / "run"
    done = invoke(
        "--dataset",
        str(SHARED_JSONL),
        "--split",
        "test",
        "--out",
        str(out),
        "--concurrency",
        "32",
        "--expansions",
        "4",
        "--samples",
        "4",
    )
    assert done.exit_code == 0, done.output
    proved = len(names[::3])
    assert f"miniF2F test: proved {proved}/244" in done.output
    records = read_records(out / "results.jsonl")
    assert len(records) == 244 and {r.split for r in records} == {"test"}
    lean_file = next(r.lean_file for r in records if r.proved)
    assert lean_file is not None and lean_file.startswith("import Mathlib\n")

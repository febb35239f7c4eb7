"""`prover eval` plumbing, with scripted stand-ins handed to the CLI as its `Backends` (nothing patched)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prover.cli.main import cli
from prover.config import LeanSettings, ModelSettings
from prover.evaluation.results import read_records
from prover.wiring import Backends
from tests.evaluation.worlds import NAMES, world, write_jsonl
from tests.shared_data import shared_data_file

PROVABLE = NAMES[:6]


class Recorder:
    """Scripted stand-ins given to the CLI as its backends, remembering the settings they were built from."""

    current: Recorder | None = None

    def __init__(self, names: list[str], provable: list[str]) -> None:
        self.lean: list[LeanSettings] = []
        self.model: list[ModelSettings] = []
        self.env, self.generator = world(provable, names)
        Recorder.current = self

    def build_env(self, lean: LeanSettings, **kwargs: Any) -> Any:
        self.lean.append(lean)
        return self.env

    def build_generator(self, model: ModelSettings) -> Any:
        self.model.append(model)
        return self.generator

    def backends(self) -> Backends:
        return Backends(build_env=self.build_env, build_generator=self.build_generator)


def invoke(*args: str, command: str = "minif2f") -> Any:
    recorder = Recorder.current
    obj = recorder.backends() if recorder is not None else None
    return CliRunner().invoke(cli, ["eval", command, *args], catch_exceptions=False, obj=obj)


@pytest.fixture(autouse=True)
def _no_recorder() -> Any:
    Recorder.current = None
    yield
    Recorder.current = None


def test_end_to_end_run_writes_records_manifest_and_prints_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROVER_EVAL__CONCURRENCY", raising=False)
    backends = Recorder(list(NAMES), list(PROVABLE))
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
    assert backends.lean[0].repl.workers == 2 and backends.lean[0].repl.command == ("fake-repl", "--x")
    model = backends.model[0]
    assert (model.backend, model.name, model.base_urls) == ("openai", "llemma-served", ["http://gpu:8000/v1"])
    assert backends.env.counters.starts == 10 + 1, "each problem once, plus the preflight check of Lean"

    again = invoke(*common, "--expansions", "5")
    assert again.exit_code == 2 and "already holds results; pass --resume" in again.output
    resumed = invoke(*common, "--expansions", "5", "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.output)
    assert (summary["proved"], summary["attempted"], summary["expected"]) == (6, 10, 10)
    assert summary["by_category"]["mathd_algebra"] == [2, 2]
    assert backends.env.counters.starts == 11, "nothing re-run (nor checked) on a resume with nothing left"
    mismatch = invoke(*common, "--expansions", "7", "--resume")
    assert mismatch.exit_code == 2 and "search.expansions: recorded 5, now 7" in mismatch.output


def test_filters_and_partial_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backends = Recorder(list(NAMES), list(PROVABLE))
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
    assert backends.env.counters.starts - starts == 3 + 1  # amc, aime, imo (the mathd ones are recorded), preflight
    assert "proved 6/6" in wider.output


def test_bad_input_exits_2_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder(list(NAMES), [])
    missing = invoke("--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert missing.exit_code == 2 and "no such file or directory" in missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "x", "split": "test"}\n')
    malformed = invoke("--dataset", str(bad), "--out", str(tmp_path / "o"))
    assert malformed.exit_code == 2 and "bad.jsonl:1: field 'header'" in malformed.output
    empty = invoke("--dataset", str(write_jsonl(tmp_path / "d.jsonl", NAMES)), "--names", "zzz*")
    assert empty.exit_code == 2 and "no problem" in empty.output
    assert invoke("--force").exit_code == 2


def test_a_backend_that_is_missing_fails_before_the_first_problem_with_exit_2(tmp_path: Path) -> None:
    from tests.stand_ins.scripted import ScriptedEnv

    backends = Recorder(list(NAMES), [])
    backends.env = ScriptedEnv({}, start_error="REPL binary not found")
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES)
    done = invoke("--dataset", str(dataset), "--out", str(tmp_path / "o"), "--no-progress")
    assert done.exit_code == 2, done.output
    assert "Lean did not start" in done.output and "REPL binary not found" in done.output
    assert "prover setup" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "o" / "results.jsonl").exists() or not read_records(tmp_path / "o" / "results.jsonl")


def test_a_dead_model_fails_before_the_first_problem_with_exit_2(tmp_path: Path) -> None:
    backends = Recorder(list(NAMES), [])

    class DeadModel:
        async def generate(self, requests: Any) -> Any:
            raise ConnectionError("connection refused: http://127.0.0.1:9/v1")

        async def close(self) -> None:
            return None

    backends.generator = DeadModel()  # type: ignore[assignment]
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES)
    done = invoke("--dataset", str(dataset), "--out", str(tmp_path / "o"), "--no-progress")
    assert done.exit_code == 2 and "the model did not answer" in done.output and "connection refused" in done.output


def test_a_backend_that_dies_during_the_run_stops_it_with_exit_3(tmp_path: Path) -> None:
    backends = Recorder(list(NAMES), [])
    backends.env, backends.generator = world([], list(NAMES), crash=NAMES)  # opens fine, crashes on tactics
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES)
    common = ["--dataset", str(dataset), "--out", str(tmp_path / "o"), "--concurrency", "1", "--no-progress"]
    done = invoke(*common, "--max-env-errors", "3")
    assert done.exit_code == 3, done.output
    assert "3 problems in a row" in done.output and "--resume --retry-errors" in done.output
    assert len(read_records(tmp_path / "o" / "results.jsonl")) == 3
    retried = invoke(*common, "--resume", "--retry-errors", "--max-env-errors", "0")
    assert "retrying 3 problem(s)" in retried.output
    assert retried.exit_code == 3 and "all 10 problem(s) of this run ended in an environment error" in retried.output


def test_ray_executor_receives_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import prover.distributed

    recorder = Recorder(list(NAMES), [])
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
    assert seen["env_factory"].func.__self__ is recorder and seen["generator_factory"].args[0].backend == "openai"
    assert len(seen["problems"]) == len(NAMES)


def test_real_minif2f_statements_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prover.minif2f.dataset import load_dataset

    SHARED_JSONL = shared_data_file("minif2f_lean4.jsonl")
    names = load_dataset(SHARED_JSONL, splits=["test"]).names
    Recorder(names, names[::3])
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


def test_mis_formalised_statements_are_recorded_not_an_abort_and_never_retried(tmp_path: Path) -> None:
    """The user's scenario: two statements Lean rejects in a row must not stop the run as an infrastructure failure."""
    recorder = Recorder(list(NAMES), list(PROVABLE))
    recorder.env._invalid.update({NAMES[0]: "unknown identifier 'foo'", NAMES[1]: "type mismatch"})
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES)
    out = tmp_path / "o"
    common = ["--dataset", str(dataset), "--out", str(out), "--concurrency", "1", "--no-progress"]
    done = invoke(*common, "--max-env-errors", "2", "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert summary["invalid_statements"] == 2 and summary["env_errors"] == 0
    assert summary["attempted"] == 10 and summary["proved"] == 4
    records = {record.name: record for record in read_records(out / "results.jsonl")}
    assert records[NAMES[0]].status == "invalid_statement"
    assert "unknown identifier 'foo'" in (records[NAMES[0]].failure_reason or "")
    starts = recorder.env.counters.starts
    again = invoke(*common, "--resume", "--retry-errors")
    assert again.exit_code == 0, again.output
    assert recorder.env.counters.starts == starts, "an invalid statement is an outcome, never retried"


def test_eval_jsonl_runs_a_users_own_problems_and_set_reaches_any_setting(tmp_path: Path) -> None:
    names = ["my_first_lemma", "my_second_lemma", "another_one"]
    recorder = Recorder(names, names[:2])
    dataset = tmp_path / "mine.jsonl"
    with open(dataset, "w", encoding="utf-8") as handle:
        for name in names:  # no split, no header: a user's file need not look like miniF2F
            handle.write(
                json.dumps({"name": name, "formal_statement": f"theorem {name} (n : ℕ) (h₀ : n = 1) : n + 0 = 1 := by"})
                + "\n"
            )
    done = invoke(
        str(dataset),
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
        "--set",
        "lean.repl.crash_retries=4",
        "--set",
        "lean.repl.spread_tactics=false",
        command="jsonl",
    )
    assert done.exit_code == 0, done.output
    assert "mine" in done.output and "proved 2/3" in done.output
    lean = recorder.lean[0]
    assert lean.repl.crash_retries == 4 and lean.repl.spread_tactics is False
    bad = invoke(str(dataset), "--out", str(tmp_path / "p"), "--set", "nonsense", command="jsonl")
    assert bad.exit_code == 2 and "--set" in bad.output


def test_a_second_run_on_the_same_directory_is_refused_naming_the_first(tmp_path: Path) -> None:
    import os

    from prover.evaluation.session import RunLock

    Recorder(list(NAMES), list(PROVABLE))
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES)
    out = tmp_path / "o"
    with RunLock(out):  # the first run, still going
        second = invoke("--dataset", str(dataset), "--out", str(out), "--resume", "--no-progress")
    assert second.exit_code == 2 and f"in use by another run (pid {os.getpid()})" in second.output
    assert not (out / "results.jsonl").exists(), "the refused run wrote nothing"
    after = invoke("--dataset", str(dataset), "--out", str(out), "--no-progress")
    assert after.exit_code == 0, "the lock goes with the run that held it"


def test_resume_says_what_is_left_and_the_bar_counts_recorded_results(tmp_path: Path) -> None:
    from prover.cli.eval_cmd import ProgressDisplay
    from prover.evaluation.events import EvaluationStarted, ProblemFinished

    Recorder(list(NAMES), list(PROVABLE))
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES)
    out = tmp_path / "o"
    first = invoke("--dataset", str(dataset), "--out", str(out), "--limit", "6", "--no-progress")
    assert first.exit_code == 0
    resumed = invoke("--dataset", str(dataset), "--out", str(out), "--resume", "--no-progress")
    assert "resuming: 6 recorded, 4 to go" in resumed.output
    assert "miniF2F test: proved 6/10 (60.0 %)" in resumed.output
    # The bar starts from the recorded results and ends where the summary does.
    records = read_records(out / "results.jsonl")
    with ProgressDisplay("miniF2F test", enabled=True, recorded_proved=3) as bar:
        bar(EvaluationStarted(total=4, skipped=6))
        for record in records[:4]:
            bar(ProblemFinished(record))
        task = bar._progress.tasks[0]
        proved = 3 + sum(record.proved for record in records[:4])
        assert (task.completed, task.total, task.fields["proved"]) == (10, 10, proved)
        assert task.fields["pct"] == f"({100 * proved / 10:.1f} %)"


class SeedGate:
    """The world's generator, except that a problem's root gets its proving `simp` only under some seeds."""

    def __init__(self, inner: Any, lucky: dict[str, set[int]]) -> None:
        self.inner = inner
        self.lucky = lucky
        self.seeds: set[int | None] = set()

    async def generate(self, requests: Any) -> Any:
        rows = await self.inner.generate(requests)
        out = []
        for request, row in zip(requests, rows, strict=True):
            self.seeds.add(request.seed)
            name = request.state.pp.split(":")[0]
            root = request.state.pp.endswith("⊢ n + 0 = 1")
            if root and name in self.lucky and request.seed not in self.lucky[name]:
                row = [candidate for candidate in row if candidate.text != "simp"]
            out.append(row)
        return out

    async def close(self) -> None:
        await self.inner.close()


def test_attempts_stop_at_the_first_proof_and_record_each_seed(tmp_path: Path) -> None:
    from prover.evaluation.summary import pass_at_k

    names = ["mathd_algebra_10", "mathd_algebra_11", "amc12a_2019_p21"]
    backends = Recorder(names, names)
    backends.generator = SeedGate(backends.generator, {names[0]: {12}, names[1]: {10}, names[2]: set()})  # type: ignore[assignment]
    dataset = write_jsonl(tmp_path / "d.jsonl", names)
    out, trees = tmp_path / "run", tmp_path / "trees"
    done = invoke(
        "--dataset", str(dataset), "--out", str(out), "--no-progress", "--attempts", "3", "--seed", "10",
        "--temperature", "0.7", "--export-trees", str(trees),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    records = {record.name: record for record in read_records(out / "results.jsonl")}
    attempts = {name: record.model_extra["search_attempts"] for name, record in records.items()}  # type: ignore[index]
    assert [(a["seed"], a["status"]) for a in attempts[names[0]]] == [(10, "failed"), (11, "failed"), (12, "proved")]
    assert [(a["seed"], a["status"]) for a in attempts[names[1]]] == [(10, "proved")], "stops at the first proof"
    assert [a["status"] for a in attempts[names[2]]] == ["failed"] * 3
    assert attempts[names[0]][-1]["proof"] and "proof" not in attempts[names[0]][0]
    assert all(set(a) >= {"seed", "status", "expansions", "wall_seconds"} for a in attempts[names[0]])
    assert records[names[0]].proved and records[names[0]].model_extra["seed"] == 12  # type: ignore[index]
    assert all(record.attempts == 1 for record in records.values()), "`attempts` still counts Ray dispatches"
    # Every search request carries its attempt's seed (None: the preflight's one request, outside any search).
    assert backends.generator.seeds == {10, 11, 12, None}
    assert pass_at_k(records.values()) == [
        (1, pytest.approx(1 / 3)),
        (2, pytest.approx(1 / 3)),
        (3, pytest.approx(2 / 3)),
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 10 and manifest["settings"]["model"]["seed"] == 10
    assert manifest["mode"] == {"mode": "formal", "attempts": 3}
    assert manifest["trees"] == str(trees.resolve())
    # The last attempt's tree under the name, the earlier ones beside it.
    earlier = [f"{name}.attempt{number}.json" for name in (names[0], names[2]) for number in (0, 1)]
    assert sorted(path.name for path in trees.iterdir()) == sorted([f"{name}.json" for name in names] + earlier)
    tree = json.loads((trees / f"{names[0]}.json").read_text())
    assert any(edge["on_proof"] for edge in tree["edges"])
    drawn = CliRunner().invoke(cli, ["tree", str(out), names[0], "--out", str(tmp_path / "a.png")])
    assert drawn.exit_code == 0, drawn.output
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    # The report draws the pass@k curve of the searches.
    from prover.report import write_report

    report = write_report([out]).read_text(encoding="utf-8")
    assert "pass@k over searches" in report and "| 3 | 2 | 3 | 66.7 % |" in report
    assert (out / "report" / "plots" / "pass_at_k.png").is_file()


def test_a_tree_that_cannot_be_written_loses_no_record(tmp_path: Path) -> None:
    Recorder(list(NAMES[:2]), list(NAMES[:1]))
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES[:2])
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / f"{NAMES[0]}.json").mkdir()  # a directory where the tree file should go
    done = invoke(
        "--dataset", str(dataset), "--out", str(tmp_path / "run"), "--no-progress", "--export-trees", str(blocked)
    )
    assert done.exit_code == 0, done.output
    records = read_records(tmp_path / "run" / "results.jsonl")
    assert sorted(record.name for record in records) == sorted(NAMES[:2])
    assert (blocked / f"{NAMES[1]}.json").is_file()


def test_attempts_and_trees_refused_on_ray_and_informal(tmp_path: Path) -> None:
    Recorder(list(NAMES[:1]), [])
    dataset = write_jsonl(tmp_path / "d.jsonl", NAMES[:1])
    ray = invoke("--dataset", str(dataset), "--out", str(tmp_path / "o"), "--executor", "ray", "--attempts", "2")
    assert ray.exit_code == 2 and "run locally only" in ray.output
    informal = invoke(
        "--dataset", str(dataset), "--out", str(tmp_path / "o"), "--mode", "informal", "--export-trees", "t"
    )
    assert informal.exit_code == 2 and "--export-trees applies to --mode formal" in informal.output


def test_log_lines_print_above_the_progress_bar_through_its_console() -> None:
    import io
    import logging

    from rich.console import Console
    from rich.logging import RichHandler

    from prover.cli.eval_cmd import ProgressDisplay
    from prover.evaluation.events import EvaluationStarted

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    own = RichHandler(console=Console(file=io.StringIO()), show_path=False)
    root = logging.getLogger()
    root.addHandler(own)
    try:
        with ProgressDisplay("miniF2F test", enabled=True, console=console) as bar:
            bar(EvaluationStarted(total=3, skipped=0))
            assert own.console is console, "while the bar is up, logs go through its console"
            logging.getLogger("prover.test").warning("a worker was recycled")
        assert own.console is not console, "and back afterwards"
    finally:
        root.removeHandler(own)
    text = screen.getvalue()
    assert "a worker was recycled" in text and "miniF2F test" in text
    # The log line stands on a line of its own, not glued to the bar's text.
    assert any("a worker was recycled" in line and "miniF2F test" not in line for line in text.splitlines())

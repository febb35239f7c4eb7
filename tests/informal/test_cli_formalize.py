"""`prover formalize` and `prover eval --mode informal` through the CLI, over the REPL and Isabelle stand-ins.

The commands run with `CliRunner().invoke(cli, args, obj=Backends(...))`: the real settings, pipeline,
backends, checker client, results files, manifest and report; only the builders hand out stand-ins (a
text generator that writes a sketch with gaps, the REPL stand-in, an in-process Isabelle server).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from lean_env.isabelle.checker import IsabelleChecker, IsabelleConfig
from lean_env.repl import ReplLeanEnv
from prover.cli.main import cli
from prover.models.text import Completion, FinishReason, TextRequest
from prover.wiring import Backends
from tests.shared_data import shared_data_file
from tests.stand_ins.fake_repl import ScriptTheorem, stand_in_config, write_script
from tests.stand_ins.isabelle_server import IsabelleStandIn, ProblemScript, Script, Step

# --- Lean: two holes the automation battery closes -------------------------------------------------------

CONTEXT = "a b : Prop\nha : a\nhb : b\n"
ROOT, GOAL_A, GOAL_B = (CONTEXT + "⊢ " + goal for goal in ("a ∧ b", "a", "b"))
STATEMENT = "theorem two (a b : Prop) (ha : a) (hb : b) : a ∧ b := by"
TWO = ScriptTheorem(
    statement=STATEMENT,
    goal=ROOT,
    states={
        ROOT: {"refine ⟨?_, ?_⟩": {"goals": [GOAL_A, GOAL_B]}},
        GOAL_A: {"omega": {"goals": []}},
        GOAL_B: {"linarith": {"goals": []}},
    },
)
LEAN_SKETCH = "\n  refine ⟨?_, ?_⟩\n  · sorry\n  · sorry"


class Sketches:
    """A text generator whose every completion is `sketch` (the problems here come with informal proofs)."""

    def __init__(self, sketch: str) -> None:
        self.sketch = sketch

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        return [[Completion(self.sketch, (-0.1,), FinishReason.STOP)] for _ in requests]

    async def close(self) -> None:
        return None


def _text(sketch: str, model: Any) -> Sketches:
    return Sketches(sketch)


def _repl_env(script: Path, lean: Any, **_: Any) -> ReplLeanEnv:
    return ReplLeanEnv(stand_in_config(script=script, workers=1))


def _no_tactic_generator(model: Any) -> Any:
    raise AssertionError("formalize builds its tactic generator over the shared text generator")


def test_formalize_lean_proves_a_sketch_with_holes_and_prints_json(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", [TWO])
    backends = Backends(
        build_env=functools.partial(_repl_env, script),
        build_generator=_no_tactic_generator,
        build_text_generator=functools.partial(_text, LEAN_SKETCH),
    )
    args = [
        "formalize",
        "--statement",
        STATEMENT,
        "--header",
        "import Mathlib\nimport Aesop\n\n",
        "--informal",
        "Show a and b.",
        "--informal-proof",
        "Both hold.",
        "--set",
        'informal.automation=["omega", "linarith"]',
        "--json",
    ]
    result = CliRunner().invoke(cli, args, obj=backends, env={"PROVER_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["proved"] is True and payload["language"] == "lean4"
    (attempt,) = payload["attempts"]
    assert attempt["sketch"] == LEAN_SKETCH and attempt["draft"] is None
    assert [(g["method"], g["closing"]) for g in attempt["gaps"]] == [
        ("automation", "omega"),
        ("automation", "linarith"),
    ]
    assert set(attempt["timings"]) == {"draft", "sketch", "prove", "check"}
    assert "sorry" not in payload["proof"] and "omega" in payload["proof"]


# --- Isabelle: miniF2F problems over the in-process Isabelle stand-in ------------------------------------

ISABELLE_SKETCH = '\nproof -\n  have c0: "True" sledgehammer\n  then show ?thesis sledgehammer\nqed'


class StandInChecker:
    """`build_isabelle`'s product for tests: starts an in-process stand-in, then a real `IsabelleChecker` on it."""

    def __init__(self, script: Script, work_dir: Path, config: IsabelleConfig) -> None:
        self.script, self.work_dir, self.config = script, work_dir, config
        self.server: IsabelleStandIn | None = None
        self.checker: IsabelleChecker | None = None

    async def start(self) -> None:
        self.server = await IsabelleStandIn(self.script).start()
        config = self.config.model_copy(
            update={"port": self.server.port, "password": self.server.password, "work_dir": self.work_dir}
        )
        self.checker = IsabelleChecker(config)
        await self.checker.start()

    async def check_theory(self, theory_text: str, *, name_hint: str, timeout: float) -> Any:
        assert self.checker is not None
        return await self.checker.check_theory(theory_text, name_hint=name_hint, timeout=timeout)

    async def verify_theory(self, theory_text: str, timeout: float | None = None) -> Any:
        assert self.checker is not None
        return await self.checker.verify_theory(theory_text, timeout)

    async def close(self) -> None:
        if self.checker is not None:
            await self.checker.close()
        if self.server is not None:
            await self.server.close()


def _isabelle_builder(script: Script, work_dir: Path, config: IsabelleConfig) -> StandInChecker:
    work_dir.mkdir(parents=True, exist_ok=True)
    return StandInChecker(script, work_dir, config)


def _isabelle_backends(tmp_path: Path, script: Script) -> Backends:
    return Backends(
        build_generator=_no_tactic_generator,
        build_text_generator=functools.partial(_text, ISABELLE_SKETCH),
        build_isabelle=functools.partial(_isabelle_builder, script, tmp_path / "theories"),
    )


def _rows(count: int) -> list[dict[str, Any]]:
    path = shared_data_file("minif2f_isabelle.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if row.get("informal_proof")][:count]


def test_formalize_isabelle_closes_sledgehammer_gaps_with_heuristics(tmp_path: Path) -> None:
    (row,) = _rows(1)
    script = Script(problems=[ProblemScript(marker=row["name"], steps=[Step("auto")])], unknown="error")
    data = shared_data_file("minif2f_isabelle.jsonl")
    args = ["formalize", "--file", str(data), "--name", row["name"], "--lang", "isabelle"]
    env = {"PROVER_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(cli, args, obj=_isabelle_backends(tmp_path, script), env=env)
    assert result.exit_code == 0, result.output
    assert "sketch" in result.stdout and "heuristic" in result.stdout and "proved" in result.stdout
    assert "by auto" in result.stdout

    json_result = CliRunner().invoke(cli, [*args, "--json"], obj=_isabelle_backends(tmp_path, script), env=env)
    payload = json.loads(json_result.stdout)
    assert payload["proved"] and payload["language"] == "isabelle"
    assert [g["method"] for g in payload["attempts"][0]["gaps"]] == ["heuristic", "heuristic"]


def test_formalize_isabelle_not_proved_exits_1(tmp_path: Path) -> None:
    (row,) = _rows(1)
    script = Script(problems=[ProblemScript(marker=row["name"], steps=[])], unknown="error")
    args = [
        "formalize",
        "--file",
        str(shared_data_file("minif2f_isabelle.jsonl")),
        "--name",
        row["name"],
        "--lang",
        "isabelle",
        "--set",
        'informal.heuristics=["by auto", "by simp"]',
        "--set",
        "informal.sledgehammer=false",
    ]
    result = CliRunner().invoke(cli, args, obj=_isabelle_backends(tmp_path, script), env={"PROVER_HOME": str(tmp_path)})
    assert result.exit_code == 1, result.output
    assert "not proved" in result.stdout and "open" in result.stdout


def test_show_prompt_prints_the_isabelle_harness_prompt_and_never_the_reference_proof(tmp_path: Path) -> None:
    path = shared_data_file("minif2f_isabelle.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    row = next(row for row in rows if row.get("reference_proof") and row.get("informal_proof"))
    args = ["formalize", "--file", str(path), "--name", row["name"], "--lang", "isabelle", "--show-prompt"]
    result = CliRunner().invoke(cli, args, obj=_isabelle_backends(tmp_path, Script()))
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith(row["formal_statement"].rstrip())
    assert "Informal:" in result.stdout and "Formal:" in result.stdout
    assert row["reference_proof"].strip() not in result.stdout


def test_bad_input_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["formalize", "--lang", "isabelle"], obj=_isabelle_backends(tmp_path, Script()))
    assert result.exit_code == 2


def test_eval_minif2f_informal_isabelle_records_attempts_resumes_and_reports(tmp_path: Path) -> None:
    rows = _rows(3)
    data = tmp_path / "three.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    # The first two are proved (every step `by auto`), the third never.
    script = Script(
        problems=[ProblemScript(marker=row["name"], steps=[Step("auto")]) for row in rows[:2]], unknown="error"
    )
    out = tmp_path / "run"
    base = ["eval", "minif2f", "--dataset", str(data), "--split", "all", "--mode", "informal", "--lang", "isabelle"]
    args = [*base, "--attempts", "2", "--out", str(out), "--no-progress", "--json"]
    args += ["--set", 'informal.heuristics=["by auto", "by simp"]', "--set", "informal.sledgehammer=false"]
    env = {"PROVER_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(cli, args, obj=_isabelle_backends(tmp_path, script), env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["proved"], summary["attempted"]) == (2, 3)
    records = {r["name"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert set(records) == {row["name"] for row in rows}
    failed = records[rows[2]["name"]]
    assert failed["status"] == "failed" and len(failed["informal"]["attempts"]) == 2
    for attempt in failed["informal"]["attempts"]:
        assert attempt["sketch"] == ISABELLE_SKETCH and set(attempt["timings"]) == {"draft", "sketch", "prove", "check"}
        assert all({"index", "method", "closing", "tried", "seconds"} <= set(gap) for gap in attempt["gaps"])
    proved = records[rows[0]["name"]]
    assert proved["status"] == "proved" and proved["informal"]["attempts"][0]["verdict"]["status"] == "valid"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mode"] == {"mode": "informal", "lang": "isabelle", "attempts": 2}

    resumed = CliRunner().invoke(cli, [*args, "--resume"], obj=_isabelle_backends(tmp_path, script), env=env)
    assert resumed.exit_code == 0, resumed.output
    assert len((out / "results.jsonl").read_text().splitlines()) == 3, "every problem was skipped"

    formal = [*base[:4], "--language", "isabelle", "--split", "all", "--out", str(out), "--resume", "--no-progress"]
    mixed = CliRunner().invoke(cli, formal, obj=_isabelle_backends(tmp_path, script), env=env)
    assert mixed.exit_code == 2 and "mode.mode" in mixed.output

    report = CliRunner().invoke(cli, ["report", str(out)], env=env)
    assert report.exit_code == 0, report.output
    text = (out / "report" / "report.md").read_text()
    assert "Pass@k over attempts" in text and "| 1 | 2 | 3 |" in text and "| 2 | 2 | 3 |" in text
    assert "How gaps were closed" in text and "| heuristic | by auto |" in text
    assert "Time split across the stages" in text and "| sketch |" in text
    assert (out / "report" / "plots" / "pass_at_k.png").stat().st_size > 0


def test_eval_jsonl_informal_lean_proves_over_the_repl_stand_in(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", [TWO])
    data = tmp_path / "two.jsonl"
    row = {
        "name": "two",
        "header": "import Mathlib\nimport Aesop\n\n",
        "formal_statement": STATEMENT,
        "informal_statement": "Show a and b.",
        "informal_proof": "Both hold.",
    }
    data.write_text(json.dumps(row) + "\n", encoding="utf-8")
    backends = Backends(
        build_env=functools.partial(_repl_env, script),
        build_generator=_no_tactic_generator,
        build_text_generator=functools.partial(_text, LEAN_SKETCH),
    )
    out = tmp_path / "run"
    args = ["eval", "jsonl", str(data), "--mode", "informal", "--lang", "lean4", "--out", str(out), "--no-progress"]
    args += ["--set", 'informal.automation=["omega", "linarith"]']
    result = CliRunner().invoke(cli, args, obj=backends, env={"PROVER_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    (record,) = map(json.loads, (out / "results.jsonl").read_text().splitlines())
    assert record["status"] == "proved" and record["language"] == "lean4"
    assert [g["method"] for g in record["informal"]["attempts"][0]["gaps"]] == ["automation", "automation"]

    # `--attempts` is pass@k in either mode; `--lang` only means something for informal runs.
    formal_only = CliRunner().invoke(cli, ["eval", "jsonl", str(data), "--lang", "isabelle"], obj=backends)
    assert formal_only.exit_code == 2 and "--mode informal" in formal_only.output
    ray = CliRunner().invoke(cli, [*args[:-2], "--resume", "--executor", "ray"], obj=backends)
    assert ray.exit_code == 2 and "locally only" in ray.output


def test_an_isabelle_server_that_cannot_be_reached_exits_2(tmp_path: Path) -> None:
    (row,) = _rows(1)
    args = ["formalize", "--file", str(shared_data_file("minif2f_isabelle.jsonl")), "--name", row["name"]]
    args += ["--lang", "isabelle", "--set", "lean.isabelle.port=1", "--set", "lean.isabelle.password=x"]
    args += ["--set", "lean.isabelle.connect_timeout_s=2"]
    backends = Backends(build_text_generator=functools.partial(_text, ISABELLE_SKETCH))
    result = CliRunner().invoke(cli, args, obj=backends, env={"PROVER_HOME": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert "Isabelle server did not start" in result.output

"""The comparator judge against a stand-in speaking comparator's real CLI; `JudgedEnv`; the search's judge field."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lean_env.comparator import (
    REPORT_FILE,
    WORK_FOLDER,
    ComparatorJudge,
    ComparatorSettings,
    ComparatorTools,
    _verdict,
)
from lean_env.errors import BackendCrashed, MissingDependency
from lean_env.judged import JudgedEnv
from lean_env.types import Judge, Problem, ProofClosed, VerifyResult, VerifyStatus
from search.best_first import BestFirstSearch
from search.types import SearchStatus
from tests.search.helpers import config
from tests.stand_ins.scripted import ScriptedEnv, ScriptedGenerator, Unsound

STAND_IN = Path(__file__).resolve().parents[1] / "stand_ins" / "comparator_stand_in.py"
HEADER = "import Mathlib\n\nopen Nat\n\n"
PROBLEM = Problem("mathd_algebra_10", HEADER, "theorem mathd_algebra_10 (n : ℕ) (h : n = 2) : n + 1 = 3 := by")


def _executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / ".lake" / "packages" / "mathlib").mkdir(parents=True)
    (root / "lean-toolchain").write_text("leanprover/lean4:v4.30.0-rc2\n")
    (root / "lakefile.toml").write_text(
        'name = "MiniF2F"\n\n[[require]]\nname = "mathlib"\n'
        'git = "https://github.com/leanprover-community/mathlib4"\nrev = "v4.30.0-rc2"\n\n'
        '[[lean_lib]]\nname = "MiniF2F"\n'
    )
    manifest = {"version": "1.1.0", "packagesDir": ".lake/packages", "packages": [{"name": "mathlib", "rev": "abc"}]}
    (root / "lake-manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def tools(tmp_path: Path) -> ComparatorTools:
    bin_dir = tmp_path / "tools"
    comparator = _executable(bin_dir / "comparator", f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" "$@"\n')
    return ComparatorTools(
        comparator=comparator,
        lean4export=_executable(bin_dir / "lean4export", "#!/bin/sh\nexit 0\n"),
        landrun=_executable(bin_dir / "landrun", "#!/bin/sh\nexit 0\n"),
    )


def _judge(project: Path, tools: ComparatorTools, env: dict[str, str] | None = None, **fields: Any) -> ComparatorJudge:
    environment = {"PATH": "/usr/bin:/bin", **(env or {})}
    return ComparatorJudge(ComparatorSettings(**fields), project, tools, environment=environment)


async def test_a_correct_proof_is_accepted_by_comparator_and_says_so(project: Path, tools: ComparatorTools) -> None:
    verdict = await _judge(project, tools).judge(PROBLEM, "by\n  subst h\n  norm_num")
    assert verdict.ok, verdict.reason
    assert verdict.judge == "comparator" == Judge.COMPARATOR
    assert verdict.axioms == ("propext",)
    assert verdict.checked_text.startswith(HEADER) and "norm_num" in verdict.checked_text
    assert "Your solution is okay!" in verdict.messages
    assert not any((project / WORK_FOLDER).iterdir())  # each check's work directory is removed


async def test_the_work_project_holds_the_trusted_challenge_and_reuses_the_projects_packages(
    project: Path, tools: ComparatorTools, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    judge = _judge(project, tools, {"COMPARATOR_STAND_IN_LOG": str(log)}, keep_work_dirs=True)
    assert (await judge.judge(PROBLEM, "by\n  omega")).ok
    (work,) = list((project / WORK_FOLDER).iterdir())
    assert log.read_text().split() == [str(work), "config.json"]  # run in the work dir, with its config
    challenge = (work / "Challenge.lean").read_text()
    assert challenge == HEADER + PROBLEM.formal_statement + " sorry\n"
    assert "omega" in (work / "Solution.lean").read_text() and "omega" not in challenge
    config_data = json.loads((work / "config.json").read_text())
    assert config_data["challenge_module"] == "Challenge" and config_data["solution_module"] == "Solution"
    assert config_data["theorem_names"] == ["mathd_algebra_10"]
    assert sorted(config_data["permitted_axioms"]) == ["Classical.choice", "Quot.sound", "propext"]
    assert config_data["json_output_path"] == REPORT_FILE  # outside `.lake`, which the sandboxed build may write
    lakefile = (work / "lakefile.toml").read_text()
    assert 'packagesDir = "../../packages"' in lakefile and 'rev = "v4.30.0-rc2"' in lakefile
    assert (work / "lean-toolchain").read_text() == (project / "lean-toolchain").read_text()
    assert json.loads((work / "lake-manifest.json").read_text())["packagesDir"] == "../../packages"


async def test_a_smuggled_second_statement_is_a_statement_mismatch(project: Path, tools: ComparatorTools) -> None:
    proof = "by\n  sorry\n\ntheorem mathd_algebra_10 : True := by\n  trivial"
    verdict = await _judge(project, tools).judge(PROBLEM, proof)
    assert verdict.status is VerifyStatus.STATEMENT_CHANGED and verdict.judge == "comparator"
    assert "does not match" in verdict.reason


async def test_a_disallowed_axiom_is_rejected(project: Path, tools: ComparatorTools) -> None:
    verdict = await _judge(project, tools).judge(PROBLEM, "by\n  subst h\n  native_decide")
    assert verdict.status is VerifyStatus.NONSTANDARD_AXIOMS
    assert "Lean.ofReduceBool" in verdict.reason and "Lean.ofReduceBool" in verdict.axioms
    sorry = await _judge(project, tools).judge(PROBLEM, "by\n  sorry")
    assert sorry.status is VerifyStatus.SORRY and "sorryAx" in sorry.reason


async def test_the_permitted_axioms_setting_is_what_comparator_is_told(project: Path, tools: ComparatorTools) -> None:
    judge = _judge(project, tools, permitted_axioms=["propext", "Classical.choice", "Quot.sound", "Lean.ofReduceBool"])
    assert (await judge.judge(PROBLEM, "by\n  subst h\n  native_decide")).ok


async def test_a_solution_that_does_not_build_is_rejected(project: Path, tools: ComparatorTools) -> None:
    verdict = await _judge(project, tools).judge(PROBLEM, "by\n  exact bad_lemma n h")
    assert verdict.status is VerifyStatus.LEAN_ERROR and verdict.judge == "comparator"
    assert "does not build" in verdict.reason and "bad_lemma" in verdict.reason


async def test_a_kernel_rejection_is_rejected(project: Path, tools: ComparatorTools) -> None:
    verdict = await _judge(project, tools).judge(PROBLEM, "by\n  kernel_reject")
    assert verdict.status is VerifyStatus.LEAN_ERROR and "kernel rejected" in verdict.reason


async def test_a_comparator_that_runs_too_long_is_killed_and_reported_as_a_timeout(
    project: Path, tools: ComparatorTools
) -> None:
    judge = _judge(project, tools, {"COMPARATOR_STAND_IN_SLEEP_S": "30"}, timeout_s=0.5)
    started = time.monotonic()
    verdict = await judge.judge(PROBLEM, "by\n  omega")
    assert time.monotonic() - started < 10
    assert verdict.status is VerifyStatus.TIMEOUT and verdict.judge == "comparator" and not verdict.ok
    assert not any((project / WORK_FOLDER).iterdir())


async def test_missing_tools_are_named_with_how_to_install(project: Path, tools: ComparatorTools) -> None:
    missing = ComparatorTools(tools.comparator, tools.lean4export, project / "no-landrun")
    with pytest.raises(MissingDependency) as caught:
        await _judge(project, missing).judge(PROBLEM, "by\n  omega")
    assert "landrun" in caught.value.what and "prover setup" in caught.value.how


async def test_a_trusted_challenge_that_does_not_build_is_an_infrastructure_failure(
    project: Path, tools: ComparatorTools
) -> None:
    broken = Problem("t", "import bad_module\n\n", "theorem t : True := by")
    with pytest.raises(BackendCrashed, match="before judging the solution"):
        await _judge(project, tools).judge(broken, "by\n  trivial")


def test_acceptance_never_rests_on_printed_output() -> None:
    okay = "Building Solution\nYour solution is okay!\n"  # what a solution's build could print
    assert _verdict(1, okay, None, "", 0.0).status is VerifyStatus.LEAN_ERROR
    assert _verdict(0, okay, None, "", 0.0).status is VerifyStatus.BACKEND_ERROR  # no report: not accepted
    accepted = {"reports": [{"target": "t", "failureCategory": None}], "kernelAccepted": True}
    assert _verdict(0, "", accepted, "", 0.0).ok
    assert not _verdict(0, "", {**accepted, "kernelAccepted": None}, "", 0.0).ok


# --- JudgedEnv and the search ----------------------------------------------------------------------


class CountingJudge:
    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.calls: list[str] = []

    @property
    def name(self) -> str:
        return "comparator"

    async def judge(self, problem: Problem, proof: str, timeout: float | None = None) -> VerifyResult:
        self.calls.append(proof)
        if self.accept:
            return VerifyResult(VerifyStatus.VALID, judge="comparator")
        return VerifyResult(VerifyStatus.STATEMENT_CHANGED, reason="comparator: statement differs", judge="comparator")


def _script() -> Any:
    return {"root": {"close": ProofClosed(), "bogus": Unsound()}}


async def test_judged_env_asks_the_final_judge_only_about_what_the_repl_accepts() -> None:
    script = _script()
    final = CountingJudge(accept=True)
    env = JudgedEnv(ScriptedEnv(script), final)
    theorem = Problem("t", "", "theorem t : True := by")
    rejected = await env.verify(theorem, "by\n  bogus", 5.0)
    assert not rejected.ok and rejected.judge == "repl" and final.calls == []
    accepted = await env.verify(theorem, "by\n  close", 5.0)
    assert accepted.ok and accepted.judge == "comparator" and final.calls == ["by\n  close"]
    await env.close()


async def test_the_search_reports_which_judge_accepted_its_proof() -> None:
    script = _script()
    theorem = Problem("t", "", "theorem t : True := by")
    table = {"root": [("close", -0.1, 1)]}
    plain = await BestFirstSearch(theorem, ScriptedEnv(script), ScriptedGenerator(table), config()).run()
    assert plain.status is SearchStatus.PROVED and plain.judge == "repl" and plain.to_dict()["judge"] == "repl"
    judged_env = JudgedEnv(ScriptedEnv(script), CountingJudge(accept=True))
    judged = await BestFirstSearch(theorem, judged_env, ScriptedGenerator(table), config()).run()
    assert judged.status is SearchStatus.PROVED and judged.judge == "comparator"
    refused_env = JudgedEnv(ScriptedEnv(script), CountingJudge(accept=False))
    refused = await BestFirstSearch(theorem, refused_env, ScriptedGenerator(table), config()).run()
    assert refused.status is not SearchStatus.PROVED and refused.judge is None
    assert "comparator: statement differs" in (refused.failure_reason or "")


async def test_judged_env_with_the_real_judge_over_the_stand_in(project: Path, tools: ComparatorTools) -> None:
    script = _script()
    env = JudgedEnv(ScriptedEnv(script), _judge(project, tools))
    theorem = Problem("t", HEADER, "theorem t : True := by")
    verdict = await env.verify(theorem, "by\n  close", 5.0)
    assert verdict.ok and verdict.judge == "comparator"

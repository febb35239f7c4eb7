"""`prover prove` as a user runs it: the console script, in a subprocess, on a machine without Lean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_prover(*args: str, env_extra: dict[str, str] | None = None, tmp_home: Path) -> subprocess.CompletedProcess[str]:
    # A PATH without lake/elan and a HOME without ~/.elan: the machine of a user who has not run setup.
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "HOME": str(tmp_home),
        "PYTHONPATH": str(REPO_ROOT),
        **(env_extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "prover.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_home,
        timeout=120,
    )


def test_version_and_help(tmp_path: Path) -> None:
    version = run_prover("--version", tmp_home=tmp_path)
    assert version.returncode == 0 and "0.1.0" in version.stdout
    helped = run_prover("prove", "--help", tmp_home=tmp_path)
    assert helped.returncode == 0
    for flag in (
        "--statement",
        "--file",
        "--expansions",
        "--samples",
        "--timeout",
        "--tactic-timeout",
        "--json",
    ):
        assert flag in helped.stdout


def test_missing_lean_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    done = run_prover(
        "prove",
        "--statement",
        "theorem t (n : ℕ) : n + 0 = n := by",
        "--project-dir",
        str(tmp_path / "proj"),
        tmp_home=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "prover setup" in done.stderr
    assert done.stderr.lower().count("error:") == 1


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--statement", "theorem t : 1 = 1 := by simp"], "nothing may follow"),
        (["--statement", "lemma"], "must start with `theorem <name>`"),
        (["--file", "nowhere.lean", "--name", "t"], "does not exist"),
        (["--file", "nowhere.lean"], "--file needs --name"),
        ([], "nothing to prove"),
        (["--statement", "theorem t : 1 = 1 := by", "--expansions", "0"], "--expansions"),
        (["--file", ".", "--name", "t"], "is a directory"),
        (["--statement", "theorem t : 1 = 1 := by", "--name", "t"], "--name only apply with --file"),
        (["--statement", "theorem t : 1 = 1 := by", "--repo", "r", "--commit", "c"], "--repo, --commit only apply"),
        (["--statement", ""], "the statement is empty"),
        (["--statement", "   "], "the statement is empty"),
        (["--statement", "theorem t : 1 = 1 := by", "--export-tree", "tree.png"], "must end in .json, .graphml, .dot"),
        (["--statement", "theorem t : 1 = 1 := by", "--export-tree", "nodir/tree.json"], "nodir does not exist"),
    ],
)
def test_malformed_input_exits_2_saying_what_is_wrong(tmp_path: Path, args: list[str], complaint: str) -> None:
    done = run_prover("prove", *args, tmp_home=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr


def test_exit_status_tells_not_proved_from_invalid_from_environment_failure(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from prover.cli.main import cli
    from prover.wiring import Backends
    from tests.evaluation.worlds import world

    statement = "theorem mathd_algebra_10 (n : ℕ) (h₀ : n = 1) : n + 0 = 1 := by"

    def run(env: Any, generator: Any) -> Any:
        backends = Backends(build_env=lambda lean, **_: env, build_generator=lambda model: generator)
        args = ["prove", "--statement", statement, "--expansions", "3", "--json"]
        return CliRunner().invoke(cli, args, obj=backends, catch_exceptions=False)

    assert run(*world(["mathd_algebra_10"], ["mathd_algebra_10"])).exit_code == 0
    assert run(*world([], ["mathd_algebra_10"])).exit_code == 1, "searched, not proved"
    crashing = run(*world([], ["mathd_algebra_10"], crash=["mathd_algebra_10"]))
    assert crashing.exit_code == 3 and '"status": "env_error"' in crashing.output
    env, generator = world([], ["mathd_algebra_10"])
    env._invalid["mathd_algebra_10"] = "unknown identifier 'x'"
    assert run(env, generator).exit_code == 2


def test_show_prompt_prints_the_llemma_prompt_for_a_given_state_without_lean(tmp_path: Path) -> None:
    state = "a b : ℕ\nh : a = b\n⊢ b = a"
    done = run_prover(
        "prove",
        "--statement",
        "theorem t (a b : ℕ) (h : a = b) : b = a := by",
        "--show-prompt",
        "--state",
        state,
        tmp_home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # The query block comes last and ends where the model writes the next tactic.
    assert done.stdout.endswith(f"Tactic state:\n---\n{state}\n---\nNext tactic:\n---\n")


def test_openai_at_temperature_zero_warns_that_samples_collapse(tmp_path: Path) -> None:
    args = ["prove", "--statement", "theorem t : 1 = 1 := by", "--backend", "openai", "--samples", "4"]
    warned = run_prover(*args, "--show-prompt", "--state", "⊢ 1 = 1", tmp_home=tmp_path)
    assert warned.returncode == 0 and "decodes greedily" in warned.stderr and "--temperature" in warned.stderr
    quiet = run_prover(*args, "--temperature", "1.0", "--show-prompt", "--state", "⊢ 1 = 1", tmp_home=tmp_path)
    assert quiet.returncode == 0 and "decodes greedily" not in quiet.stderr
    help_text = run_prover("prove", "--help", tmp_home=tmp_path).stdout
    assert "http://127.0.0.1:8000/v1" in help_text, "the default server address is said in --help"

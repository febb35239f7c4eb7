"""The package as a user gets it: built into a wheel, installed into a fresh venv, run from elsewhere.

Nothing may default to (or read from) the source checkout. The wheel is built from a copy of the
sources, the venv has no path to the checkout, the commands run from an unrelated directory with a
HOME of their own, and an audit hook installed in the venv records every file the process opens or
lists under the checkout: the test fails if there is any. The REPL stand-in is copied out as well;
the completions stand-in runs in this process and is reached over HTTP.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stand_ins.fake_repl import linear_theorem, write_script
from tests.stand_ins.openai_server import OpenAIStandIn

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "lean_env", "search", "prover")
STATEMENT = "theorem mathd_algebra_1 (x : ℝ) (h₀ : 2 * x = 4) : x = 2 := by"
PROOF = ["field_simp at h₀", "linarith"]
GUARD = """\
import sys, os
_root = os.environ.get("CHECKOUT_GUARD_ROOT")
_log = os.environ.get("CHECKOUT_GUARD_LOG")
def _guard(event, args, _root=_root, _log=_log):
    if event not in ("open", "os.listdir", "os.scandir", "os.chdir") or not args:
        return
    if isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if path == _root or path.startswith(_root + os.sep):
            with open(_log, "a", encoding="utf-8") as out:
                out.write(event + " " + path + "\\n")
if _root and _log:
    sys.addaudithook(_guard)
"""


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel of this project (and its dependencies) installed, nothing else."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        origin = CHECKOUT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=ignore)
        else:
            shutil.copy2(origin, source / name)
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(root / "dist"),
            "./src",
        ],
        cwd=root,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list((root / "dist").glob("llemma_prover-*.whl"))
    assert len(wheels) == 1, wheels
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # The outer pip installs into the new venv (`--python`), so the venv needs no pip of its own.
    # The openai extra (httpx) is what `prove --backend openai` needs; torch and the rest are not installed.
    wheel = f"{wheels[0]}[openai]"
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", wheel])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "zz_checkout_guard.pth").write_text("import _checkout_guard\n", encoding="utf-8")
    (Path(purelib) / "_checkout_guard.py").write_text(GUARD, encoding="utf-8")
    shutil.rmtree(source)  # the wheel is all that is left of the sources
    yield venv


@pytest.fixture
def user(tmp_path: Path, venv: Path) -> dict[str, object]:
    """An unrelated working directory, a HOME of its own, and an environment that knows no checkout."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    log = tmp_path / "checkout-reads.log"
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CHECKOUT_GUARD_ROOT": str(CHECKOUT),
        "CHECKOUT_GUARD_LOG": str(log),
    }
    return {"env": env, "home": home, "work": work, "log": log, "venv": venv}


def _prover(user: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    venv = user["venv"]
    assert isinstance(venv, Path)
    return _run([str(venv / "bin" / "prover"), *args], cwd=user["work"], env=user["env"])


def _no_checkout_reads(user: dict[str, object]) -> None:
    log = user["log"]
    assert isinstance(log, Path)
    reads = log.read_text(encoding="utf-8") if log.exists() else ""
    assert not reads, f"the installed package touched the source checkout:\n{reads}"


def test_the_package_comes_from_the_venv_with_its_project_files(user: dict[str, object]) -> None:
    venv = user["venv"]
    assert isinstance(venv, Path)
    code = (
        "import importlib.resources, json, prover, lean_env, search\n"
        "project = importlib.resources.files('prover') / 'project' / 'miniF2F'\n"
        "print(json.dumps([prover.__file__, lean_env.__file__, search.__file__,"
        " (project / 'lean-toolchain').read_text().strip(), (project / 'lake-manifest.json').is_file()]))\n"
    )
    done = _run([str(venv / "bin" / "python"), "-c", code], cwd=user["work"], env=user["env"])
    assert done.returncode == 0, done.stderr
    *files, toolchain, manifest = json.loads(done.stdout)
    for file in files:
        assert Path(file).resolve().is_relative_to(venv.resolve()), file
    assert toolchain == "leanprover/lean4:v4.24.0" and manifest
    _no_checkout_reads(user)


def test_help_and_doctor_run_from_an_unrelated_directory(user: dict[str, object]) -> None:
    helped = _prover(user, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "prove" in helped.stdout and "doctor" in helped.stdout
    doctor = _prover(user, "doctor", "--json")
    assert doctor.returncode == 1, doctor.stderr  # a full report; 1 because no Lean is set up here
    report = {item["name"]: item for item in json.loads(doctor.stdout)}
    home = user["home"]
    assert isinstance(home, Path)
    default_project = home / ".local" / "share" / "llemma-prover" / "miniF2F"
    assert report["Lean project"]["ok"] is False and str(default_project) in report["Lean project"]["detail"]
    assert str(CHECKOUT) not in doctor.stdout
    table = _prover(user, "doctor")
    assert table.returncode == 1 and "missing" in table.stdout
    _no_checkout_reads(user)


def test_prove_with_the_stand_ins_from_an_unrelated_directory(user: dict[str, object], tmp_path: Path) -> None:
    theorem = linear_theorem(STATEMENT, PROOF)
    script = write_script(tmp_path / "script.json", [theorem])
    stand_in = tmp_path / "fake_repl.py"
    shutil.copy2(CHECKOUT / "tests" / "stand_ins" / "fake_repl.py", stand_in)
    table = {
        f"---\n{state}\n---\nNext tactic:": [[(tactic, -0.5), ("\n---", -0.01)] for tactic in tactics]
        for state, tactics in theorem.states.items()
    }
    table = dict(sorted(table.items(), key=lambda item: -item[0].count("step")))
    venv = user["venv"]
    assert isinstance(venv, Path)
    repl = shlex.join([str(venv / "bin" / "python"), "-S", str(stand_in), "--script", str(script)])
    with OpenAIStandIn(table, model="llemma-stand-in") as server:
        done = _prover(
            user,
            "prove",
            "--statement",
            STATEMENT,
            "--json",
            "--repl-command",
            repl,
            "--workers",
            "1",
            "--backend",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "llemma-stand-in",
            "--samples",
            "2",
            "--temperature",
            "1.0",
            "--expansions",
            "8",
            "--timeout",
            "60",
        )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["verified"] and result["tactics"] == PROOF
    assert os.listdir(user["work"]) == [], "nothing is written into the working directory by `prove`"
    _no_checkout_reads(user)

"""Fixtures of the `lean` contract suite: the same tests against each real backend on tests/lean_project.

Everything here skips, with the reason, when the real thing is absent: `lake` (install Lean with
`prover setup`), the Lean REPL built for the project's Lean version, LeanDojo, or a LeanDojo trace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lean_env.errors import MissingDependency
from lean_env.protocol import LeanEnv
from lean_env.types import Theorem

TINY_PROJECT = Path(__file__).resolve().parents[1] / "lean_project"
BUILD_TIMEOUT_S = 900


def _lake() -> Path:
    from prover.lean_setup import find_tool

    lake = find_tool("lake")
    if lake is None:
        pytest.skip("lake is not on PATH (nor in ~/.elan/bin); install Lean with `prover setup` to run the lean suite")
    return lake


def _run(argv: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class TinyProject:
    path: Path
    commit: str
    lake: Path


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    """A built copy of tests/lean_project in a git repository (LeanDojo traces git repositories)."""
    lake = _lake()
    path = tmp_path_factory.mktemp("lean") / "lean_project"
    shutil.copytree(TINY_PROJECT, path, ignore=shutil.ignore_patterns(".lake"))
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "."],
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm", "tiny"],
    ):
        assert _run(argv, path).returncode == 0
    commit = _run(["git", "rev-parse", "HEAD"], path).stdout.strip()
    built = _run([str(lake), "build"], path, timeout=BUILD_TIMEOUT_S)
    if built.returncode != 0:
        pytest.fail(f"`lake build` of the tiny project failed:\n{built.stdout}\n{built.stderr}")
    return TinyProject(path, commit, lake)


@pytest.fixture(scope="session")
def dojo_cache(tiny_project: TinyProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LeanDojo's trace of the tiny project (done once per session)."""
    from lean_env.dojo import DojoConfig, import_lean_dojo

    cache = tmp_path_factory.mktemp("lean_dojo_cache")
    try:
        lean_dojo = import_lean_dojo(DojoConfig(cache_dir=cache, disable_remote_cache=True))
    except MissingDependency as error:
        pytest.skip(f"{error.what} is not installed")
    try:
        repo = lean_dojo.LeanGitRepo(str(tiny_project.path), tiny_project.commit)
        lean_dojo.trace(repo)
    except Exception as error:  # LeanDojo's own failure modes are many; say which one and skip
        pytest.skip(
            f"LeanDojo {lean_dojo.__version__} could not trace the tiny project ({type(error).__name__}: {error}); "
            "lean-dojo 4.20.0 traces Lean v4.3.0-rc2 up to about v4.20"
        )
    return cache


@dataclass
class Backend:
    """One real backend and how it names the tiny project's theorems."""

    name: str
    env: LeanEnv
    theorem: Callable[[str, str], Theorem]
    """(file relative to the project, theorem name) -> Theorem."""


@pytest.fixture(params=["repl", "dojo"])
async def backend(request: pytest.FixtureRequest, tiny_project: TinyProject) -> AsyncIterator[Backend]:
    from lean_env.lean_syntax import split_declaration, split_header
    from lean_env.types import Problem
    from prover.config import load_settings
    from prover.wiring import build_env

    if request.param == "repl":
        try:
            # As an entry point does: the REPL `prover setup` built lives under the per-user data directory.
            # The tiny project's own modules are imports an operator allows, as any project's would be.
            overrides = {
                "lean": {
                    "backend": "repl",
                    "project_dir": tiny_project.path,
                    "repl": {"workers": 1},
                    "policy": {"allowed_imports": ["TinyProject", "TinyProject.*"]},
                }
            }
            env = build_env(load_settings(environ=os.environ, overrides=overrides).lean)
        except MissingDependency as error:
            pytest.skip(f"{error.what} is not available: {error.how}")
        except ImportError as error:
            pytest.skip(f"the REPL backend is not importable: {error}")

        def make(file: str, name: str) -> Theorem:
            # Header = the file's imports; the theorems before `name` are not part of its problem (a header
            # may hold no declarations), and every tiny theorem stands on its own.
            text = (tiny_project.path / file).read_text(encoding="utf-8")
            header, _ = split_header(text)
            parts = split_declaration(text, name)
            assert parts is not None, f"{file} has no theorem {name}"
            return Problem(name=name, header=header, formal_statement=parts[2])

        backend = Backend("repl", env, make)
    else:
        cache = request.getfixturevalue("dojo_cache")
        from lean_env.dojo import DojoConfig, DojoLeanEnv, DojoLocation, theorem_from_location

        # The backend finds each problem's place by name; `make_dojo` fills the mapping as it goes.
        locations: dict[str, DojoLocation] = {}
        dojo_env = DojoLeanEnv(
            DojoConfig(cache_dir=cache, timeout_s=600, lean_command=(str(tiny_project.lake), "env", "lean")),
            locate=locations,
            check_in=DojoLocation(
                str(tiny_project.path), tiny_project.commit, "TinyProject/Basic.lean", "add_zero_nat"
            ),
        )

        def make_dojo(file: str, name: str) -> Theorem:
            location = DojoLocation(str(tiny_project.path), tiny_project.commit, file, name)
            problem = theorem_from_location(location, source_roots=[], cache_dir=cache)
            locations[problem.name] = location
            return problem

        backend = Backend("dojo", dojo_env, make_dojo)
    try:
        yield backend
    finally:
        await backend.env.close()

"""The README's Python API example runs, against the demo's stand-ins instead of Lean and a model."""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path

import pytest

from lean_env.types import Problem
from prover.config import load_settings
from prover.demo import HEADER, STATEMENTS, build_demo_generator, write_world
from prover.wiring import Backends
from search import SearchStatus

REPO_ROOT = Path(__file__).resolve().parents[1]


def _example() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [block for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "BestFirstSearch(" in block]
    assert len(blocks) == 1, "the README has one Python API example"
    return blocks[0]


def test_readme_example_proves_with_the_stand_ins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _example()
    definitions, _, usage = source.partition("\nproblem = ")
    compile("problem = " + usage, "README.md", "exec")  # the lines that run it are valid Python too
    assert "asyncio.run(prove(problem))" in usage and "await prove(problem)" in usage
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(definitions, "README.md", "exec"), namespace)

    world = write_world(tmp_path / "world")
    overrides = {
        "lean": {"repl": {"command": world.repl_argv(), "workers": 2}},
        "model": {"temperature": 1.0},
        "search": {"samples": 4, "expansions": 8, "timeout_s": 60},
    }
    settings = load_settings(None, {"HOME": str(tmp_path)}, overrides, cwd=tmp_path)
    backends = Backends(build_generator=functools.partial(build_demo_generator, str(world.table)))
    problem = Problem(name="mathd_algebra_1", header=HEADER, formal_statement=STATEMENTS["mathd_algebra_1"])
    prove = namespace["prove"]
    result = asyncio.run(prove(problem, settings, backends))  # type: ignore[operator]
    assert result.status is SearchStatus.PROVED and result.verified
    assert result.tactics == ("field_simp at h₀", "linarith")
    assert "SearchFinished" in capsys.readouterr().out  # events=print showed the search

"""The comparator judge against the real comparator, lean4export and landrun, on the tiny project.

Skips with the reason when Lean or any of the three tools is absent (`prover setup` builds them for a
project on `lean_env.comparator.COMPARATOR_TOOLCHAIN`), or when the tiny project's toolchain is not the
one the pinned tools were built for (the exporter reads only .olean files of its own Lean version).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lean_env.comparator import COMPARATOR_TOOLCHAIN, ComparatorJudge, ComparatorSettings, resolve_tools
from lean_env.types import Problem, VerifyStatus
from tests.contract.conftest import TinyProject

pytestmark = pytest.mark.lean

HEADER = ""
STATEMENT = "theorem comparator_contract (n : Nat) : n + 0 = n := by"


def _judge(project: Path) -> ComparatorJudge:
    from prover.config import load_settings
    from prover.lean_setup import find_tool, read_toolchain

    toolchain = read_toolchain(project)
    if toolchain != COMPARATOR_TOOLCHAIN:
        pytest.skip(f"the tiny project is on {toolchain}; the pinned comparator tools need {COMPARATOR_TOOLCHAIN}")
    settings = load_settings(environ=os.environ, overrides={"lean": {"project_dir": project}})
    assert settings.lean.data_dir is not None
    tools = resolve_tools(settings.lean.comparator, settings.lean.data_dir)
    if tools.missing():
        pytest.skip(f"comparator tools missing: {', '.join(tools.missing())}; run `prover setup`")
    lake = find_tool("lake")
    assert lake is not None
    return ComparatorJudge(ComparatorSettings(timeout_s=600), project, tools, lake=[str(lake)])


async def test_comparator_accepts_a_genuine_proof_and_rejects_sorry(tiny_project: TinyProject) -> None:
    judge = _judge(tiny_project.path)
    problem = Problem("comparator_contract", HEADER, STATEMENT)
    accepted = await judge.judge(problem, "by\n  simp")
    assert accepted.ok and accepted.judge == "comparator", accepted.reason
    rejected = await judge.judge(problem, "by\n  sorry")
    assert rejected.status is VerifyStatus.SORRY and not rejected.ok

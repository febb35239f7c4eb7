"""`prover serve` on real Lean: the service's prove and verify jobs through the real REPL pool.

Run with `pytest -m lean`; skips with the reason where `lake` or the REPL is absent. The model is a
fixed list of tactics (no GPU needed): what is under test is the service over real Lean, real HTTP
and a real SQLite job store, and that its verdicts are the REPL re-check's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from lean_env.errors import MissingDependency
from prover.client import ProverClient
from prover.config import load_settings
from prover.lean_setup import resolve_repl_command
from prover.wiring import Backends
from search.types import GenerationRequest, TacticCandidate
from tests.contract.conftest import TinyProject
from tests.service.live_server import serving

pytestmark = pytest.mark.lean

STATEMENT = "theorem service_add_comm (a b : Nat) : a + b = b + a := by"
"""Needs no import: `omega` is in Lean's core, and the tiny project has no Mathlib."""


class FixedTactics:
    """Proposes the same tactics for every state, best first."""

    def __init__(self, tactics: Sequence[str]) -> None:
        self.tactics = tactics

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        return [[TacticCandidate(text, -1.0 - rank, 2) for rank, text in enumerate(self.tactics)] for _ in requests]

    async def close(self) -> None:
        return None


def _generator(model: object) -> FixedTactics:
    return FixedTactics(["skip", "omega"])


def test_the_service_proves_and_verifies_on_real_lean(tiny_project: TinyProject, tmp_path: Path) -> None:
    overrides = {
        "home": str(tmp_path),
        "lean": {"backend": "repl", "project_dir": str(tiny_project.path), "repl": {"workers": 1}},
        "search": {"expansions": 10, "samples": 2, "timeout_s": 300, "tactic_timeout_s": 60},
        "service": {"database_url": f"sqlite:///{tmp_path / 'jobs.sqlite'}", "workers": 1, "poll_s": 0.05},
    }
    settings = load_settings(environ=os.environ, overrides=overrides)
    try:
        resolve_repl_command(settings.lean)  # only to skip cleanly where the REPL is not built
    except MissingDependency as error:
        pytest.skip(f"{error.what} is not available: {error.how}")
    with serving(settings, Backends(build_generator=_generator)) as server, ProverClient(server.url) as client:
        job = client.wait(client.prove(STATEMENT, header="")["id"], timeout=600)
        assert job["state"] == "completed", job
        assert job["result"]["status"] == "proved" and "omega" in job["result"]["proof"]
        assert job["result"]["judge"] in {"repl", "comparator"}
        checked = client.verify(
            [
                {"statement": STATEMENT, "proof": "by\n  omega", "header": ""},
                {"statement": STATEMENT, "proof": "by\n  rfl", "header": ""},  # Lean refuses it
            ],
            wait=True,
        )
        items = sorted(checked["result"]["items"], key=lambda item: item["index"])
        assert items[0]["status"] == "valid" and items[1]["status"] != "valid"
        assert checked["result"]["all_valid"] is False

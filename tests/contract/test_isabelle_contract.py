"""The Isabelle contract suite: the checker's behaviour against a real `isabelle server` (HOL session).

Skips with the reason when `isabelle` is not on PATH. Run with `pytest -m isabelle`.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lean_env.isabelle.checker import IsabelleChecker, IsabelleConfig
from lean_env.types import VerifyStatus

pytestmark = pytest.mark.isabelle

GOOD = 'theory Good imports Main begin\nlemma "(2::nat) + 2 = 4" by simp\nend\n'
BAD = 'theory Bad imports Main begin\nlemma "(2::nat) + 2 = 5" by simp\nend\n'
SORRY = 'theory Cheat imports Main begin\nlemma "(2::nat) + 2 = 5" sorry\nend\n'


@pytest.fixture(scope="module")
def isabelle() -> Path:
    found = shutil.which("isabelle")
    if found is None:
        pytest.skip("isabelle is not on PATH; install it with `prover setup --isabelle` to run the isabelle suite")
    return Path(found)


@pytest.fixture
async def checker(isabelle: Path, tmp_path: Path) -> AsyncIterator[IsabelleChecker]:
    config = IsabelleConfig(isabelle_path=isabelle, server_name="prover-contract", pool_size=1, work_dir=tmp_path)
    async with IsabelleChecker(config) as started:
        yield started


async def test_real_server_accepts_a_proof_and_rejects_a_wrong_one(checker: IsabelleChecker) -> None:
    good = await checker.check_theory(GOOD, name_hint="good", timeout=300)
    bad = await checker.check_theory(BAD, name_hint="bad", timeout=300)
    assert good.ok, good.errors
    assert not bad.ok and bad.errors


async def test_real_server_sorry_is_refused_by_us(checker: IsabelleChecker) -> None:
    raw = await checker.check_theory(SORRY, name_hint="cheat", timeout=300)
    verdict = await checker.verify_theory(SORRY, timeout=300)
    assert raw.ok  # interactive mode: Isabelle itself raises no error for sorry
    assert verdict.status is VerifyStatus.SORRY


async def test_real_server_timeout_cancels_and_the_session_stays_usable(checker: IsabelleChecker) -> None:
    looping = "theory Loop imports Main begin\nML \\<open>fun spin () = spin () in spin () end\\<close>\nend\n"
    timed = await checker.check_theory(looping, name_hint="loop", timeout=5)
    after = await checker.check_theory(GOOD, name_hint="good", timeout=300)
    assert timed.timed_out
    assert after.ok, after.errors

"""`IsabelleChecker` over the stand-in: session reuse, one file per check, purge, timeouts, the sorry judge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lean_env.isabelle.checker import (
    IsabelleChecker,
    IsabelleConfig,
    find_proof_holes,
    mask_isabelle,
    rename_theory,
)
from lean_env.types import VerifyStatus
from tests.stand_ins.isabelle_server import IsabelleStandIn, ProblemScript, Rule, Script, Step, proof_steps

THEORY = """theory Draft
  imports Complex_Main
begin

theorem mathd_algebra_10:
  fixes x :: real
  assumes h0: "x = 2"
  shows "x + 1 = 3"
proof -
  have h1: "x + 1 = 2 + 1" using h0 by simp
  show ?thesis using h1 by {closer}
qed

end
"""

SCRIPT = Script(
    rules=[Rule("HANG", outcome="hang"), Rule("UNFINISHED", outcome="unfinished")],
    problems=[
        ProblemScript(
            "mathd_algebra_10",
            steps=[Step("simp", claim="x + 1 = 2 + 1"), Step("linarith")],
            sledgehammer={"x + 1 = 2 + 1": "simp"},
        )
    ],
)


@pytest.fixture
async def server() -> AsyncIterator[IsabelleStandIn]:
    async with IsabelleStandIn(SCRIPT) as stand_in:
        yield stand_in


def _config(server: IsabelleStandIn, tmp_path: Path, **extra: object) -> IsabelleConfig:
    return IsabelleConfig(port=server.port, password=server.password, work_dir=tmp_path, **extra)  # type: ignore[arg-type]


async def test_gap_closers_decide_the_verdict_and_sessions_are_reused(server: IsabelleStandIn, tmp_path: Path) -> None:
    async with IsabelleChecker(_config(server, tmp_path, pool_size=2)) as checker:
        good = await checker.check_theory(THEORY.format(closer="linarith"), name_hint="mathd_algebra_10", timeout=5)
        bad = await checker.check_theory(THEORY.format(closer="auto"), name_hint="mathd_algebra_10", timeout=5)
        again = await checker.check_theory(THEORY.format(closer="linarith"), name_hint="mathd_algebra_10", timeout=5)
    assert good.ok and again.ok and not good.errors
    assert not bad.ok and "Failed to apply initial proof method" in bad.errors[0]
    assert server.sessions_started == 2  # three checks, the two sessions started once
    # One fresh theory file per check, named like its header, purged after, removed from the work dir.
    assert len(set(server.checked)) == 3 and all(n.startswith("mathd_algebra_10_") for n in server.checked)
    assert server.purged == server.checked
    assert not list(tmp_path.glob("*.thy"))


async def test_the_theory_is_renamed_to_match_its_file(server: IsabelleStandIn, tmp_path: Path) -> None:
    async with IsabelleChecker(_config(server, tmp_path, pool_size=1)) as checker:
        check = await checker.check_theory('(* theory Fake *) theory "Odd" imports Main begin end', name_hint="x y")
    assert check.ok, check.errors
    assert check.theory_name.startswith("x_y_")


async def test_timeout_cancels_the_check_and_the_session_stays_usable(server: IsabelleStandIn, tmp_path: Path) -> None:
    async with IsabelleChecker(_config(server, tmp_path, pool_size=1)) as checker:
        hung = await checker.check_theory(THEORY.format(closer="linarith (* HANG *)"), name_hint="h", timeout=0.3)
        after = await checker.check_theory(THEORY.format(closer="linarith"), name_hint="h", timeout=5)
    assert hung.timed_out and not hung.ok and len(server.cancelled) == 1
    assert after.ok
    assert server.purged == server.checked  # purged after the timeout too


async def test_unfinished_node_is_not_ok_even_when_the_server_says_ok(server: IsabelleStandIn, tmp_path: Path) -> None:
    async with IsabelleChecker(_config(server, tmp_path, pool_size=1)) as checker:
        check = await checker.check_theory(THEORY.format(closer="linarith (* UNFINISHED *)"), name_hint="u")
    assert not check.ok and not check.timed_out


async def test_pool_runs_checks_concurrently_up_to_its_size(tmp_path: Path) -> None:
    slow = Script(rules=[Rule("SLOW", outcome="ok", delay_s=0.2)])
    async with IsabelleStandIn(slow) as server:
        async with IsabelleChecker(_config(server, tmp_path, pool_size=3)) as checker:
            text = "theory A imports Main begin (* SLOW *) end"
            results = await asyncio.gather(*(checker.check_theory(text, name_hint="c") for _ in range(6)))
        assert all(r.ok for r in results)
        assert server.max_running == 3 and server.sessions_started == 3


async def test_verify_refuses_sorry_and_oops_but_not_in_comments(server: IsabelleStandIn, tmp_path: Path) -> None:
    async with IsabelleChecker(_config(server, tmp_path, pool_size=1)) as checker:
        cheat = await checker.verify_theory(THEORY.format(closer="linarith").replace("using h0 by simp", "sorry"))
        commented = await checker.verify_theory(THEORY.format(closer="linarith (* no sorry here *)"))
        rejected = await checker.verify_theory(THEORY.format(closer="auto"))
        hung = await checker.verify_theory(THEORY.format(closer="linarith (* HANG *)"), timeout=0.2)
    assert cheat.status is VerifyStatus.SORRY and cheat.judge == "isabelle"
    assert commented.ok and commented.judge == "isabelle"
    assert rejected.status is VerifyStatus.LEAN_ERROR
    assert hung.status is VerifyStatus.TIMEOUT
    assert len(server.checked) == 3  # the sorry text was never sent


async def test_dropped_connection_is_reported_and_the_slot_reconnects(tmp_path: Path) -> None:
    async with IsabelleStandIn(Script(rules=[Rule("DROP", outcome="drop")])) as server:
        async with IsabelleChecker(_config(server, tmp_path, pool_size=1)) as checker:
            lost = await checker.verify_theory("theory A imports Main begin (* DROP *) end")
            fine = await checker.check_theory("theory A imports Main begin end", name_hint="a")
        assert lost.status is VerifyStatus.BACKEND_ERROR
        assert fine.ok and server.sessions_started == 1  # the session outlived the connection


def test_masker_hides_comments_strings_and_cartouches() -> None:
    text = 'lemma "sorry" (* oops (* nested *) sorry *) \\<open>sorry\\<close> ‹oops› by simp'
    masked = mask_isabelle(text)
    assert len(masked) == len(text) and "sorry" not in masked and "oops" not in masked
    assert find_proof_holes(text) == ()
    assert find_proof_holes("have x sorry\n  oops") == ("sorry", "oops")
    assert find_proof_holes("lemma my_sorry_lemma: True by simp") == ()


def test_rename_theory_needs_a_header() -> None:
    assert rename_theory("theory Foo imports Main begin end", "Bar").startswith("theory Bar imports")
    with pytest.raises(ValueError, match="no `theory NAME"):
        rename_theory("lemma x: True by simp", "Bar")


def test_stand_in_reads_steps_with_their_claims() -> None:
    steps = proof_steps(THEORY.format(closer="(simp add: h1)"))
    assert [(claim, method) for claim, method, _ in steps] == [
        ("x + 1 = 2 + 1", "simp"),
        ("", "(simp add: h1)"),  # `show ?thesis` quotes no claim
    ]


async def test_stand_in_sledgehammer_suggests_the_scripted_method(server: IsabelleStandIn, tmp_path: Path) -> None:
    text = THEORY.format(closer="linarith").replace("using h0 by simp", "sledgehammer")
    async with IsabelleChecker(_config(server, tmp_path, pool_size=1)) as checker:
        check = await checker.check_theory(text, name_hint="s")
    assert not check.ok and "Try this: by simp (0.1 ms)" in check.messages

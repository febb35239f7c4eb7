"""The cheating corpus, every case through the layer that must stop it, and the genuine proofs through all of them."""

from __future__ import annotations

from collections import Counter

import pytest

from lean_env.guard import check_proof_text, check_statement_text, check_tactic_text
from lean_env.source_policy import check_header
from lean_env.types import LeanMessage, Severity, Theorem, VerifyStatus
from lean_env.verification import build_check_file, judge, precheck
from tests.lean_env.cheating_corpus import (
    CATEGORIES,
    CHEATS,
    GENUINE_PROOFS,
    GENUINE_STATEMENTS,
    HEADER,
    STATEMENT,
    Cheat,
)

THEOREM = Theorem(name="t", header=HEADER, formal_statement=STATEMENT)
_CHECKS = {"proof": check_proof_text, "tactic": check_tactic_text, "statement": check_statement_text}


def test_the_corpus_covers_every_class_with_at_least_120_cheats_and_25_genuine_proofs() -> None:
    assert len(CHEATS) >= 120
    assert len(GENUINE_PROOFS) >= 25
    counts = Counter(cheat.category for cheat in CHEATS)
    assert set(counts) == set(CATEGORIES), "every cheat has a class, and every class has cheats"
    assert min(counts.values()) >= 5, counts
    assert len({cheat.name for cheat in CHEATS}) == len(CHEATS), "names identify cases"
    assert {cheat.layer for cheat in CHEATS} == {"guard", "policy", "judge"}


def _refusal(cheat: Cheat) -> str | None:
    if cheat.layer == "guard":
        return _CHECKS[cheat.kind](cheat.text)
    if cheat.layer == "policy":
        return check_header(cheat.text)
    text = cheat.checked_text if cheat.checked_text is not None else build_check_file(THEOREM, cheat.text)
    verdict = judge(THEOREM, text, list(cheat.messages))
    assert verdict.status is cheat.expect, verdict.reason
    return None if verdict.ok else verdict.reason


@pytest.mark.parametrize("cheat", CHEATS, ids=[f"{cheat.category}: {cheat.name}" for cheat in CHEATS])
def test_every_cheat_is_stopped_by_its_layer_for_its_reason(cheat: Cheat) -> None:
    reason = _refusal(cheat)
    assert reason is not None, f"{cheat.name} got through the {cheat.layer}"
    assert cheat.mentions in reason, reason


@pytest.mark.parametrize(
    "cheat", [c for c in CHEATS if c.kind == "header"], ids=[c.name for c in CHEATS if c.kind == "header"]
)
def test_a_header_cheat_is_refused_before_the_statement_is_even_read(cheat: Cheat) -> None:
    from lean_env.source_policy import enforce_policy

    reason = enforce_policy(Theorem(name="t", header=cheat.text, formal_statement=STATEMENT))
    assert reason is not None and cheat.mentions in reason


@pytest.mark.parametrize("name,proof", GENUINE_PROOFS, ids=[name for name, _ in GENUINE_PROOFS])
def test_a_genuine_proof_passes_every_layer(name: str, proof: str) -> None:
    theorem = Theorem(name="t", header=HEADER, formal_statement=GENUINE_STATEMENTS.get(name, STATEMENT))
    assert check_proof_text(proof) is None
    assert precheck(theorem, proof) is None
    report = LeanMessage(Severity.INFO, "'t' depends on axioms: [propext, Classical.choice, Quot.sound]", line=9)
    verdict = judge(theorem, build_check_file(theorem, proof), [report])
    assert verdict.status is VerifyStatus.VALID, verdict.reason


def test_the_genuine_statements_pass_the_statement_guard_and_name_real_cases() -> None:
    names = {name for name, _ in GENUINE_PROOFS}
    assert set(GENUINE_STATEMENTS) <= names
    assert all(check_statement_text(statement) is None for statement in GENUINE_STATEMENTS.values())

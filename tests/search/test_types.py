"""Search vocabulary: config validation, result invariants, and the lean_env values the search keys on."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_env.lean_syntax import LEAN
from lean_env.types import Problem, ProofState, VerifyResult, VerifyStatus
from search import (
    GenerationRequest,
    PriorityScheme,
    RejectedProof,
    SearchConfig,
    SearchResult,
    SearchStats,
    SearchStatus,
    TacticCandidate,
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_expansions", 0),
        ("max_expansions", 2.5),
        ("num_samples", 0),
        ("num_samples", "32"),
        ("max_concurrent_tactics", 0),
        ("wall_clock_s", 0.0),
        ("wall_clock_s", math.nan),
        ("tactic_timeout_s", -1.0),
        ("verify_timeout_s", 0),
        ("priority", "beam"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"SearchConfig\.{field}\b"):
        SearchConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults_follow_the_llemma_runs_and_accept_scheme_names() -> None:
    default = SearchConfig()
    assert (default.max_expansions, default.num_samples, default.wall_clock_s) == (100, 32, 600.0)
    assert default.priority is PriorityScheme.LLEMMA
    assert default.tactic_timeout_s != default.wall_clock_s  # separate settings
    assert SearchConfig(priority="reprover").priority is PriorityScheme.REPROVER  # type: ignore[arg-type]


def test_generation_request_rejects_zero_samples() -> None:
    with pytest.raises(ValueError, match="num_samples"):
        GenerationRequest(state=ProofState.from_pp("⊢ True"), num_samples=0)


def test_candidate_scores() -> None:
    candidate = TacticCandidate("simp", logprob=-6.0, num_tokens=4)
    assert candidate.mean_logprob == -1.5
    assert PriorityScheme.LLEMMA.score(candidate) == -1.5
    assert PriorityScheme.REPROVER.score(candidate) == -6.0
    # A zero-token candidate must not divide by zero.
    assert TacticCandidate("x", logprob=-2.0, num_tokens=0).mean_logprob == -2.0
    assert PriorityScheme.LLEMMA.score(TacticCandidate("x", logprob=-2.0, num_tokens=0)) == -2.0


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(
        st.builds(
            TacticCandidate,
            text=st.just("t"),
            logprob=st.floats(min_value=-1e6, max_value=0.0),
            num_tokens=st.integers(min_value=-2, max_value=500),
        ),
        max_size=40,
    )
)
def test_scoring_an_expansion_at_once_is_scoring_each_candidate(candidates: list[TacticCandidate]) -> None:
    # The search scores an expansion's candidates in one call; it must be the per-candidate rule.
    assert PriorityScheme.LLEMMA.scores(candidates) == [c.mean_logprob for c in candidates]
    assert PriorityScheme.REPROVER.scores(candidates) == [c.logprob for c in candidates]
    for scheme in PriorityScheme:
        assert scheme.scores(candidates) == [scheme.score(c) for c in candidates]


def _verify(status: VerifyStatus = VerifyStatus.SORRY) -> VerifyResult:
    return VerifyResult(status, reason="declaration uses 'sorry'")


def test_proved_result_requires_a_verified_proof() -> None:
    with pytest.raises(ValueError, match="PROVED"):
        SearchResult("t", SearchStatus.PROVED, "by\n  simp", ("simp",), False, None, SearchStats())
    with pytest.raises(ValueError, match="PROVED"):
        SearchResult("t", SearchStatus.PROVED, None, (), True, None, SearchStats())


@pytest.mark.parametrize("status", [s for s in SearchStatus if s is not SearchStatus.PROVED])
def test_only_a_proved_result_carries_a_proof(status: SearchStatus) -> None:
    with pytest.raises(ValueError, match="proof"):
        SearchResult("t", status, "by\n  simp", ("simp",), False, "why", SearchStats())
    result = SearchResult("t", status, None, (), False, "why", SearchStats())
    assert result.to_dict()["proved"] is False


def test_result_record_is_json_ready() -> None:
    stats = SearchStats(expansions=3, nodes=4, edges=7, tactics_tried=7, errors_by_kind={"lean_error": 2})
    result = SearchResult(
        "mathd_algebra_1",
        SearchStatus.PROVED,
        "by\n  norm_num",
        ("norm_num",),
        True,
        None,
        stats,
        rejected_proofs=(RejectedProof("by\n  sorry", _verify()),),
    )
    record = json.loads(json.dumps(result.to_dict()))
    assert record["name"] == "mathd_algebra_1"
    assert record["status"] == "proved" and record["proved"] is True and record["verified"] is True
    assert record["tactics"] == ["norm_num"]
    assert record["stats"]["errors_by_kind"] == {"lean_error": 2}
    assert record["stats"]["expansions"] == 3
    assert record["rejected_proofs"] == [
        {"proof": "by\n  sorry", "status": "sorry", "reason": "declaration uses 'sorry'", "judge": "repl"}
    ]


def test_proof_state_equality_is_the_text_only() -> None:
    a = ProofState.from_pp("x : ℕ\n⊢ x = x", handle=1)
    b = ProofState.from_pp("  x : ℕ\n⊢ x = x\n", handle=object())
    c = ProofState.from_goals(["x : ℕ\n⊢ x = x"], handle=7)
    assert a == b == c
    assert hash(a) == hash(b) == hash(c)
    assert len({a: 1, b: 2, c: 3}) == 1
    assert ProofState.from_pp("x : ℕ\n⊢ x = x + 0") != a
    two = ProofState.from_goals(["⊢ p", "⊢ q"])
    assert two.num_goals == 2 and two == ProofState.from_pp("⊢ p\n\n⊢ q")


_statement_text = st.text(
    # No `:`, brackets, comment or string delimiters: the statement's own `:=` must be the first one.
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r:()[]{}⦃⦄⟨⟩⟦⟧⦅⦆‹›-/\"'«»"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() and not s.rstrip().endswith("by"))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    body=_statement_text,
    gap=st.sampled_from([" ", "  ", "\n  ", "\t"]),
    by_gap=st.sampled_from([" by", " by ", "\n  by", "", " by\n"]),
    header=st.sampled_from(["", "import Mathlib\nopen Real\n\n"]),
)
def test_the_checked_file_keeps_the_statement_byte_identical(body: str, gap: str, by_gap: str, header: str) -> None:
    formal = f"theorem t{gap}{body}{gap}:={by_gap}"
    problem = Problem(name="t", header=header, formal_statement=formal)
    text = LEAN.proof_file(problem, LEAN.render_tactics(["simp"]))
    statement = f"theorem t{gap}{body}".rstrip()
    assert text == f"{header}{statement} := by\n  simp\n"

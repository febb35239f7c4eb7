"""The source policy: what a header may hold, the size limits, and how an operator widens them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from lean_env.source_policy import DEFAULT_POLICY, SourcePolicy, check_header, check_sizes, enforce_policy
from lean_env.types import Language, Problem
from tests.lean_env.cheating_corpus import HEADER, STATEMENT
from tests.shared_data import SHARED_DATA, needs_shared, require_shared


@pytest.mark.parametrize(
    "header",
    [
        "",
        HEADER,
        "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n",
        "import MiniF2F.Minif2fImport\n\nopen BigOperators\n\nopen Nat \n\nopen Real \n\nopen Rat\n\n",
        "/-! Module doc mentioning axiom and #eval -/\nimport Mathlib.Tactic.Ring -- a comment\nopen scoped Nat\n",
        "import Mathlib\nopen Nat (succ_le_iff) hiding add_comm\nopen Nat renaming add_comm → addComm\nopen Real in\n",
        "import Mathlib Aesop\nset_option maxRecDepth 1000 in\n",
    ],
)
def test_headers_of_imports_opens_and_allowed_options_pass(header: str) -> None:
    assert check_header(header) is None


@pytest.mark.parametrize(
    ("header", "line", "fragment"),
    [
        (HEADER + "theorem helper : 1 = 1 := rfl\n", 7, "starts with `theorem`"),
        ("import Mathlib\n\n\ndef x := 1\n", 4, "`def x := 1`"),
        ("import Mathlib\nset_option pp.all true\n", 2, "`pp.all`"),
        ("import Mathlib\nset_option maxHeartbeats true_ish\n", 2, "not a number or a Boolean"),
        ("import Mathlib\nopen Lean\n", 2, "metaprogramming"),
        ("import Mathlib\nopen Nat hiding sorryAx\n", 2, "sorryAx"),
        ("import Mathlib\nopen private Nat\n", 2, "found `private`"),
        ("import Mathlib\nopen Nat\naxiom x : False\n", 3, "`axiom x : False`"),
        ("import Mathlib\n@[simp] lemma x : 1 = 1 := rfl\n", 2, "`@[`"),
        ("public import Mathlib\n", 1, "`public`"),
        ('import Mathlib\nelab "x" : tactic => pure ()\n', 2, "`elab`"),
    ],
)
def test_anything_else_is_refused_naming_its_line(header: str, line: int, fragment: str) -> None:
    reason = check_header(header)
    assert reason is not None and reason.startswith(f"the header's line {line} (`")
    assert fragment in reason, reason


def test_the_refused_line_is_quoted_and_long_lines_are_shortened() -> None:
    reason = check_header("import Mathlib\naxiom " + "x" * 200 + " : False\n") or ""
    assert "(`axiom xxx" in reason and "...`)" in reason and len(reason) < 300


def test_imports_match_names_and_prefix_patterns_only() -> None:
    assert DEFAULT_POLICY.allows_import("Mathlib") and DEFAULT_POLICY.allows_import("Mathlib.Tactic.Ring")
    assert not DEFAULT_POLICY.allows_import("MathlibEvil") and not DEFAULT_POLICY.allows_import("Lean")
    assert not DEFAULT_POLICY.allows_import("MiniF2F.Test")
    with pytest.raises(ValidationError, match="allowed_imports"):
        SourcePolicy(allowed_imports=("*",))
    with pytest.raises(ValidationError, match="allowed_imports"):
        SourcePolicy(allowed_imports=("Math*",))


def test_an_operator_widens_the_policy_in_settings() -> None:
    header = "import Lean\nset_option autoImplicit true\n"
    assert check_header(header) is not None
    widened = SourcePolicy(allowed_imports=("Lean",), allowed_options=("autoImplicit",))
    assert check_header(header, widened) is None
    with pytest.raises(ValidationError):
        SourcePolicy(allowed_import=("Lean",))  # type: ignore[call-arg]  # extra fields are refused
    with pytest.raises(ValidationError):
        DEFAULT_POLICY.max_proof_bytes = 1  # type: ignore[misc]  # frozen


def test_the_lean_settings_carry_the_policy() -> None:
    from prover.config import LeanSettings

    settings = LeanSettings.model_validate({"policy": {"allowed_imports": ["Mathlib", "Project.*"]}})
    assert settings.policy.allows_import("Project.Helpers")
    assert LeanSettings().policy == DEFAULT_POLICY


def test_sizes_are_checked_in_bytes_with_the_setting_named() -> None:
    policy = SourcePolicy(max_statement_bytes=10, max_header_bytes=10, max_proof_bytes=10)
    assert check_sizes(policy, statement="x" * 10, header="y" * 10, proof="z" * 10) is None
    assert "the statement is 11 bytes long; the limit is 10 bytes" in (check_sizes(policy, statement="x" * 11) or "")
    # Five characters, fifteen bytes: the limit is on what goes over the wire.
    assert "15 bytes" in (check_sizes(policy, proof="ℕℕℕℕℕ") or "")
    assert "lean.policy.max_header_bytes" in (check_header("-- " * 10, policy) or "")


def test_enforce_policy_checks_sizes_header_and_statement() -> None:
    assert enforce_policy(Problem(name="t", header=HEADER, formal_statement=STATEMENT)) is None
    bad_header = Problem(name="t", header=HEADER + "#eval 1\n", formal_statement=STATEMENT)
    assert "line 7" in (enforce_policy(bad_header) or "")
    bad_statement = Problem(name="t", header=HEADER, formal_statement="theorem t : (sorry : Prop) := by")
    assert "sorry" in (enforce_policy(bad_statement) or "")
    small = SourcePolicy(max_statement_bytes=20)
    assert "bytes long" in (enforce_policy(Problem(name="t", header="", formal_statement=STATEMENT), small) or "")
    isabelle = Problem(name="t", header="theory T imports Main begin", formal_statement="x", language=Language.ISABELLE)
    assert enforce_policy(isabelle) is None


@needs_shared(SHARED_DATA / "minif2f_lean4.jsonl")
@pytest.mark.parametrize(
    "file_name", ["minif2f_lean4.jsonl", "minif2f_lean4_llemma.jsonl", "minif2f_lean4_deepseek.jsonl"]
)
def test_the_defaults_fit_every_minif2f_problem_with_room(file_name: str) -> None:
    """Every header passes; the largest statement and header are far below the limits (measured: 679 and 98 bytes)."""
    records = [json.loads(line) for line in require_shared(SHARED_DATA / file_name).read_text("utf-8").splitlines()]
    assert len(records) == 488
    assert [record["name"] for record in records if check_header(record["header"]) is not None] == []
    largest_statement = max(len(record["formal_statement"].encode()) for record in records)
    largest_header = max(len(record["header"].encode()) for record in records)
    assert largest_statement * 10 < DEFAULT_POLICY.max_statement_bytes
    assert largest_header * 10 < DEFAULT_POLICY.max_header_bytes
    assert all(enforce_policy(Problem(r["name"], r["header"], r["formal_statement"])) is None for r in records)

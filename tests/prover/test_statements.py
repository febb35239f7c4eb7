"""Statements given by users: parsed into Theorems, or rejected with a message saying what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from prover.statements import MINIF2F_HEADER, StatementError, theorem_from_file, theorem_from_statement
from tests.shared_data import MINIF2F_JSONL, require_shared


def test_statement_keeps_text_and_name() -> None:
    theorem = theorem_from_statement("theorem add_zero' (n : ℕ) : n + 0 = n := by")
    assert theorem.name == "add_zero'"
    assert theorem.formal_statement == "theorem add_zero' (n : ℕ) : n + 0 = n := by"
    assert theorem.header == MINIF2F_HEADER


def test_statement_without_by_gets_by() -> None:
    theorem = theorem_from_statement("theorem t (a b : ℕ) (h : a = b) : b = a :=", header="")
    assert theorem.formal_statement.endswith(":= by")


def test_walrus_inside_binders_is_not_the_end() -> None:
    theorem = theorem_from_statement("theorem t (f : ℕ → ℕ := fun x => x) : f 0 = 0 := by", header="")
    assert theorem.formal_statement == "theorem t (f : ℕ → ℕ := fun x => x) : f 0 = 0 := by"


@pytest.mark.parametrize(
    ("statement", "complaint"),
    [
        ("", "empty"),
        ("example : 1 = 1 := by", "must start with `theorem <name>`"),
        ("theorem t : 1 = 1", "no `:=`"),
        ("theorem t : 1 = 1 := by simp", "nothing may follow"),
        ("theorem t : 1 = 1 := rfl", "nothing may follow"),
        ("theorem t := by", "no type"),
    ],
)
def test_malformed_statements_say_what_is_wrong(statement: str, complaint: str) -> None:
    with pytest.raises(StatementError, match="--statement") as info:
        theorem_from_statement(statement)
    assert complaint in str(info.value)


def test_theorem_from_file_takes_text_before_as_header(tmp_path: Path) -> None:
    source = tmp_path / "T.lean"
    source.write_text(
        "import Mathlib\n\nopen Nat\n\ntheorem first : 1 = 1 := by\n  rfl\n\n"
        "theorem second (n : ℕ)\n    (h : 0 < n) : n ≠ 0 := by\n  omega\n",
        encoding="utf-8",
    )
    theorem = theorem_from_file(source, "second")
    assert theorem.formal_statement == "theorem second (n : ℕ)\n    (h : 0 < n) : n ≠ 0 := by"
    assert theorem.header.startswith("import Mathlib")
    assert "theorem first" in theorem.header


def test_theorem_from_file_names_what_it_found(tmp_path: Path) -> None:
    source = tmp_path / "T.lean"
    source.write_text("theorem a : True := by\n  trivial\n", encoding="utf-8")
    with pytest.raises(StatementError, match=r"no theorem named 'b'.*declares: a"):
        theorem_from_file(source, "b")
    with pytest.raises(StatementError, match="does not exist"):
        theorem_from_file(tmp_path / "missing.lean", "a")


def test_every_minif2f_statement_round_trips_through_a_file(tmp_path: Path) -> None:
    """`header + formal_statement + " sorry"` is the upstream file; reading it back gives the same theorem."""
    import json

    path = require_shared(MINIF2F_JSONL)
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    assert len(records) == 488
    for record in records:
        source = tmp_path / f"{record['name']}.lean"
        source.write_text(record["header"] + record["formal_statement"] + " sorry", encoding="utf-8")
        theorem = theorem_from_file(source, record["name"])
        assert theorem.formal_statement == record["formal_statement"], record["name"]
        assert theorem.header == record["header"]

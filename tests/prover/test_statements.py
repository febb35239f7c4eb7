"""Statements given by users: parsed into Theorems, or rejected with a message saying what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_env.source_policy import SourcePolicy
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
        "import Mathlib\n\n-- a comment\nopen Nat\n\ntheorem second (n : ℕ)\n    (h : 0 < n) : n ≠ 0 := by\n  omega\n",
        encoding="utf-8",
    )
    theorem = theorem_from_file(source, "second")
    assert theorem.formal_statement == "theorem second (n : ℕ)\n    (h : 0 < n) : n ≠ 0 := by"
    assert theorem.header == "import Mathlib\n\n-- a comment\nopen Nat\n\n"


def test_theorem_from_file_refuses_declarations_before_the_theorem(tmp_path: Path) -> None:
    """The text before the theorem goes to Lean verbatim, so it is a header and obeys the header policy."""
    source = tmp_path / "T.lean"
    source.write_text(
        "import Mathlib\n\nopen Nat\n\naxiom cheat : False\n\ntheorem second (n : ℕ) : n = n := by\n  rfl\n",
        encoding="utf-8",
    )
    with pytest.raises(StatementError, match=r"theorem second: the header's line 5 \(`axiom cheat : False`\)"):
        theorem_from_file(source, "second")


def test_theorem_from_file_follows_a_widened_policy(tmp_path: Path) -> None:
    source = tmp_path / "T.lean"
    source.write_text("import TinyProject.Axioms\n\ntheorem t : 1 = 1 := by\n  rfl\n", encoding="utf-8")
    with pytest.raises(StatementError, match=r"imports `TinyProject\.Axioms`, which is not allowed"):
        theorem_from_file(source, "t")
    policy = SourcePolicy(allowed_imports=("TinyProject.*",))
    assert theorem_from_file(source, "t", policy).header == "import TinyProject.Axioms\n\n"


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ("import Mathlib\naxiom cheat : False\n", "line 2 (`axiom cheat : False`)"),
        ("import Mathlib\nset_option warn.sorry false\n", "`warn.sorry`"),
        ('import Mathlib\n#eval IO.println "hi"\n', "line 2"),
        ("import Mathlib\nmacro_rules | `(tactic| rfl) => `(tactic| sorry)\n", "macro_rules"),
        ("import Lean.Elab\n", "imports `Lean.Elab`"),
    ],
)
def test_a_header_outside_the_policy_is_refused(header: str, complaint: str) -> None:
    with pytest.raises(StatementError, match="--header") as info:
        theorem_from_statement("theorem t : 1 = 1 := by", header=header)
    assert complaint in str(info.value)


def test_sizes_are_checked_first_with_the_setting_to_change() -> None:
    huge = "theorem t : " + " + ".join(["1"] * 10_000) + " = 0 := by"
    with pytest.raises(StatementError, match=r"the statement is [\d,]+ bytes long; the limit is 16,384 bytes"):
        theorem_from_statement(huge)
    with pytest.raises(StatementError, match="max_header_bytes"):
        theorem_from_statement("theorem t : 1 = 1 := by", header="-- pad\n" * 2000)
    small = SourcePolicy(max_statement_bytes=10)
    with pytest.raises(StatementError, match="limit is 10 bytes"):
        theorem_from_statement("theorem t : 1 = 1 := by", policy=small)


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

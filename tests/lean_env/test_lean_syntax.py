"""`lean_env.lean_syntax`: the one Lean parser (signatures, declarations, headers) and proof rendering.

The last tests check it against frozen copies of the three parsers it replaced, on every miniF2F
statement: the new parser must agree with them wherever they were right.
"""

from __future__ import annotations

import json
import re

import pytest

from lean_env.guard import tokenize
from lean_env.lean_syntax import (
    BRACKETS,
    LEAN,
    declaration_name,
    declarations,
    mask,
    render_tactics,
    signature_end,
    split_declaration,
    split_header,
    statement_head,
)
from lean_env.types import Hole, Position, Problem, ProofState
from tests.shared_data import MINIF2F_JSONL, require_shared


def end_of(statement: str) -> str:
    """The text up to the `:=` `signature_end` finds (or the whole text when it finds none)."""
    end = signature_end(statement)
    return statement if end < 0 else statement[:end]


# --- where a signature ends -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "head"),
    [
        ("theorem t : 1 = 1 := by", "theorem t : 1 = 1 :="),
        ("theorem t -- a := b\n  : 1 = 1 := by", "theorem t -- a := b\n  : 1 = 1 :="),
        ("theorem t /- a := /- nested := -/ b -/ : 1 = 1 := by", "theorem t /- a := /- nested := -/ b -/ : 1 = 1 :="),
        ('theorem t : "a := b".length = 6 := by', 'theorem t : "a := b".length = 6 :='),
        ('theorem t : "say \\":= \\"" = "x" := by', 'theorem t : "say \\":= \\"" = "x" :='),
        ('theorem t : r#"a " := "#.length = 6 := by', 'theorem t : r#"a " := "#.length = 6 :='),
        ("theorem t : ':' ≠ '=' := by", "theorem t : ':' ≠ '=' :="),
        ("theorem t : («a:=b» : ℕ) = 1 := by", "theorem t : («a:=b» : ℕ) = 1 :="),
        ("theorem t (f : ℕ → ℕ := fun x => x) : f 0 = 0 := by", "theorem t (f : ℕ → ℕ := fun x => x) : f 0 = 0 :="),
        (
            "theorem t (n : ℕ := 3) (h : n = 3 := by rfl) : n = 3 := by",
            "theorem t (n : ℕ := 3) (h : n = 3 := by rfl) : n = 3 :=",
        ),
        ("theorem t' (x : ℕ) : x = x := by", "theorem t' (x : ℕ) : x = x :="),
    ],
)
def test_signature_ends_at_the_first_top_level_walrus(statement: str, head: str) -> None:
    assert end_of(statement) == head


@pytest.mark.parametrize(("opening", "closing"), sorted(BRACKETS.items()))
def test_every_bracket_kind_hides_a_walrus(opening: str, closing: str) -> None:
    statement = f"theorem t : P {opening}x := y{closing} := by"
    assert end_of(statement) == f"theorem t : P {opening}x := y{closing} :="


def test_a_signature_without_walrus_does_not_borrow_the_next_declarations() -> None:
    text = "theorem t : ∀ n : ℕ, n = n\n  | 0 => rfl\n  | n + 1 => rfl\n\ntheorem u : 1 = 1 := by\n  rfl\n"
    assert signature_end(text) == -1
    found = declarations(text)
    assert [(d.name, d.signature_end) for d in found] == [("t", -1), ("u", text.index(":= by") + 2)]


def test_mask_keeps_length_and_line_breaks() -> None:
    text = 'theorem t -- c\n /- b\n -/ : "s\\"" = \'c\' := by'
    masked = mask(text)
    assert len(masked) == len(text)
    assert [i for i, c in enumerate(masked) if c == "\n"] == [i for i, c in enumerate(text) if c == "\n"]
    assert "c" not in masked.split("\n")[0][9:] and '"' not in masked and "'" not in masked


# --- declarations ---------------------------------------------------------------------------------


def test_universe_parameters_are_not_part_of_the_name() -> None:
    statement = "theorem t.{u, v} (α : Sort u) (β : Sort v) : α = α := by"
    assert declaration_name(statement) == "t"
    assert end_of(statement) == "theorem t.{u, v} (α : Sort u) (β : Sort v) : α = α :="
    (found,) = declarations(statement)
    assert statement[found.name_end :].startswith(" (α")
    assert declaration_name("theorem Foo.bar_baz' : True := by") == "Foo.bar_baz'"
    assert declaration_name("theorem «my theorem» : True := by") == "«my theorem»"


def test_docstrings_attributes_and_modifiers_before_a_theorem() -> None:
    text = (
        "import Mathlib\n\n"
        "/-- The docstring says `theorem fake : False := sorry` and ends here. -/\n"
        "@[simp, norm_num]\n"
        "protected theorem real (n : ℕ) : n + 0 = n := by\n  simp\n"
    )
    (found,) = declarations(text)
    assert found.name == "real"
    header, name, statement, rest = split_declaration(text) or ("", "", "", "")
    assert name == "real"
    assert header.endswith("ends here. -/\n"), "the docstring stays in the header"
    assert statement == "@[simp, norm_num]\nprotected theorem real (n : ℕ) : n + 0 = n := by"
    assert rest == " by\n  simp\n"
    assert split_declaration(text, "fake") is None


def test_declarations_in_comments_and_strings_are_not_declarations() -> None:
    text = (
        "-- theorem a : True := trivial\n"
        "/- theorem b : True := trivial -/\n"
        'def s := "theorem c : True"\n'
        "lemma d : True := by\n"
    )
    assert [d.name for d in declarations(text)] == ["d"]


def test_statement_head_drops_the_walrus_and_by() -> None:
    assert statement_head("theorem t (h : x := 1) : x = 1 := by") == "theorem t (h : x := 1) : x = 1"
    assert statement_head("theorem t : x = 1 :=") == "theorem t : x = 1"
    assert statement_head("theorem t : x = 1") == "theorem t : x = 1"


def test_split_header_takes_the_import_open_and_set_option_lines() -> None:
    text = (
        "/- licence -/\nimport Mathlib\nimport Aesop -- search\n\n"
        "set_option maxHeartbeats 0\nopen Nat\n\ntheorem t : 1 = 1 := sorry\n"
    )
    header, body = split_header(text)
    assert header == "/- licence -/\nimport Mathlib\nimport Aesop -- search\n\nset_option maxHeartbeats 0\nopen Nat\n\n"
    assert body == "theorem t : 1 = 1 := sorry\n"
    # `open ... in` and `set_option ... in` bind to the command after them: they start the body.
    scoped = "import Mathlib\nopen Nat in\ntheorem t : 1 = 1 := sorry\n"
    assert split_header(scoped) == ("import Mathlib\n", "open Nat in\ntheorem t : 1 = 1 := sorry\n")
    assert split_header("theorem t : 1 = 1 := sorry") == ("", "theorem t : 1 = 1 := sorry")
    assert split_header('/- import X -/\ndef s := "import Y"\n') == ("", '/- import X -/\ndef s := "import Y"\n')


# --- rendering and splicing ---------------------------------------------------------------------------


def test_render_tactics_keeps_multi_line_tactics_relative_indentation() -> None:
    tactics = [
        "intro x",
        "calc a = b := by rfl\n  _ = c := by rfl",
        "\n    induction n with\n    | zero => simp\n    | succ k ih => omega   \n\n",
        "· constructor\n  · exact h\n  · exact h'",
    ]
    assert render_tactics(tactics) == (
        "by\n"
        "  intro x\n"
        "  calc a = b := by rfl\n"
        "    _ = c := by rfl\n"
        "  induction n with\n"
        "  | zero => simp\n"
        "  | succ k ih => omega\n"
        "  · constructor\n"
        "    · exact h\n"
        "    · exact h'"
    )
    assert LEAN.render_tactics(["simp"]) == "by\n  simp"
    with pytest.raises(ValueError):
        render_tactics([])


def test_proof_file_keeps_the_statement_byte_identical() -> None:
    problem = Problem(
        name="t", header="import Mathlib\n\n", formal_statement="theorem t (h : a := 1)\n    : a = 1 := by"
    )
    assert (
        LEAN.proof_file(problem, "by\n  simp")
        == "import Mathlib\n\ntheorem t (h : a := 1)\n    : a = 1 := by\n  simp\n"
    )


def hole(index: int, text: str, needle: str, occurrence: int = 0) -> Hole:
    """The hole at the `occurrence`-th `needle` of `text` (its `sorry`)."""
    starts = [m.start() for m in re.finditer(re.escape(needle), text)]
    at = starts[occurrence] + needle.index("sorry")
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1)
    return Hole(index, "⊢ x", ProofState.from_goals(["⊢ x"]), Position(line, column), Position(line, column + 5))


def test_splice_in_tactic_and_term_positions() -> None:
    text = (
        "theorem t (a b : ℕ) (h : a = b) : b = a ∧ a = a := by\n"
        "  have h2 : b = a := sorry\n"
        "  constructor\n"
        "  · sorry\n"
        "  · exact by sorry\n"
        "\n"
        "theorem u : 1 = 1 := sorry\n"
    )
    holes = [
        hole(0, text, ":= sorry"),
        hole(1, text, "· sorry"),
        hole(2, text, "by sorry"),
        hole(3, text, ":= sorry", 1),
    ]
    spliced = LEAN.splice(
        text,
        holes,
        [["exact h.symm"], ["calc b = a := h2\n  _ = a := rfl", "done"], ["rfl"], ["rfl"]],
    )
    assert spliced == (
        "theorem t (a b : ℕ) (h : a = b) : b = a ∧ a = a := by\n"
        "  have h2 : b = a := by\n"
        "    exact h.symm\n"
        "  constructor\n"
        "  · calc b = a := h2\n"
        "      _ = a := rfl\n"
        "    done\n"
        "  · exact by rfl\n"
        "\n"
        "theorem u : 1 = 1 := by\n"
        "  rfl\n"
    )


def test_splice_a_sorry_line_of_a_tactic_block() -> None:
    text = "theorem t : p ∧ q := by\n  constructor\n  sorry\n  exact hq\n"
    spliced = LEAN.splice(text, [hole(0, text, "  sorry")], [["apply foo", "exact hp"]])
    assert spliced == "theorem t : p ∧ q := by\n  constructor\n  apply foo\n  exact hp\n  exact hq\n"


def test_splice_refuses_mismatched_inputs() -> None:
    text = "theorem u : 1 = 1 := sorry\n"
    with pytest.raises(ValueError, match="2 proofs"):
        LEAN.splice(text, [hole(0, text, ":= sorry")], [["rfl"], ["rfl"]])
    with pytest.raises(ValueError, match="no tactics"):
        LEAN.splice(text, [hole(0, text, ":= sorry")], [[]])


# --- agreement with the parsers this module replaced, on every miniF2F statement -------------------------

_OLD_DECLARATION = re.compile(r"(?m)^[ \t]*(?:@\[[^\]]*\][ \t]*)?(?:theorem|lemma)[ \t]+(?P<name>[^\s(:{\[⦃]+)")
_OLD_OPENING = {"(": ")", "[": "]", "{": "}", "⦃": "⦄", "⟨": "⟩"}


def old_end_of_signature(text: str, start: int) -> int:
    """prover/statements.py's `_end_of_signature` before lean_syntax (no comments or strings)."""
    depth = 0
    index = start
    while index < len(text) - 1:
        char = text[index]
        if char in _OLD_OPENING:
            depth += 1
        elif char in _OLD_OPENING.values():
            depth = max(0, depth - 1)
        elif char == ":" and text[index + 1] == "=" and depth == 0:
            return index + 2
        index += 1
    return -1


def old_split_declaration(text: str, name: str | None = None) -> tuple[str, str, str, str] | None:
    """prover/statements.py's `split_declaration` before lean_syntax."""
    for match in _OLD_DECLARATION.finditer(text):
        if name is not None and match.group("name") != name:
            continue
        end = old_end_of_signature(text, match.end())
        if end < 0:
            return None
        return text[: match.start()], match.group("name"), text[match.start() : end] + " by", text[end:]
    return None


def old_file_text(header: str, statement: str, proof: str) -> str:
    """`Theorem.file_text` before lean_syntax."""
    without_by = re.sub(r":=\s*(by)?\s*$", "", statement.rstrip()).rstrip()
    return f"{header}{without_by} := {proof}\n"


def old_declaration_name(statement: str) -> str:
    """lean_env/verification.py's `declaration_name` before lean_syntax."""
    match = re.match(
        r"\s*(?:@\[[^\]]*\]\s*)?(?:private\s+|protected\s+)?(?:theorem|lemma|example)\s+([^\s(:{\[]+)", statement
    )
    assert match is not None
    return match.group(1)


def old_locate_theorem(source: str, full_name: str) -> tuple[str, str]:
    """lean_env/dojo.py's `locate_theorem` before lean_syntax (the guard's tokens)."""
    tokens = tokenize(source, check_characters=False)
    for index in range(len(tokens) - 1):
        keyword, name = tokens[index], tokens[index + 1]
        if keyword.kind != "ident" or keyword.name not in ("theorem", "lemma") or name.name != full_name:
            continue
        depth = 0
        for token in tokens[index + 2 :]:
            if token.text in "([{⦃⟨":
                depth += 1
            elif token.text in ")]}⦄⟩":
                depth = max(0, depth - 1)
            elif token.text == ":=" and depth == 0:
                return source[: keyword.start], source[keyword.start : token.start + 2].rstrip() + " by"
    raise AssertionError(f"old locate_theorem found no {full_name}")


def minif2f_records() -> list[dict[str, str]]:
    path = require_shared(MINIF2F_JSONL)
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    assert len(records) == 488
    return records


def test_the_new_parser_agrees_with_the_old_ones_on_every_minif2f_statement() -> None:
    from lean_env.dojo import locate_theorem

    for record in minif2f_records():
        header, statement, name = record["header"], record["formal_statement"], record["name"]
        source = header + statement + " sorry"
        assert split_declaration(source) == old_split_declaration(source), name
        assert split_declaration(source, name) == old_split_declaration(source, name), name
        problem = Problem(name=name, header=header, formal_statement=statement)
        assert LEAN.proof_file(problem, "by\n  simp") == old_file_text(header, statement, "by\n  simp"), name
        assert declaration_name(statement) == old_declaration_name(statement), name
        assert locate_theorem(source, name) == old_locate_theorem(source, name), name
        assert split_header(source) == (header, statement + " sorry"), name
        # And what every parser relies on: the signature of a dataset statement ends at its last `:=`.
        assert end_of(statement) == statement.removesuffix(" by"), name

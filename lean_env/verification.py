"""Sound whole-proof verification, shared by every backend.

A backend builds the check file with `build_check_file`, has Lean elaborate it in a fresh
environment, and hands the messages to `judge`. `judge` accepts only when:
- the text guard (`lean_env.guard`) let the proof through before it reached Lean;
- Lean reported no error;
- nothing used `sorry` (Lean's "declaration uses 'sorry'" warning, or `sorryAx` among the axioms);
- the declaration checked is the statement asked for, byte for byte after whitespace normalisation;
- `#print axioms` names nothing beyond `propext`, `Classical.choice`, `Quot.sound`, and Lean answered
  it exactly once for that declaration (a second answer can only be forged output).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lean_env import lean_syntax
from lean_env.guard import check_proof_text
from lean_env.lean_syntax import LEAN, statement_head
from lean_env.types import STANDARD_AXIOMS, LeanMessage, Problem, VerifyResult, VerifyStatus

# Lean's answer to `#print axioms n`: "'n' depends on axioms: [a, b]" or "'n' does not depend on any
# axioms". The name may itself contain `'`, hence the lazy match anchored on the text that follows.
_AXIOMS_REPORT = re.compile(
    r"'(?P<name>[^\n]*?)' (?:depends on axioms:\s*\[(?P<axioms>[^\]]*)\]|(?P<none>does not depend on any axioms))"
)
_SORRY_WARNING = re.compile(r"declaration uses ['`]sorry['`]")
_WHITESPACE = re.compile(r"\s+")


def declaration_name(theorem: Problem) -> str:
    """The name `#print axioms` must be asked about: the one in the statement, not the record's label."""
    try:
        return lean_syntax.declaration_name(theorem.formal_statement)
    except ValueError:
        raise ValueError(f"Theorem {theorem.name!r}: formal_statement does not start with `theorem <name>`") from None


def build_check_file(theorem: Problem, proof: str) -> str:
    """The text Lean re-checks: `LEAN.proof_file` (header, unchanged statement, proof) and `#print axioms`."""
    return LEAN.proof_file(theorem, proof) + f"\n#print axioms {declaration_name(theorem)}\n"


def normalize_statement(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def statement_unchanged(theorem: Problem, checked_text: str) -> bool:
    """Whether `checked_text` starts with the header and the statement exactly as asked for."""
    expected = normalize_statement(theorem.header + statement_head(theorem.formal_statement) + " :=")
    return normalize_statement(checked_text).startswith(expected)


def _same_declaration(printed: str, name: str) -> bool:
    """Whether Lean's printed (fully qualified) name is the declaration `name` (short or qualified)."""
    printed = printed.replace("«", "").replace("»", "")
    name = name.replace("«", "").replace("»", "")
    return printed == name or printed.endswith("." + name) or name.endswith("." + printed)


def axiom_reports(messages: Sequence[LeanMessage], name: str) -> list[tuple[str, ...]]:
    """Every answer to `#print axioms name` found in `messages`, in order (normally exactly one)."""
    reports: list[tuple[str, ...]] = []
    for message in messages:
        for found in _AXIOMS_REPORT.finditer(message.text):
            if not _same_declaration(found.group("name"), name):
                continue
            if found.group("none") is not None:
                reports.append(())
            else:
                reports.append(tuple(part.strip() for part in found.group("axioms").split(",") if part.strip()))
    return reports


def _proof_part(theorem: Problem, checked_text: str) -> str | None:
    """The proof inside a file made by `build_check_file`, or None when the file is laid out otherwise."""
    prefix = f"{theorem.header}{statement_head(theorem.formal_statement)} := "
    suffix = f"\n#print axioms {declaration_name(theorem)}\n"
    if not (checked_text.startswith(prefix) and checked_text.endswith(suffix)):
        return None
    return checked_text[len(prefix) : len(checked_text) - len(suffix)]


def precheck(theorem: Problem, proof: str) -> VerifyResult | None:
    """The text-level checks that run before Lean: a rejection, or None when Lean should check it."""
    problem = check_proof_text(proof)
    if problem is not None:
        return VerifyResult(VerifyStatus.GUARD_REJECTED, reason=problem, checked_text=LEAN.proof_file(theorem, proof))
    return None


def judge(
    theorem: Problem,
    checked_text: str,
    messages: Sequence[LeanMessage],
    seconds: float = 0.0,
    *,
    header_lines: int = 0,
) -> VerifyResult:
    """Turn Lean's messages about `checked_text` (from `build_check_file`) into a verdict.

    `header_lines`: when the header is a whole source file up to the theorem (LeanDojo's traced
    files, whose other theorems may be `sorry`), a "declaration uses 'sorry'" warning positioned on
    lines 1..header_lines belongs to those other declarations and is ignored; a proof that relies on
    one of them still fails, since `sorryAx` then shows in `#print axioms`. Errors count everywhere.
    Positions must then be the line numbers of `checked_text` itself.
    """
    texts = tuple(f"{m.severity.value}: {m.text}" for m in messages)

    def verdict(status: VerifyStatus, reason: str = "", axioms: tuple[str, ...] = ()) -> VerifyResult:
        return VerifyResult(
            status, reason=reason, messages=texts, axioms=axioms, checked_text=checked_text, seconds=seconds
        )

    if not statement_unchanged(theorem, checked_text):
        return verdict(VerifyStatus.STATEMENT_CHANGED, "the checked file does not state the theorem asked for")
    proof = _proof_part(theorem, checked_text)
    if proof is not None:
        # Defence in depth: a backend that skipped `precheck` still cannot get a guarded proof accepted.
        problem = check_proof_text(proof)
        if problem is not None:
            return verdict(VerifyStatus.GUARD_REJECTED, problem)
    errors = [m for m in messages if m.is_error]
    if errors:
        return verdict(VerifyStatus.LEAN_ERROR, f"Lean reported an error: {errors[0].text.strip()[:500]}")
    if any(_SORRY_WARNING.search(m.text) and not (0 < m.line <= header_lines) for m in messages):
        return verdict(VerifyStatus.SORRY, "the proof uses `sorry`")
    reports = axiom_reports(messages, declaration_name(theorem))
    if not reports:
        return verdict(VerifyStatus.LEAN_ERROR, "Lean did not answer `#print axioms`; the declaration may be missing")
    if len(reports) > 1:
        return verdict(
            VerifyStatus.LEAN_ERROR,
            f"`#print axioms` was answered {len(reports)} times; extra answers can only be forged output",
        )
    axioms = reports[0]
    if "sorryAx" in axioms:
        return verdict(VerifyStatus.SORRY, "the proof depends on `sorryAx`", axioms)
    extra = sorted(set(axioms) - STANDARD_AXIOMS)
    if extra:
        return verdict(
            VerifyStatus.NONSTANDARD_AXIOMS, f"the proof depends on non-standard axioms: {', '.join(extra)}", axioms
        )
    return verdict(VerifyStatus.VALID, axioms=axioms)

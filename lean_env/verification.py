"""Sound whole-proof verification, shared by every backend.

A backend builds the check file with `build_check_file`, has Lean elaborate it in a fresh
environment, and hands the messages to `judge`. `judge` accepts only when:
- the text guard (`lean_env.guard`) let the proof through before it reached Lean;
- Lean reported no error;
- nothing used `sorry` (Lean's "declaration uses 'sorry'" warning, or `sorryAx` among the axioms);
- the declaration checked is the statement asked for, byte for byte after whitespace normalisation;
- `#print axioms` names nothing beyond `propext`, `Classical.choice`, `Quot.sound`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lean_env.guard import check_proof_text
from lean_env.types import STANDARD_AXIOMS, LeanMessage, Theorem, VerifyResult, VerifyStatus

_AXIOMS_LIST = re.compile(r"depends on axioms:\s*\[(?P<axioms>[^\]]*)\]", re.DOTALL)
_NO_AXIOMS = re.compile(r"does not depend on any axioms")
_SORRY_WARNING = re.compile(r"declaration uses ['`]sorry['`]")
_WHITESPACE = re.compile(r"\s+")


def declaration_name(theorem: Theorem) -> str:
    """The name `#print axioms` must be asked about: the one in the statement, not the record's label."""
    match = re.match(r"\s*(?:@\[[^\]]*\]\s*)?(?:private\s+|protected\s+)?(?:theorem|lemma|example)\s+([^\s(:{\[]+)",
                     theorem.formal_statement)
    if match is None:
        raise ValueError(f"Theorem {theorem.name!r}: formal_statement does not start with `theorem <name>`")
    return match.group(1)


def build_check_file(theorem: Theorem, proof: str) -> str:
    """The text Lean re-checks: header, the unchanged statement, the proof, and `#print axioms`."""
    return theorem.file_text(proof) + f"\n#print axioms {declaration_name(theorem)}\n"


def normalize_statement(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def statement_unchanged(theorem: Theorem, checked_text: str) -> bool:
    """Whether `checked_text` starts with the header and the statement exactly as asked for."""
    expected = normalize_statement(theorem.header + theorem.statement_without_by + " :=")
    return normalize_statement(checked_text).startswith(expected)


def parse_axioms(messages: Sequence[LeanMessage], name: str) -> tuple[str, ...] | None:
    """The axioms `#print axioms name` reported, or None when no such message is present."""
    for message in messages:
        if name not in message.text and "axioms" not in message.text:
            continue
        if _NO_AXIOMS.search(message.text):
            return ()
        found = _AXIOMS_LIST.search(message.text)
        if found:
            return tuple(part.strip() for part in found.group("axioms").split(",") if part.strip())
    return None


def precheck(theorem: Theorem, proof: str) -> VerifyResult | None:
    """The text-level checks that run before Lean: a rejection, or None when Lean should check it."""
    problem = check_proof_text(proof)
    if problem is not None:
        return VerifyResult(VerifyStatus.GUARD_REJECTED, reason=problem, checked_text=theorem.file_text(proof))
    return None


def judge(
    theorem: Theorem, checked_text: str, messages: Sequence[LeanMessage], seconds: float = 0.0
) -> VerifyResult:
    """Turn Lean's messages about `checked_text` (from `build_check_file`) into a verdict."""
    texts = tuple(f"{m.severity.value}: {m.text}" for m in messages)

    def verdict(status: VerifyStatus, reason: str = "", axioms: tuple[str, ...] = ()) -> VerifyResult:
        return VerifyResult(status, reason=reason, messages=texts, axioms=axioms,
                            checked_text=checked_text, seconds=seconds)

    if not statement_unchanged(theorem, checked_text):
        return verdict(VerifyStatus.STATEMENT_CHANGED, "the checked file does not state the theorem asked for")
    errors = [m for m in messages if m.is_error]
    if errors:
        return verdict(VerifyStatus.LEAN_ERROR, f"Lean reported an error: {errors[0].text.strip()[:500]}")
    if any(_SORRY_WARNING.search(m.text) for m in messages):
        return verdict(VerifyStatus.SORRY, "the proof uses `sorry`")
    axioms = parse_axioms(messages, declaration_name(theorem))
    if axioms is None:
        return verdict(VerifyStatus.LEAN_ERROR, "Lean did not answer `#print axioms`; the declaration may be missing")
    if "sorryAx" in axioms:
        return verdict(VerifyStatus.SORRY, "the proof depends on `sorryAx`", axioms)
    extra = sorted(set(axioms) - STANDARD_AXIOMS)
    if extra:
        return verdict(VerifyStatus.NONSTANDARD_AXIOMS, f"the proof depends on non-standard axioms: {', '.join(extra)}",
                       axioms)
    return verdict(VerifyStatus.VALID, axioms=axioms)

"""Text-level guard: what must never reach Lean from a model's proof or a user's statement.

Runs before Lean sees anything, as a first line of defence; the whole-file check and
`#print axioms` are the second. Returns a reason string for a rejection, or None.
"""

from __future__ import annotations

import re

_FORBIDDEN_WORDS = re.compile(r"\b(sorry|admit|native_decide)\b")


def check_proof_text(proof: str) -> str | None:
    """Why `proof` (a tactic block or term after `:=`) must not be sent to Lean, or None if it may."""
    match = _FORBIDDEN_WORDS.search(proof)
    if match:
        return f"the proof uses `{match.group(1)}`"
    return None


def check_tactic_text(tactic: str) -> str | None:
    """Why one tactic must not be run in tactic mode, or None if it may."""
    return check_proof_text(tactic)


def check_statement_text(statement: str) -> str | None:
    """Why a user-submitted statement (`theorem name ... := by`) must not be accepted, or None."""
    return None

"""The search's de-duplication key for candidate text.

How a tactic sequence becomes proof text belongs to the backend (`LeanEnv.syntax.render_tactics`;
`lean_env.lean_syntax` for Lean), never to the search. `clean_tactic` is re-exported from
`lean_env.lean_syntax` only for callers that still import it from here (`prover/models`); new code
imports it from `lean_env.lean_syntax`.
"""

from __future__ import annotations

from lean_env.lean_syntax import clean_tactic

__all__ = ["clean_tactic", "normalize_tactic"]


def normalize_tactic(text: str) -> str:
    """The de-duplication key of a tactic: whitespace runs collapsed, ends stripped."""
    # Same result as substituting r"\s+" with one space and stripping (both use str.isspace), but
    # several times faster; it runs on every candidate of every expansion.
    return " ".join(text.split())

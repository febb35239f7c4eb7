"""The search's de-duplication key for candidate text.

How a tactic sequence becomes proof text belongs to the backend (`LeanEnv.syntax.render_tactics`;
`lean_env.lean_syntax` for Lean), never to the search.
"""

from __future__ import annotations


def normalize_tactic(text: str) -> str:
    """The de-duplication key of a tactic: whitespace runs collapsed, ends stripped."""
    # Same result as substituting r"\s+" with one space and stripping (both use str.isspace), but
    # several times faster; it runs on every candidate of every expansion.
    return " ".join(text.split())

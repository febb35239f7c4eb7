"""Turning a tactic sequence into the text of a Lean proof, and normalising candidate text."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

_INDENT = "  "


def normalize_tactic(text: str) -> str:
    """The de-duplication key of a tactic: whitespace runs collapsed, ends stripped."""
    # Same result as substituting r"\s+" with one space and stripping (both use str.isspace), but
    # several times faster; it runs on every candidate of every expansion.
    return " ".join(text.split())


def clean_tactic(text: str) -> str:
    """A candidate as it will be sent to Lean: trailing spaces and surrounding blank lines removed.

    Inner line structure is kept, since indentation is significant in Lean tactic blocks.
    """
    if text.isprintable() and text == text.strip():
        # The common case, one line with nothing to trim (every line break is non-printable).
        return text
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return textwrap.dedent("\n".join(lines))


def render_proof(tactics: Sequence[str]) -> str:
    """A `by` block that replays `tactics` in order, each indented one level.

    A multi-line tactic (a `calc`, a `·`-focused block, `induction ... with` arms) keeps its lines'
    indentation relative to its first line, so it parses in the block exactly as it did when it was
    run on its own in tactic mode.
    """
    if not tactics:
        raise ValueError("render_proof: a proof needs at least one tactic")
    body: list[str] = []
    for tactic in tactics:
        for line in clean_tactic(tactic).splitlines():
            body.append(_INDENT + line if line.strip() else "")
    return "by\n" + "\n".join(body)

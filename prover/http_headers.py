"""What our HTTP clients (the OpenAI-server backend, `prover.client`) read from an answer's headers."""

from __future__ import annotations

from typing import Any


def retry_after(response: Any) -> float | None:
    """The answer's `Retry-After` in seconds (never negative), or None if absent or not a number of seconds."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

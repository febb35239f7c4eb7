"""The data sets in ../shared/data that some tests read: skipped where absent, a failure in CI.

A test that reads them calls `shared_data_file(name)` (or `require_shared(path)`, or marks itself
with `needs_shared(path)`). On a developer's machine without the data the test is skipped, with the
path in the reason; with `CI=true` a missing file fails the test, so CI can never pass by skipping
the checks against the real data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MINIF2F_JSONL = SHARED_DATA / "minif2f_lean4.jsonl"


def on_ci() -> bool:
    """Whether the tests run on CI (`CI=true`), where shared data must be present."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_shared(path: Path) -> Path:
    """`path` if it exists; otherwise fail the test on CI and skip it elsewhere, naming the path."""
    if path.exists():
        return path
    message = f"{path} is absent (tests against the real data set need ../shared/data)"
    if on_ci():
        pytest.fail(message + "; with CI=true the shared data sets must be present")
    pytest.skip(message)


def shared_data_file(name: str) -> Path:
    """The file `name` of ../shared/data; see `require_shared`."""
    return require_shared(SHARED_DATA / name)


def needs_shared(path: Path) -> pytest.MarkDecorator:
    """Skip the test when `path` is absent, except on CI, where the test runs (and fails reading it)."""
    return pytest.mark.skipif(
        not path.exists() and not on_ci(),
        reason=f"{path} is absent (tests against the real data set need ../shared/data)",
    )

"""What a few callers need to know about a git checkout: its top level, its HEAD, whether it is dirty.

Used to record which revision a run came from (the manifest), which commit a miniF2F checkout is at
(LeanDojo locations), and whether a local copy of a traced repository is at the wanted commit. Each
question is one `git` call with a deadline; no git, no repository or a timeout answers None.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_top_level(directory: Path) -> Path | None:
    """The top directory of the git checkout `directory` is in, or None."""
    top = _git(directory, "rev-parse", "--show-toplevel")
    return Path(top).resolve() if top else None


def is_checkout_root(directory: Path) -> bool:
    """Whether `directory` is the top of a git checkout (not merely somewhere inside one)."""
    return git_top_level(directory) == Path(directory).resolve()


def git_head(directory: Path) -> str | None:
    """The commit checked out at `directory`, or None."""
    return _git(directory, "rev-parse", "HEAD") or None


def git_dirty(directory: Path) -> bool | None:
    """Whether tracked files of the checkout at `directory` have uncommitted changes; None if unknown."""
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)

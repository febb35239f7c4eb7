"""The git questions the manifest, the dataset's LeanDojo locations and LeanDojo's source lookup ask."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lean_env.gitinfo import git_dirty, git_head, git_top_level, is_checkout_root


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.invalid")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.txt").write_text("one\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_head_top_level_and_dirty_state(checkout: Path) -> None:
    head = git_head(checkout)
    assert head is not None and head == _git(checkout, "rev-parse", "HEAD") and len(head) == 40
    assert git_top_level(checkout / "sub") == checkout.resolve()
    assert is_checkout_root(checkout) and not is_checkout_root(checkout / "sub")
    assert git_dirty(checkout) is False
    (checkout / "sub" / "f.txt").write_text("two\n")
    assert git_dirty(checkout) is True


def test_outside_a_checkout_every_answer_is_none(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    # tmp_path itself may sit inside some checkout on a developer machine; a fresh GIT_DIR-less dir under /tmp does not.
    if git_top_level(plain) is not None:
        pytest.skip("the temporary directory is inside a git checkout here")
    assert git_head(plain) is None and git_dirty(plain) is None and not is_checkout_root(plain)
    assert git_head(tmp_path / "missing") is None

"""The shared-data gate: a missing data set fails the tests in CI and skips them elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import shared_data


def test_missing_shared_data_fails_in_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shared_data, "SHARED_DATA", tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        shared_data.shared_data_file("minif2f_lean4.jsonl")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="is absent"):
        shared_data.shared_data_file("minif2f_lean4.jsonl")
    (tmp_path / "minif2f_lean4.jsonl").write_text("{}\n", encoding="utf-8")
    assert shared_data.shared_data_file("minif2f_lean4.jsonl") == tmp_path / "minif2f_lean4.jsonl"

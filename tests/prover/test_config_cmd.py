"""`prover config show` round-trips, and the README lists every PROVER_* variable the settings accept."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from prover.cli.config_cmd import setting_variables
from prover.cli.main import cli
from prover.config import load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_config_show_prints_toml_that_loads_back_to_the_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROVER_LEAN__REPL__CRASH_RETRIES", "4")
    done = CliRunner().invoke(cli, ["config", "show", "--set", "search.expansions=7"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    data = tomllib.loads(done.output)
    assert data["lean"]["repl"]["crash_retries"] == 4 and data["search"]["expansions"] == 7
    saved = tmp_path / "prover.toml"
    saved.write_text(done.output, encoding="utf-8")
    expected = load_settings(
        environ={"PROVER_HOME": str(tmp_path / "home"), "PROVER_LEAN__REPL__CRASH_RETRIES": "4"},
        overrides={"search": {"expansions": 7}},
    )
    assert load_settings(saved, environ={}) == expected
    as_json = CliRunner().invoke(cli, ["config", "show", "--json"], catch_exceptions=False)
    assert json.loads(as_json.output)["search"]["expansions"] == 100


def test_every_variable_is_listed_in_the_readme() -> None:
    names = [name for name, _ in setting_variables()]
    assert "PROVER_LEAN__REPL__CRASH_RETRIES" in names and "PROVER_MODEL__BASE_URLS" in names
    text = README.read_text(encoding="utf-8")
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"README lacks {missing[:5]}...; regenerate the list with `prover config variables`"
    done = CliRunner().invoke(cli, ["config", "variables"], catch_exceptions=False)
    assert done.output.splitlines()[0].startswith(names[0])

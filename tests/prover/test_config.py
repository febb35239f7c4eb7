"""Settings resolve from defaults, TOML, PROVER_* variables and flags, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from prover.config import SettingsError, load_settings
from search.types import PriorityScheme


def test_defaults_follow_the_llemma_reference_budget() -> None:
    settings = load_settings(environ={})
    config = settings.search.to_config()
    assert (config.max_expansions, config.num_samples, config.wall_clock_s) == (100, 32, 600.0)
    assert config.priority is PriorityScheme.LLEMMA
    assert settings.model.name == "EleutherAI/llemma_7b"
    assert settings.lean.workers >= 1


def test_precedence_toml_then_environment_then_flags(tmp_path: Path) -> None:
    toml = tmp_path / "prover.toml"
    toml.write_text('[search]\nexpansions = 7\nsamples = 4\n[model]\nname = "from-toml"\n', encoding="utf-8")
    settings = load_settings(
        toml,
        environ={"PROVER_SEARCH__SAMPLES": "9", "PROVER_MODEL__BASE_URLS": "http://a/v1,http://b/v1"},
        overrides={"search": {"expansions": 11, "samples": None}},
    )
    assert settings.search.expansions == 11  # flag beats TOML
    assert settings.search.samples == 9  # env beats TOML; an unset flag (None) falls through
    assert settings.model.name == "from-toml"
    assert settings.model.base_urls == ["http://a/v1", "http://b/v1"]


def test_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"search\.expansions"):
        load_settings(environ={"PROVER_SEARCH__EXPANSIONS": "zero"})
    with pytest.raises(SettingsError, match=r"lean\.no_such_field"):
        load_settings(environ={"PROVER_LEAN__NO_SUCH_FIELD": "1"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[search\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "none.toml", environ={})

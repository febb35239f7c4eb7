"""Settings resolve from defaults, TOML, PROVER_* variables and flags, in that order; every field is reachable."""

from __future__ import annotations

import enum
import json
import shlex
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from lean_env.dojo import DojoConfig, DojoLeanEnv
from lean_env.repl import ReplConfig, ReplLeanEnv
from prover import wiring
from prover.cli.options import settings_overrides
from prover.config import LeanSettings, ProverSettings, SettingsError, load_settings
from search.types import PriorityScheme


def test_defaults_follow_the_llemma_reference_budget() -> None:
    settings = load_settings(environ={})
    config = settings.search.to_config()
    assert (config.max_expansions, config.num_samples, config.wall_clock_s) == (100, 32, 600.0)
    assert config.priority is PriorityScheme.LLEMMA
    assert settings.model.name == "EleutherAI/llemma_7b"
    assert settings.lean.repl.workers >= 1


def test_precedence_toml_then_environment_then_flags(tmp_path: Path) -> None:
    toml = tmp_path / "prover.toml"
    toml.write_text(
        '[search]\nexpansions = 7\nsamples = 4\n[model]\nname = "from-toml"\n'
        "[lean.repl]\ncrash_retries = 5\nworkers = 3\n[lean.dojo]\ncpu_limit = 2\n",
        encoding="utf-8",
    )
    settings = load_settings(
        toml,
        environ={
            "PROVER_SEARCH__SAMPLES": "9",
            "PROVER_MODEL__BASE_URLS": "http://a/v1,http://b/v1",
            "PROVER_LEAN__REPL__CRASH_RETRIES": "3",
        },
        overrides={"search": {"expansions": 11, "samples": None}, "lean": {"repl": {"workers": 6, "command": None}}},
    )
    assert settings.search.expansions == 11  # flag beats TOML
    assert settings.search.samples == 9  # env beats TOML; an unset flag (None) falls through
    assert settings.model.name == "from-toml"
    assert settings.model.base_urls == ["http://a/v1", "http://b/v1"]
    assert settings.lean.repl.crash_retries == 3  # env beats TOML, two levels down
    assert settings.lean.repl.workers == 6  # a nested flag beats TOML
    assert settings.lean.dojo.cpu_limit == 2
    assert settings.lean.repl.command == ()  # unset everywhere: derived from the project at the entry point


def test_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"search\.expansions"):
        load_settings(environ={"PROVER_SEARCH__EXPANSIONS": "zero"})
    with pytest.raises(SettingsError, match=r"lean\.no_such_field"):
        load_settings(environ={"PROVER_LEAN__NO_SUCH_FIELD": "1"})
    with pytest.raises(SettingsError, match=r"lean\.repl\.crash_retries"):
        load_settings(environ={"PROVER_LEAN__REPL__CRASH_RETRIES": "-1"})
    with pytest.raises(SettingsError, match=r"lean\.dojo\.memory_limit"):
        load_settings(environ={"PROVER_LEAN__DOJO__MEMORY_LIMIT": "16GB"})
    with pytest.raises(SettingsError, match=r"lean\.workers"):  # the flat name of old is gone, and says so
        load_settings(environ={"PROVER_LEAN__WORKERS": "2"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[search\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "none.toml", environ={})


def test_unrelated_prover_variables_without_a_section_are_ignored() -> None:
    assert load_settings(environ={"PROVER_DEBUG": "1"}) == load_settings(environ={})


# --- every field reachable -------------------------------------------------------------------------


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, annotation) of every leaf field, walking nested sections at any depth."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, (*prefix, name))
        else:
            yield (*prefix, name), annotation


def _section(path: tuple[str, ...]) -> type[BaseModel]:
    model: type[BaseModel] = ProverSettings
    for part in path[:-1]:
        annotation = model.model_fields[part].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation
    return model


def _arms(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType):
        return [arm for arm in typing.get_args(annotation) if arm is not type(None)]
    return [annotation]


def _candidates(annotation: Any, default: Any, root: Path, path: tuple[str, ...]) -> list[Any]:
    found: list[Any] = []
    for arm in _arms(annotation):
        origin = typing.get_origin(arm)
        if origin is Literal:
            found += list(typing.get_args(arm))
        elif isinstance(arm, type) and issubclass(arm, enum.Enum):
            found += list(arm)
        elif arm is bool:
            found += [not default] if isinstance(default, bool) else [True]
        elif arm is int:
            base = default if isinstance(default, int) else 0
            found += [base + 1, base + 3, 5]
        elif arm is float:
            base = default if isinstance(default, float) else 1.0
            found += [base + 1.5, base / 2, 0.25]
        elif arm is str:
            found += ["alt-value", "7g", "http://alt/v1"]
        elif arm is Path:
            found += [root / "-".join(path)]  # absolute, so it arrives unchanged
        elif origin in (list, tuple) and _item_model(arm) is not None:
            found += [[{"name": "alice", "sha256": "a" * 64, "daily_jobs": 3}]]  # e.g. `[[service.tokens]]`
        elif origin in (list, tuple):
            found += [["alt-one", "alt two"]] if path[-1] != "base_urls" else [["http://x/v1", "http://y/v1"]]
        else:
            raise AssertionError(f"{'.'.join(path)}: the reachability test does not know {arm!r}; teach it")
    return found


def _item_model(annotation: Any) -> type[BaseModel] | None:
    """The section type of a list-of-sections setting (`tuple[TokenSettings, ...]`), else None."""
    items = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
    if len(items) == 1 and isinstance(items[0], type) and issubclass(items[0], BaseModel):
        return items[0]
    return None


def _value_for(path: tuple[str, ...], annotation: Any, root: Path) -> Any:
    """A valid value of the leaf that differs from its default."""
    section = _section(path)
    default = section.model_fields[path[-1]].get_default(call_default_factory=True)
    for candidate in _candidates(annotation, default, root, path):
        if _same(candidate, default):
            continue
        try:
            section.model_validate({path[-1]: candidate})
        except ValueError:
            continue
        return candidate
    raise AssertionError(f"{'.'.join(path)}: no valid non-default value found")


def _same(value: Any, expected: Any) -> bool:
    value, expected = _plain(value), _plain(expected)
    if isinstance(expected, enum.Enum):
        expected = expected.value
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, list | tuple) and isinstance(expected, list | tuple):
        return list(value) == list(expected)
    return bool(value == expected)


def _plain(value: Any) -> Any:
    """A list of sections as the dicts of their non-default fields, to compare with what was written."""
    if isinstance(value, list | tuple) and value and isinstance(value[0], BaseModel):
        return [item.model_dump(exclude_defaults=True) for item in value]
    return value


def _at(settings: BaseModel, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(str(value))  # a JSON string of plain text is a TOML basic string


def _env_value(path: tuple[str, ...], value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple) and value and isinstance(value[0], dict):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return ",".join(value) if path[-1] == "base_urls" else shlex.join(value)
    return str(value)


LEAVES = list(_leaves(ProverSettings))


def test_the_walk_sees_the_backend_sections() -> None:
    paths = {".".join(path) for path, _ in LEAVES}
    assert {"lean.repl.crash_retries", "lean.repl.spread_tactics", "lean.repl.command_timeout_s"} <= paths
    assert {"lean.repl.max_worker_memory_mb", "lean.dojo.disable_remote_cache", "lean.dojo.lean_command"} <= paths
    assert {"home", "lean.project_dir", "model.base_urls", "eval.ray_workers"} <= paths
    assert not {"lean.workers", "lean.memory_limit_mb", "lean.dojo_timeout_s", "lean.repl_command"} & paths


@pytest.mark.parametrize(("path", "annotation"), LEAVES, ids=[".".join(path) for path, _ in LEAVES])
def test_every_field_is_reachable_from_toml_env_and_overrides(
    path: tuple[str, ...], annotation: Any, tmp_path: Path
) -> None:
    value = _value_for(path, annotation, tmp_path)
    *sections, name = path
    toml = tmp_path / "prover.toml"
    header = f"[{'.'.join(sections)}]\n" if sections else ""
    toml.write_text(f"{header}{name} = {_toml_value(value)}\n", encoding="utf-8")
    from_toml = load_settings(toml, environ={})
    assert _same(_at(from_toml, path), value), f"TOML: {'.'.join(path)}"

    variable = "PROVER_" + "__".join(part.upper() for part in path)
    from_env = load_settings(environ={variable: _env_value(path, value)})
    assert _same(_at(from_env, path), value), f"{variable}"

    nested: dict[str, Any] = {name: value}
    for section in reversed(sections):
        nested = {section: nested}
    from_overrides = load_settings(environ={}, overrides=nested)
    assert _same(_at(from_overrides, path), value), f"overrides: {'.'.join(path)}"


def _flags(**given: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        name: None
        for name in (
            "env",
            "workers",
            "repl_command",
            "project_dir",
            "backend",
            "model",
            "prompt_format",
            "temperature",
            "expansions",
            "samples",
            "timeout",
            "tactic_timeout",
            "priority",
        )
    }
    options["base_url"] = ()
    options.update(given)
    return options


def test_flags_reach_their_nested_settings(tmp_path: Path) -> None:
    options = _flags(
        env="dojo",
        workers=3,
        repl_command=f"python '{tmp_path / 'a dir' / 'fake_repl.py'}' --script s.json",
        project_dir=Path("proj"),
        backend="openai",
        model="served",
        base_url=("http://a/v1", "http://b/v1"),
        temperature=0.5,
        expansions=9,
        samples=4,
        timeout=30.0,
        tactic_timeout=2.0,
        priority="reprover",
    )
    settings = load_settings(
        environ={"PROVER_LEAN__REPL__WORKERS": "7"}, overrides=settings_overrides(options), cwd=tmp_path
    )
    assert settings.lean.backend == "dojo" and settings.lean.repl.workers == 3  # the flag beats the variable
    assert settings.lean.repl.command == ("python", str(tmp_path / "a dir" / "fake_repl.py"), "--script", "s.json")
    assert settings.lean.project_dir == tmp_path / "proj"  # a relative flag resolves at the entry point
    assert (settings.model.backend, settings.model.name, settings.model.base_urls) == (
        "openai",
        "served",
        ["http://a/v1", "http://b/v1"],
    )
    assert settings.model.temperature == 0.5
    search = settings.search
    assert (search.expansions, search.samples, search.timeout_s, search.tactic_timeout_s) == (9, 4, 30.0, 2.0)
    assert search.priority is PriorityScheme.REPROVER
    untouched = load_settings(environ={"PROVER_LEAN__REPL__WORKERS": "7"}, overrides=settings_overrides(_flags()))
    assert untouched.lean.repl.workers == 7  # unset flags fall through


# --- paths resolved at the entry point ----------------------------------------------------------


def test_relative_paths_resolve_against_the_current_directory_and_tilde_expands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    toml = tmp_path / "prover.toml"
    toml.write_text(
        '[lean]\nproject_dir = "proj"\nrepl_path = "~/bin/repl"\n[lean.dojo]\ncache_dir = "cache"\n'
        '[lean.repl]\ncwd = "../elsewhere"\n[eval]\nout_dir = "runs/x"\n',
        encoding="utf-8",
    )
    settings = load_settings(toml, environ={"HOME": str(tmp_path / "user")})
    assert settings.lean.project_dir == tmp_path / "proj"
    assert settings.lean.repl_path == tmp_path / "user" / "bin" / "repl"
    assert settings.lean.dojo.cache_dir == tmp_path / "cache"
    assert settings.lean.repl.cwd == tmp_path / ".." / "elsewhere"
    assert settings.eval.out_dir == tmp_path / "runs" / "x"
    assert settings.home is not None and settings.home.is_absolute()


def test_default_home_is_prover_home_then_xdg_then_local_share(tmp_path: Path) -> None:
    user = {"HOME": str(tmp_path / "user")}
    plain = load_settings(environ=user)
    assert plain.home == tmp_path / "user" / ".local" / "share" / "llemma-prover"
    assert plain.lean.project_dir == plain.home / "miniF2F" and plain.lean.data_dir == plain.home / "data"
    xdg = load_settings(environ={**user, "XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert xdg.home == tmp_path / "xdg" / "llemma-prover"
    chosen = load_settings(environ={**user, "XDG_DATA_HOME": str(tmp_path / "xdg"), "PROVER_HOME": "ph"}, cwd=tmp_path)
    assert chosen.home == tmp_path / "ph" and chosen.lean.project_dir == tmp_path / "ph" / "miniF2F"
    own = load_settings(environ={**user, "PROVER_LEAN__PROJECT_DIR": str(tmp_path / "mine")})
    assert own.lean.project_dir == tmp_path / "mine" and own.lean.data_dir == own.home / "data"  # type: ignore[operator]


def test_no_default_points_into_the_source_checkout(tmp_path: Path) -> None:
    checkout = Path(__file__).resolve().parents[2]
    settings = load_settings(environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    for path, _ in LEAVES:
        value = _at(settings, path)
        if isinstance(value, Path):
            assert not value.is_relative_to(checkout), f"{'.'.join(path)} defaults into the checkout: {value}"


# --- the backends get their sections as they are ---------------------------------------------------


def test_build_env_passes_the_sections_through(tmp_path: Path) -> None:
    repl = ReplConfig(command=("python", "stand-in"), workers=2, crash_retries=4, spread_tactics=False)
    lean = LeanSettings(project_dir=tmp_path, repl=repl)
    env = wiring.build_env(lean)
    assert isinstance(env, ReplLeanEnv)
    assert env.config == repl.model_copy(update={"cwd": tmp_path})
    dojo = DojoConfig(timeout_s=5, crash_restarts=3, disable_remote_cache=True)
    dojo_env = wiring.build_env(LeanSettings(backend="dojo", project_dir=tmp_path, dojo=dojo))
    assert isinstance(dojo_env, DojoLeanEnv) and dojo_env.config is dojo

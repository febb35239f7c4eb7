"""`prover config show` and `prover config variables`: the resolved settings, and every setting's variable.

`show` prints the settings exactly as a command would resolve them (defaults, `--config` TOML,
`PROVER_*` variables, `--set`), as TOML or JSON, so a run can be reproduced or a file started from
it. `variables` lists every `PROVER_*` variable the settings model accepts, generated from the
model itself (the README's list is checked against it by a test).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from prover.cli.options import settings_options, settings_overrides


@click.group(name="config")
def config_group() -> None:
    """Show the resolved settings, or list every PROVER_* variable."""


@config_group.command(name="show")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
def show(config_file: Path | None, assignments: tuple[str, ...], as_json: bool) -> None:
    """Print the settings every command would use here, after defaults, the TOML file, PROVER_* and --set."""
    from prover.config import load_settings

    settings = load_settings(config_file, os.environ, settings_overrides({"assignments": assignments}))
    data = _without_derived(settings)
    click.echo(json.dumps(data, indent=2) if as_json else to_toml(data))


def _without_derived(model: Any) -> dict[str, Any]:
    """`model` as JSON-ready data, leaving out empty lists whose default is empty too.

    Such an empty default means "derive it" (`lean.repl.command` comes from the project), which
    written out explicitly would mean something else (an empty command).
    """
    from pydantic import BaseModel

    data: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            data[name] = _without_derived(value)
            continue
        dumped = type(model).__pydantic_serializer__.to_python(model, mode="json", include={name})[name]
        if dumped == [] and not field.get_default(call_default_factory=True):
            continue
        data[name] = dumped
    return data


@config_group.command(name="variables")
def variables() -> None:
    """List every PROVER_* variable, one per line, with the setting's type."""
    for name, kind in setting_variables():
        click.echo(f"{name}  ({kind})")


def setting_variables() -> list[tuple[str, str]]:
    """(`PROVER_SECTION__FIELD`, type) for every leaf of the settings model, in model order."""
    from pydantic import BaseModel

    from prover.config import ENV_PREFIX, ProverSettings

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from walk(annotation, (*path, name))
            else:
                kind = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
                yield ENV_PREFIX + "__".join(part.upper() for part in (*path, name)), kind

    return list(walk(ProverSettings, ()))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """`data` (nested dicts of plain values) as TOML; None values are left out (TOML has no null)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines)
    for name, table in tables:
        body = to_toml(table, prefix=f"{name}.").strip("\n")
        if body:
            out = (out.rstrip("\n") + "\n\n" if out else "") + f"[{name}]\n{body}"
    return out.rstrip("\n") + "\n" if out else ""

"""`prover setup` and `prover doctor`: install or find the Lean side, and report what is there."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from prover.cli.main import UserFacingError


def _settings(config_file: Path | None, lean: dict[str, Any]) -> Any:
    from prover.config import SettingsError, load_settings

    try:
        # An entry point: the one place that reads the environment.
        return load_settings(config_file, os.environ, {"lean": lean})
    except SettingsError as error:
        raise UserFacingError(str(error)) from error


def _is_default_project(settings: Any) -> bool:
    from prover.config import PROJECT_FOLDER

    return bool(settings.lean.project_dir == settings.home / PROJECT_FOLDER)


def _elan_home() -> Path:
    from prover.lean_setup import default_elan_home

    # An entry point: the one place that reads the environment.
    configured = os.environ.get("ELAN_HOME")
    return Path(configured).expanduser() if configured else default_elan_home()


@click.command(name="setup")
@click.option(
    "--project-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Lake project to set up (default: the packaged miniF2F project, written to <home>/miniF2F).",
)
@click.option("--skip-data", is_flag=True, help="Do not fetch the miniF2F statements and the Llemma variant.")
@click.option(
    "--skip-comparator", is_flag=True, help="Do not build the comparator judge (the REPL judge stays in use)."
)
@click.option("--isabelle", is_flag=True, help="Also install Isabelle (pinned release) and build the miniF2F heap.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before installing elan into ELAN_HOME.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file.")
def setup(
    project_dir: Path | None,
    skip_data: bool,
    skip_comparator: bool,
    isabelle: bool,
    yes: bool,
    config_file: Path | None,
) -> None:
    """Install or find elan, the pinned Lean toolchain, the REPL, Mathlib's build cache and the data.

    The default project is the miniF2F Lake project shipped in the package, written to
    `<home>/miniF2F` ($PROVER_HOME, else $XDG_DATA_HOME/llemma-prover, else ~/.local/share/llemma-prover).

    Every step is skipped when already done, so it is safe to run again. Without network it stops at
    the first step that needs it, names the step and the address, and exits with status 2.
    """
    from rich.console import Console
    from rich.markup import escape

    from prover.lean_setup import (
        SetupContext,
        SetupError,
        SetupStep,
        find_tool,
        packaged_project,
        run_setup,
        setup_steps,
    )

    console = Console(stderr=True, highlight=False)
    settings = _settings(config_file, {"project_dir": project_dir})
    project: Path = settings.lean.project_dir
    elan_home = _elan_home()
    context = SetupContext(
        project_dir=project,
        elan_home=elan_home,
        path=os.environ.get("PATH", ""),
        data_dir=settings.lean.data_dir,
        template=packaged_project() if _is_default_project(settings) else None,
        skip_data=skip_data,
        skip_comparator=skip_comparator,
        base_env=dict(os.environ),
    )
    if not yes and find_tool("elan", elan_home, context.search_path) is None:
        if not sys.stdin.isatty():
            raise UserFacingError(
                f"elan is not installed and there is no terminal to ask whether to install it into {elan_home}; "
                "pass --yes to install it"
            )
        click.confirm(f"elan is not installed. Install it into {elan_home}?", default=True, abort=True, err=True)

    status_holder: dict[str, Any] = {}

    def on_output(line: str) -> None:
        live = status_holder.get("status")
        if live is not None and line.strip():
            live.update(f"{status_holder['label']}  [dim]{escape(line.strip()[:100])}[/]")

    context.log = on_output

    def on_step(index: int, total: int, step: SetupStep, state: str) -> None:
        label = f"[{index}/{total}] {step.name}: {step.description}"
        if state == "running":
            status_holder["label"] = label
            status_holder["status"] = console.status(label)
            status_holder["status"].start()
            return
        live = status_holder.pop("status", None)
        if live is not None:
            live.stop()
        mark = {"done": "[green]done[/]", "done already": "[green]already done[/]", "skipped": "[yellow]skipped[/]"}
        console.print(f"{label} ... {mark.get(state, state)}")

    try:
        results = run_setup(context, setup_steps(isabelle=isabelle), on_step=on_step)
    except SetupError as error:
        live = status_holder.pop("status", None)
        if live is not None:
            live.stop()
        raise UserFacingError(str(error)) from error
    for result in results:
        if result.detail:
            console.print(f"note: {result.name}: {escape(result.detail)}")
    console.print(f"[bold green]ready[/]: {project} is set up; try `prover doctor`.")


def _memory_item(repl: Any) -> Any:
    """The `Lean memory` line: REPL processes × expected resident memory against RAM (optional: it warns)."""
    from lean_env.repl.config import memory_plan
    from prover.lean_setup import DoctorItem

    plan = memory_plan(repl)
    return DoctorItem("Lean memory", plan.fits, f"{plan.total_mb} MiB RAM", plan.describe(), required=False)


@click.command(name="doctor")
@click.option(
    "--project-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Lake project to inspect (default: <home>/miniF2F, written by `prover setup`).",
)
@click.option("--dojo-cache-dir", type=click.Path(path_type=Path), default=None, help="LeanDojo's CACHE_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file.")
def doctor(project_dir: Path | None, dojo_cache_dir: Path | None, as_json: bool, config_file: Path | None) -> None:
    """Report what is installed, with versions: elan, lean, lake, the REPL, Mathlib, data, the judge, LeanDojo,
    GPUs, vLLM. The `judge` line says whether comparator is installed and which judge proofs will get.

    Exits 0 when everything the configured run needs is there, 1 when a required piece is missing
    (optional pieces, shown in yellow, never fail it); `--json` gives the items to test against.
    """
    from prover.lean_setup import doctor_report

    settings = _settings(config_file, {"project_dir": project_dir, "dojo": {"cache_dir": dojo_cache_dir}})
    project: Path = settings.lean.project_dir
    cache = settings.lean.dojo.cache_dir
    if cache is None and os.environ.get("CACHE_DIR"):
        cache = Path(os.environ["CACHE_DIR"])  # LeanDojo's own variable, honoured as LeanDojo would
    items = doctor_report(
        project, settings.lean.data_dir, _elan_home(), cache, settings.lean.comparator, model=settings.model
    )
    items.append(_memory_item(settings.lean.repl))
    missing = [item.name for item in items if item.required and not item.ok]
    if as_json:
        click.echo(json.dumps([item.to_dict() for item in items], indent=2))
        raise SystemExit(1 if missing else 0)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"prover doctor ({project})")
    table.add_column("component", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("version", overflow="fold")
    table.add_column("where / what to do", overflow="fold")  # hints wrap; nothing is cut off
    for item in items:
        if item.ok:
            status = "[green]ok[/]"
        else:
            status = "[red]missing[/]" if item.required else "[yellow]absent (optional)[/]"
        table.add_row(escape(item.name), status, escape(item.version), escape(item.detail))
    console = Console()
    console.print(table)
    if missing:
        console.print(f"[red]missing:[/] {', '.join(missing)}; `prover setup` installs the Lean pieces")
        raise SystemExit(1)

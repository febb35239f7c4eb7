"""`prover setup` and `prover doctor`: install or find the Lean side, and report what is there."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from prover.cli.main import UserFacingError


def _default_project() -> Path:
    from prover.config import REPO_ROOT

    return REPO_ROOT / "miniF2F"


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
    help="Lake project to set up (default: miniF2F/ in this repository).",
)
@click.option("--skip-data", is_flag=True, help="Do not fetch the miniF2F statements and the Llemma variant.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before installing elan into ELAN_HOME.")
def setup(project_dir: Path | None, skip_data: bool, yes: bool) -> None:
    """Install or find elan, the pinned Lean toolchain, the REPL, Mathlib's build cache and the data.

    Every step is skipped when already done, so it is safe to run again. Without network it stops at
    the first step that needs it, names the step and the address, and exits with status 2.
    """
    from rich.console import Console
    from rich.markup import escape

    from prover.lean_setup import SetupContext, SetupError, SetupStep, find_tool, run_setup

    console = Console(stderr=True, highlight=False)
    project = (project_dir or _default_project()).resolve()
    elan_home = _elan_home()
    context = SetupContext(
        project_dir=project,
        elan_home=elan_home,
        path=os.environ.get("PATH", ""),
        skip_data=skip_data,
        base_env=dict(os.environ),
    )
    if not yes and find_tool("elan", elan_home, context.search_path) is None:
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
        run_setup(context, on_step=on_step)
    except SetupError as error:
        live = status_holder.pop("status", None)
        if live is not None:
            live.stop()
        raise UserFacingError(str(error)) from error
    console.print(f"[bold green]ready[/]: {project} is set up; try `prover doctor`.")


@click.command(name="doctor")
@click.option(
    "--project-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Lake project to inspect (default: miniF2F/ in this repository).",
)
@click.option("--dojo-cache-dir", type=click.Path(path_type=Path), default=None, help="LeanDojo's CACHE_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(project_dir: Path | None, dojo_cache_dir: Path | None, as_json: bool) -> None:
    """Report what is installed, with versions: elan, lean, lake, the REPL, Mathlib, data, LeanDojo, GPUs, vLLM."""
    from prover.lean_setup import doctor_report

    project = (project_dir or _default_project()).resolve()
    cache = dojo_cache_dir or (Path(os.environ["CACHE_DIR"]) if os.environ.get("CACHE_DIR") else None)
    items = doctor_report(project, _elan_home(), cache)
    if as_json:
        click.echo(json.dumps([item.to_dict() for item in items], indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"prover doctor ({project})")
    table.add_column("component")
    table.add_column("status")
    table.add_column("version")
    table.add_column("where / what to do")
    for item in items:
        status = "[green]ok[/]" if item.ok else "[red]missing[/]"
        table.add_row(escape(item.name), status, escape(item.version), escape(item.detail))
    Console().print(table)

"""`prover prove`: attempt one theorem and print the verified proof and the search's stats."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import click

from prover.cli.main import UserFacingError, current_backends
from prover.cli.options import (
    lean_options,
    model_options,
    search_options,
    settings_options,
    settings_overrides,
    warn_about_sampling,
)


def _read_dojo_problem(options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The problem at `--repo/--commit/--file/--name` in a traced repository, and its location map."""
    missing = [flag for flag in ("repo", "commit", "file", "name") if not options[flag]]
    if missing:
        raise UserFacingError(
            "--env dojo needs "
            + ", ".join(f"--{flag}" for flag in missing)
            + " (a theorem in a LeanDojo-traced repository)"
        )
    from lean_env.dojo import DojoLocation, theorem_from_location

    location = DojoLocation(options["repo"], options["commit"], str(options["file"]), options["name"])
    problem = theorem_from_location(location, statement=options["statement"])
    return problem, {problem.name: location}


def _read_problem(options: dict[str, Any], policy: Any) -> tuple[Any, dict[str, Any]]:
    """The problem the flags name, and (for LeanDojo) where it lives; raises `UserFacingError`."""
    from prover.statements import MINIF2F_HEADER, StatementError, theorem_from_file, theorem_from_statement

    try:
        if options["env"] == "dojo":
            return _read_dojo_problem(options)
        if options["statement"] is not None and options["file"]:
            raise UserFacingError("give either --statement or --file/--name, not both")
        if options["statement"] is not None:
            ignored = [f"--{flag}" for flag in ("name", "repo", "commit") if options[flag]]
            if ignored:
                raise UserFacingError(
                    f"{', '.join(ignored)} only apply with --file or --env dojo, not with --statement"
                )
            header = options["header"] if options["header"] is not None else MINIF2F_HEADER
            return theorem_from_statement(options["statement"], header=header, policy=policy), {}
        if options["file"]:
            if not options["name"]:
                raise UserFacingError("--file needs --name: the theorem to prove in that file")
            return theorem_from_file(Path(options["file"]), options["name"], policy=policy), {}
    except StatementError as error:
        raise UserFacingError(str(error)) from error
    except ValueError as error:  # lean_env.dojo.DojoLocationError: a malformed or mismatching location
        raise UserFacingError(str(error)) from error
    raise UserFacingError('nothing to prove: give --statement "theorem t ... := by" or --file F --name N')


@click.command(name="prove")
@click.option("--statement", help='The theorem, e.g. "theorem t (n : ℕ) : n + 0 = n := by".')
@click.option("--header", help="Text before the statement (imports, opens). Default: the miniF2F header.")
@click.option("--file", "file", type=click.Path(), help="A Lean file holding the theorem (with --name).")
@click.option("--name", help="The theorem's name in --file (or its full name with --env dojo).")
@click.option("--repo", help="--env dojo: URL of the LeanDojo-traced repository.")
@click.option("--commit", help="--env dojo: commit of that repository.")
@lean_options
@model_options
@search_options
@settings_options
@click.option(
    "--export-tree",
    type=click.Path(path_type=Path),
    help="Write the search graph (.json, .graphml or .dot, by suffix).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option(
    "--show-prompt",
    is_flag=True,
    help="Print the model's prompt for the theorem's first state (or --state) and exit; no search.",
)
@click.option("--state", help="With --show-prompt: the proof state to render, instead of asking Lean for it.")
def prove(**options: Any) -> None:
    """Attempt one theorem with best-first search; print the verified proof and the stats.

    Exits 0 when proved, 1 when not proved within the budget, 2 when Lean, the model or the input is
    missing or malformed (including a statement Lean does not accept), 3 when Lean or the model
    failed during the search.
    """
    from prover.config import load_settings

    settings = load_settings(options["config_file"], os.environ, settings_overrides(options))
    warn_about_sampling(settings)
    _check_export_path(options["export_tree"])  # before the search: a bad path must not lose its result
    problem, locations = _read_problem({**options, "env": settings.lean.backend}, settings.lean.policy)
    if options["show_prompt"]:
        click.echo(asyncio.run(_render_prompt(problem, locations, settings, options["state"])), nl=False)
        return
    result, tree = asyncio.run(_run(problem, locations, settings, options["export_tree"] is not None))
    if options["export_tree"] is not None and tree is not None:
        tree.write(options["export_tree"])
    _print_result(result, options["as_json"])
    status = result.status.value
    raise SystemExit(_EXIT_CODES.get(status, 1))


_EXIT_CODES = {"proved": 0, "invalid_statement": 2, "env_error": 3}
"""`prove`'s exit status by result status; every other status (not proved within the budget) is 1."""


def _check_export_path(path: Path | None) -> None:
    """Refuse an `--export-tree` path that could not be written, before any search time is spent."""
    if path is None:
        return
    from search.tree import TREE_FORMATS

    if path.suffix.lower() not in TREE_FORMATS:
        raise UserFacingError(f"--export-tree: {path} must end in {', '.join(TREE_FORMATS)} (the format)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserFacingError(f"--export-tree: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserFacingError(f"--export-tree: {path} is not writable")


async def _render_prompt(problem: Any, locations: dict[str, Any], settings: Any, state_text: str | None) -> str:
    """The prompt the model gets for `state_text`, or for the theorem's initial state as Lean opens it."""
    from lean_env.types import InvalidStatement, ProofState
    from prover.models.prompts import load_prompt_format
    from search.types import GenerationRequest

    prompt_format = load_prompt_format(settings.model.prompt_format)
    if state_text is not None:
        state = ProofState.from_pp(state_text)
    else:
        backends = current_backends()
        env = (
            backends.build_env(settings.lean, dojo_locations=locations)
            if locations
            else backends.build_env(settings.lean)
        )
        try:
            session = await env.start(problem)
            if isinstance(session, InvalidStatement):
                raise UserFacingError(f"Lean rejects the statement: {session.message}")
            state = session.initial_state
            await session.close()
        finally:
            await env.close()
    return prompt_format.render(GenerationRequest(state=state, num_samples=1, theorem=problem))


async def _run(problem: Any, locations: dict[str, Any], settings: Any, keep_tree: bool) -> tuple[Any, Any]:
    from search import BestFirstSearch

    backends = current_backends()
    # Lean first: it is the cheaper thing to find missing.
    env = (
        backends.build_env(settings.lean, dojo_locations=locations) if locations else backends.build_env(settings.lean)
    )
    try:
        generator = backends.build_generator(settings.model)
        try:
            search = BestFirstSearch(problem, env, generator, settings.search.to_config())
            result = await search.run()
            return result, search.tree if keep_tree else None
        finally:
            await generator.close()
    finally:
        await env.close()


def _print_result(result: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result.proof is not None:
        judged = "verified by comparator" if result.judge == "comparator" else "verified by the REPL re-check"
        console.print(f"[bold green]proved[/] {result.theorem_name} ({judged})")
        console.print(result.proof, markup=False, highlight=False)
    else:
        console.print(f"[bold red]{result.status.value}[/] {result.theorem_name}: {result.failure_reason}")
    table = Table(title="search stats", show_header=False)
    for key, value in result.stats.to_dict().items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)

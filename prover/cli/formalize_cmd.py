"""`prover formalize`: draft, sketch and prove one problem from its informal proof, in Lean 4 or Isabelle.

It also holds what `prover eval --mode informal` shares with it: opening the language's backend over
one text generator (`informal_backend`), and turning a `FormalizeResult` into a results record
(`informal_record`) whose `informal` field keeps every attempt's draft, sketch, gaps and timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click

from prover.cli.main import UserFacingError, current_backends
from prover.cli.options import lean_options, model_options, search_options, settings_options, settings_overrides

EXIT_PROVED, EXIT_NOT_PROVED, EXIT_ENVIRONMENT = 0, 1, 3

ISABELLE_HEADER = "theory {name} imports\n  Complex_Main\nbegin\n\n"
"""The header of an Isabelle `--statement` without `--header` (miniF2F's)."""

_ISABELLE_DECLARATION = re.compile(r"^\s*(theorem|lemma)\s+([^\s:(\"]+)", re.MULTILINE)
_ISABELLE_PROOF_START = re.compile(r"^\s*(proof|by|sorry|oops|using|apply|unfolding|sledgehammer)\b", re.MULTILINE)


# --- shared with `prover eval --mode informal` ---------------------------------------------------------


@contextlib.asynccontextmanager
async def informal_backend(settings: Any, language: str) -> AsyncIterator[tuple[Any, Any]]:
    """(text generator, `SketchBackend`) for `language`, built with `current_backends()`; closed on exit.

    Lean: the settings' Lean env and a tactic generator for the holes over the same text generator
    (one model, one batcher). Isabelle: `build_isabelle(settings.lean.isabelle)`, started here. The
    checker or env comes first: it is the cheaper thing to find missing. A checker that does not start
    is a `UserFacingError` (exit 2).
    """
    backends = current_backends()
    config = settings.informal.to_config()
    if language == "isabelle":
        from lean_env.errors import LeanEnvError
        from prover.informal.isabelle_backend import IsabelleSketchBackend

        checker = backends.build_isabelle(settings.lean.isabelle)
        try:
            await checker.start()
        except (LeanEnvError, OSError, TimeoutError, RuntimeError) as error:
            await _quietly_close(checker)
            raise UserFacingError(f"the Isabelle server did not start: {type(error).__name__}: {error}") from error
        try:
            text = backends.build_text_generator(settings.model)
            try:
                yield text, IsabelleSketchBackend(checker, config)
            finally:
                await text.close()
        finally:
            await checker.close()
        return
    from prover.informal.lean_backend import LeanSketchBackend
    from prover.models import build_generator

    env = backends.build_env(settings.lean)
    try:
        text = backends.build_text_generator(settings.model)
        generator = build_generator(settings.model, text=text)  # closing it closes `text`
        try:
            yield text, LeanSketchBackend(env, generator, settings.search.to_config(), config)
        finally:
            await generator.close()
    finally:
        await env.close()


async def _quietly_close(checker: Any) -> None:
    with contextlib.suppress(Exception):
        await checker.close()


def load_prompts(settings: Any) -> Any:
    """The prompt set `informal.prompts` names, or the default one; a bad file is a `UserFacingError`."""
    from prover.informal.prompts import PromptSet

    if settings.informal.prompts is None:
        return PromptSet.default()
    try:
        return PromptSet.from_file(settings.informal.prompts)
    except (OSError, ValueError) as error:
        raise UserFacingError(f"informal.prompts: {error}") from error


def _failure(result: Any) -> str | None:
    if result.proved:
        return None
    if result.error:
        return str(result.error)
    failures = [attempt.failure for attempt in result.attempts if attempt.failure]
    return "; ".join(f"attempt {a.number}: {a.failure}" for a in result.attempts if a.failure) if failures else None


def informal_record(problem: Any, result: Any, *, started_at: float, finished_at: float, attempts: int) -> Any:
    """The results record of one formalized problem: `proved`, `failed` or `env_error` (`result.error`)."""
    from prover.evaluation.results import EvalRecord

    status = "proved" if result.proved else "env_error" if result.error else "failed"
    proof = result.proof
    return EvalRecord.model_validate(
        {
            "name": problem.name,
            "split": problem.split,
            "category": problem.category or "other",
            "language": problem.language.value,
            "statement_hash": problem.statement_hash,
            "status": status,
            "proved": result.proved,
            "verified": result.proved,
            "proof": proof,
            "failure_reason": _failure(result),
            "stats": {"wall_seconds": result.wall_seconds, "attempts": len(result.attempts)},
            "lean_file": proof,
            "judge": result.judge,
            "header": problem.header,
            "formal_statement": problem.formal_statement,
            "started_at": started_at,
            "finished_at": finished_at,
            "attempts": 1,
            "informal": {**result.to_dict(), "attempts_allowed": attempts},
        }
    )


async def formalize_to_record(problem: Any, text: Any, backend: Any, settings: Any, prompts: Any) -> Any:
    """`formalize` one problem and record it; a model or checker failure becomes an `env_error` record."""
    from lean_env.errors import LeanEnvError
    from prover.informal.pipeline import formalize
    from prover.informal.types import FormalizeResult
    from prover.models.base import GenerationError

    config = settings.informal.to_config()
    started_at, started = time.time(), time.monotonic()
    try:
        result = await formalize(problem, text, backend, config, prompts=prompts)
    except (GenerationError, LeanEnvError, OSError, TimeoutError) as error:
        result = FormalizeResult(
            problem.name, backend.language, (), time.monotonic() - started, error=f"{type(error).__name__}: {error}"
        )
    return informal_record(problem, result, started_at=started_at, finished_at=time.time(), attempts=config.attempts)


# --- reading the problem -------------------------------------------------------------------------------


def _isabelle_from_statement(statement: str, header: str | None) -> Any:
    from lean_env.types import Language, Problem

    match = _ISABELLE_DECLARATION.search(statement)
    if match is None:
        raise UserFacingError('an Isabelle --statement starts `theorem NAME: "..."` (or `lemma`)')
    name = match.group(2)
    return Problem(
        name=name,
        header=header if header is not None else ISABELLE_HEADER.format(name=name),
        formal_statement=statement.strip(),
        language=Language.ISABELLE,
    )


def _isabelle_from_thy(path: Path, name: str) -> Any:
    """The theorem `name` of a theory file: the header up to `begin`, the statement up to its proof."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserFacingError(f"--file: cannot read {path}: {error}") from error
    begin = re.search(r"^\s*begin\s*$", text, re.MULTILINE)
    if begin is None:
        raise UserFacingError(f"--file: {path} has no `begin` line (not an Isabelle theory)")
    for match in _ISABELLE_DECLARATION.finditer(text, begin.end()):
        if match.group(2) != name:
            continue
        start = match.start() + len(match.group(0)) - len(match.group(0).lstrip())
        end = _ISABELLE_PROOF_START.search(text, match.end())
        statement = text[start : end.start() if end else len(text)].rstrip()
        return _isabelle_from_statement(statement, text[: begin.end()] + "\n\n")
    raise UserFacingError(f"--file: {path} has no theorem or lemma named {name!r}")


def _from_jsonl(path: Path, name: str, language: str, policy: Any) -> Any:
    from prover.minif2f.dataset import DatasetError, load_dataset, load_problems

    try:
        try:
            dataset = load_dataset(path, language=language, policy=policy)
        except DatasetError:
            dataset = load_problems(path, language=language, policy=policy)
    except DatasetError as error:
        raise UserFacingError(str(error)) from error
    problem = next((problem for problem in dataset.problems if problem.name == name), None)
    if problem is None:
        raise UserFacingError(f"--file: {path} has no problem named {name!r}")
    return problem


def read_problem(options: dict[str, Any], language: str, policy: Any) -> Any:
    """The problem the flags name, with `--informal`/`--informal-proof` applied; raises `UserFacingError`."""
    from prover.statements import MINIF2F_HEADER, StatementError, theorem_from_file, theorem_from_statement

    statement, file = options["statement"], options["file"]
    if statement is not None and file:
        raise UserFacingError("give either --statement or --file/--name, not both")
    if statement is None and not file:
        raise UserFacingError('nothing to formalize: give --statement "theorem ..." or --file F --name N')
    if file and not options["name"]:
        raise UserFacingError("--file needs --name: the problem to formalize in that file")
    if statement is not None and options["name"]:
        raise UserFacingError("--name only applies with --file, not with --statement")
    try:
        if file and Path(file).suffix == ".jsonl":
            problem = _from_jsonl(Path(file), options["name"], language, policy)
        elif language == "isabelle":
            problem = (
                _isabelle_from_thy(Path(file), options["name"])
                if file
                else _isabelle_from_statement(statement, options["header"])
            )
        elif file:
            problem = theorem_from_file(Path(file), options["name"], policy=policy)
        else:
            header = options["header"] if options["header"] is not None else MINIF2F_HEADER
            problem = theorem_from_statement(statement, header=header, policy=policy)
    except (StatementError, ValueError) as error:
        raise UserFacingError(str(error)) from error
    if problem.language.value != language:
        raise UserFacingError(f"{problem.name} is a {problem.language.value} problem, not {language} (see --lang)")
    update = {
        key: options[flag] for key, flag in (("informal_statement", "informal"), ("informal_proof", "informal_proof"))
    }
    update = {key: value for key, value in update.items() if value is not None}
    return dataclasses.replace(problem, **update) if update else problem


# --- the command ---------------------------------------------------------------------------------------


@click.command(name="formalize")
@click.option("--statement", help='The formal statement, e.g. "theorem t (n : ℕ) : n + 0 = n := by".')
@click.option("--header", help="Text before the statement. Default: the miniF2F header of --lang.")
@click.option(
    "--file",
    "file",
    type=click.Path(),
    help="A Lean file, an Isabelle theory or a JSONL of problems (such as miniF2F's) holding --name.",
)
@click.option("--name", help="The problem's name in --file.")
@click.option(
    "--lang",
    "language",
    type=click.Choice(["lean4", "isabelle"]),
    default="lean4",
    show_default=True,
    help="The formal language.",
)
@click.option("--informal", help="The informal (LaTeX) statement (default: the problem's own, from --file).")
@click.option(
    "--informal-proof", help="The informal proof; without one the model drafts it from the informal statement."
)
@click.option("--attempts", type=click.IntRange(min=1), help="Sketches to try (informal.attempts; default 1).")
@click.option(
    "--show-prompt",
    is_flag=True,
    help="Print the rendered sketch prompt (the draft prompt when there is no informal proof) and exit.",
)
@lean_options
@model_options
@search_options
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def formalize(**options: Any) -> None:
    """Draft, sketch and prove one problem; print the draft, the sketch, each gap's fate and the proof.

    Exits 0 when proved, 1 when no attempt verified, 2 when the input, the settings, the model or the
    checker is missing or malformed, 3 when the model or the checker failed during the work.
    """
    from prover.config import load_settings

    settings = load_settings(
        options["config_file"],
        os.environ,
        settings_overrides(options, informal={"attempts": options["attempts"]}),
    )
    language = options["language"]
    problem = read_problem(options, language, settings.lean.policy)
    prompts = load_prompts(settings)
    if options["show_prompt"]:
        has_proof = bool((problem.informal_proof or "").strip())
        click.echo(prompts.render_for(problem, "sketch" if has_proof else "draft"))
        raise SystemExit(EXIT_PROVED)
    record = asyncio.run(_run(problem, settings, language, prompts))
    informal = record.model_dump()["informal"]
    if options["as_json"]:
        click.echo(json.dumps(informal, ensure_ascii=False, indent=2))
    else:
        _print_human(informal)
    if record.status == "env_error":
        if not options["as_json"]:
            click.echo(f"error: {informal['error']}", err=True)
        raise SystemExit(EXIT_ENVIRONMENT)
    raise SystemExit(EXIT_PROVED if record.proved else EXIT_NOT_PROVED)


async def _run(problem: Any, settings: Any, language: str, prompts: Any) -> Any:
    async with informal_backend(settings, language) as (text, backend):
        return await formalize_to_record(problem, text, backend, settings, prompts)


def _print_human(informal: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for attempt in informal["attempts"]:
        kind = "greedy" if attempt["number"] == 0 else "sampled"
        console.print(f"[bold]attempt {attempt['number']}[/] ({kind})")
        if attempt["draft"] is not None:
            console.print("[bold]draft[/]")
            console.print(attempt["draft"], markup=False, highlight=False)
        console.print("[bold]sketch[/]")
        console.print(attempt["sketch"], markup=False, highlight=False)
        if attempt["gaps"]:
            table = Table(title="gaps")
            for column in ("gap", "method", "closing", "tried", "seconds"):
                table.add_column(column)
            for gap in attempt["gaps"]:
                table.add_row(
                    str(gap["index"]),
                    gap["method"],
                    gap["closing"] if gap["closing"] is not None else "(open)",
                    str(len(gap["tried"])),
                    f"{gap['seconds']:.2f}",
                )
            console.print(table)
        timings = ", ".join(f"{key} {value:.2f} s" for key, value in attempt["timings"].items())
        console.print(f"time: {timings}")
        if attempt["failure"]:
            console.print(attempt["failure"], style="red", markup=False, highlight=False)
    if informal["proof"] is not None:
        console.print(f"[bold green]proved[/] {informal['problem']} ({informal['language']})")
        console.print(informal["proof"], markup=False, highlight=False)
    else:
        reason = informal["error"] or "no attempt verified"
        console.print(f"[bold red]not proved[/] {informal['problem']}: {reason}", highlight=False)

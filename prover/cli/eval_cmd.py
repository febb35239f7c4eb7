"""`prover eval minif2f`: prove a benchmark in batch, many searches at once, resumable, with a summary.

Results stream into `<out>/results.jsonl` (one line per theorem, durable as each finishes) next to
`<out>/manifest.json`. `--resume` skips every theorem already recorded, by name.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from prover.cli.main import UserFacingError
from prover.cli.options import backend_overrides

DEFAULT_MAX_ENV_ERRORS = 20


def _default_dataset() -> Path:
    from prover.lean_setup import MINIF2F_CHECKOUT

    return Path(MINIF2F_CHECKOUT)


def _settings_overrides(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        **backend_overrides(options),
        "eval": {
            "concurrency": options["concurrency"],
            "out_dir": options["out"],
            "executor": options["executor"],
            "ray_address": options["address"],
            "ray_workers": options["ray_workers"],
        },
    }


@click.group(name="eval")
def eval_group() -> None:
    """Evaluate on a benchmark in batch."""


@eval_group.command(name="minif2f")
@click.option(
    "--split", type=click.Choice(["valid", "test", "all"]), default="test", show_default=True, help="Which split."
)
@click.option(
    "--dataset",
    type=click.Path(path_type=Path),
    help="A miniF2F-lean4 checkout or a JSONL file (default: the checkout `prover setup` fetched).",
)
@click.option("--names", "pattern", help="Only names matching these globs, comma-separated (e.g. 'mathd_*,amc*').")
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Only this category (repeatable): mathd_algebra, mathd_numbertheory, amc, aime, imo, induction, "
    "algebra, numbertheory, other.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N selected theorems.")
@click.option("--env", type=click.Choice(["repl", "dojo"]), default=None, help="Lean backend (default repl).")
@click.option("--project-dir", type=click.Path(path_type=Path), help="Lake project to check in (default miniF2F/).")
@click.option(
    "--dojo-repo",
    help="--env dojo: the traced repository (default: the checkout, or the repository named in the JSONL's source).",
)
@click.option("--dojo-commit", help="--env dojo: its commit (default: the checkout's HEAD, or the JSONL's source).")
@click.option("--repl-command", help="Command that starts one REPL process (overrides the built REPL).")
@click.option("--workers", type=click.IntRange(min=1), help="Lean REPL processes (default cores - 1).")
@click.option("--backend", type=click.Choice(["hf", "vllm", "openai"]), default=None, help="Model backend.")
@click.option("--model", help="Model name or local path (default EleutherAI/llemma_7b).")
@click.option("--base-url", multiple=True, help="--backend openai: server base URL (repeat to rotate).")
@click.option("--prompt-format", help="llemma, reprover, or a template file.")
@click.option("--temperature", type=float, help="0 = beam search; > 0 = sampling.")
@click.option(
    "--concurrency", type=click.IntRange(min=1), help="Searches in flight at once (per Ray worker); default 32."
)
@click.option("--expansions", type=click.IntRange(min=1), help="Expansion budget per theorem (default 100).")
@click.option("--samples", type=click.IntRange(min=1), help="Candidates per expansion (default 32).")
@click.option("--timeout", type=float, help="Wall-clock budget per theorem in seconds (default 600).")
@click.option("--tactic-timeout", type=float, help="Timeout of one tactic in seconds (default 5).")
@click.option("--priority", type=click.Choice(["llemma", "reprover"]), help="Node priority scheme.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/latest).")
@click.option("--resume", is_flag=True, help="Continue the run in --out, skipping theorems already recorded.")
@click.option("--force", is_flag=True, help="With --resume: accept a different search budget or model.")
@click.option("--retry-errors", is_flag=True, help="With --resume: attempt again theorems that ended in env_error.")
@click.option(
    "--max-env-errors",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_ENV_ERRORS,
    show_default=True,
    help="Stop after this many infrastructure errors in a row (0: never stop).",
)
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Where searches run.")
@click.option("--address", help="--executor ray: the cluster address (e.g. auto or ray://host:10001).")
@click.option("--ray-workers", type=click.IntRange(min=1), help="--executor ray: workers, each with its own Lean pool.")
@click.option(
    "--ray-generator",
    type=click.Choice(["auto", "node", "worker"]),
    default="auto",
    show_default=True,
    help="--executor ray: one model per node shared by its workers, or one per worker "
    "(auto: per worker for --backend openai, whose server is already shared).",
)
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file.")
@click.option("--no-progress", is_flag=True, help="No live progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the closing summary as one JSON object.")
def minif2f(**options: Any) -> None:
    """Prove miniF2F in batch and print the pass rate overall, per split and per category.

    Exits 0 when every selected theorem has a record, 1 when the run stopped early (too many
    infrastructure errors), 2 for bad input, settings or a missing dependency.
    """
    from prover.config import load_settings
    from prover.evaluation.manifest import ResumeMismatch
    from prover.evaluation.session import RunDirectoryError, prepare_run
    from prover.minif2f.dataset import DatasetError, load_dataset, with_dojo_locations

    if (options["force"] or options["retry_errors"]) and not options["resume"]:
        raise UserFacingError("--force and --retry-errors only apply with --resume")
    settings = load_settings(options["config_file"], os.environ, _settings_overrides(options))
    dataset_path: Path = options["dataset"] or _default_dataset()
    splits = ["valid", "test"] if options["split"] == "all" else [options["split"]]
    selection = {
        "splits": splits,
        "pattern": options["pattern"],
        "categories": list(options["categories"]) or None,
        "limit": options["limit"],
    }
    try:
        dataset = load_dataset(
            dataset_path,
            splits=splits,
            pattern=options["pattern"],
            categories=options["categories"] or None,
            limit=options["limit"],
        )
        if settings.lean.backend == "dojo":
            dataset = with_dojo_locations(dataset, options["dojo_repo"], options["dojo_commit"])
    except DatasetError as error:
        raise UserFacingError(str(error)) from error
    if not len(dataset):
        raise UserFacingError(f"no theorem of {dataset_path} matches the selection {selection}")
    out_dir = settings.eval.out_dir
    try:
        prepared = prepare_run(
            out_dir,
            settings,
            dataset,
            resume=options["resume"],
            force=options["force"],
            retry_errors=options["retry_errors"],
            selection=selection,
            command=sys.argv,
        )
    except (RunDirectoryError, ResumeMismatch) as error:
        raise UserFacingError(str(error)) from error
    for warning in prepared.warnings:
        click.echo(f"warning: {warning}", err=True)
    if prepared.retried:
        click.echo(f"retrying {len(prepared.retried)} theorem(s) that ended in env_error", err=True)
    remaining = [problem for problem in dataset.problems if problem.name not in prepared.skip]
    aborted: str | None = None
    if remaining:
        aborted = _execute(options, settings, dataset, prepared)
    _print_summary(prepared, dataset, options["as_json"])
    if aborted is not None:
        click.echo(f"error: {aborted}\nfix the backend, then rerun with --resume --retry-errors", err=True)
        raise SystemExit(1)


def _execute(options: dict[str, Any], settings: Any, dataset: Any, prepared: Any) -> str | None:
    """Run the searches; returns the abort message when the run stopped early."""
    from prover.evaluation.results import ResultsWriter
    from prover.evaluation.runner import EvalAborted

    max_errors = options["max_env_errors"] or None
    progress = _ProgressObserver(
        title=f"miniF2F {options['split']}", enabled=not options["no_progress"], already_done=len(prepared.skip)
    )
    try:
        with ResultsWriter(prepared.results_path) as writer, progress:
            if settings.eval.executor == "ray":
                asyncio.run(_run_ray(options, settings, dataset, prepared, writer, progress, max_errors))
            else:
                asyncio.run(_run_local(settings, dataset, prepared, writer, progress, max_errors))
    except EvalAborted as error:
        return str(error)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted; finished theorems are saved in {prepared.results_path}. "
            "Run the same command with --resume to continue.",
            err=True,
        )
        raise click.Abort() from None
    return None


async def _run_local(
    settings: Any, dataset: Any, prepared: Any, writer: Any, observer: Any, max_errors: int | None
) -> None:
    from prover import wiring
    from prover.evaluation.runner import run_evaluation

    env = wiring.build_env(settings.lean)  # Lean first: the cheaper thing to find missing
    try:
        generator = wiring.build_generator(settings.model)
        try:
            await run_evaluation(
                dataset.problems,
                env,
                generator,
                settings.search,
                concurrency=settings.eval.concurrency,
                writer=writer,
                skip=prepared.skip,
                observer=observer,
                max_consecutive_env_errors=max_errors,
            )
        finally:
            await generator.close()
    finally:
        await env.close()


async def _run_ray(
    options: dict[str, Any],
    settings: Any,
    dataset: Any,
    prepared: Any,
    writer: Any,
    observer: Any,
    max_errors: int | None,
) -> None:
    from prover import wiring
    from prover.distributed import RayOptions, run_distributed

    mode = options["ray_generator"]
    if mode == "auto":
        mode = "worker" if settings.model.backend == "openai" else "node"
    ray_options = RayOptions(
        address=settings.eval.ray_address,
        workers=settings.eval.ray_workers,
        concurrency_per_worker=settings.eval.concurrency,
        generator_mode=mode,
        generator_num_gpus=0.0 if settings.model.device == "cpu" or settings.model.backend == "openai" else 1.0,
    )
    await run_distributed(
        dataset.problems,
        env_factory=functools.partial(wiring.build_env, settings.lean),
        generator_factory=functools.partial(wiring.build_generator, settings.model),
        search=settings.search.to_config(),
        options=ray_options,
        writer=writer,
        skip=prepared.skip,
        observer=observer,
        max_consecutive_env_errors=max_errors,
    )


def _print_summary(prepared: Any, dataset: Any, as_json: bool) -> None:
    from prover.evaluation.results import read_records
    from prover.evaluation.summary import format_summary, summarize

    selected = set(dataset.names)
    records = [record for record in read_records(prepared.results_path) if record.name in selected]
    summary = summarize(records, expected=len(dataset))
    if as_json:
        payload = {
            "proved": summary.overall.proved,
            "attempted": summary.overall.attempted,
            "expected": summary.expected,
            "rate": summary.overall.rate,
            "by_split": {name: [t.proved, t.attempted] for name, t in summary.by_split.items()},
            "by_category": {c.value: [t.proved, t.attempted] for c, t in summary.by_category.items()},
            "by_status": summary.by_status,
            "results": str(prepared.results_path),
            "manifest": str(prepared.out_dir / "manifest.json"),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    from prover.minif2f.dataset import SPLITS

    present = {problem.split for problem in dataset.problems}
    click.echo(format_summary(summary, title="miniF2F " + "+".join(s for s in SPLITS if s in present)))
    click.echo(f"results: {prepared.results_path}   manifest: {prepared.out_dir / 'manifest.json'}")


class _ProgressObserver:
    """A rich progress bar fed by the runner's callbacks: attempted, proved, rate and ETA."""

    def __init__(self, title: str, enabled: bool, already_done: int) -> None:
        self._title = title
        self._enabled = enabled
        self._already_done = already_done
        self._proved = 0
        self._done = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _ProgressObserver:
        if not self._enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("proved [green]{task.fields[proved]}[/] {task.fields[pct]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(compact=True),
            console=Console(stderr=True),
            speed_estimate_period=600.0,
        )
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def on_start(self, total: int, skipped: int) -> None:
        if self._progress is None:
            return
        self._task = self._progress.add_task(
            self._title,
            total=total + skipped,
            completed=skipped,
            proved=0,
            pct="",
            rate="",
        )

    def on_theorem_start(self, name: str) -> None:
        return None

    def on_theorem_done(self, record: Any) -> None:
        self._done += 1
        self._proved += int(record.proved)
        if self._progress is None or self._task is None:
            return
        task = self._progress.tasks[self._task]
        elapsed = task.elapsed or 0.0
        rate = f"{60 * self._done / elapsed:.1f}/min" if elapsed > 0 else ""
        self._progress.update(
            self._task,
            advance=1,
            proved=self._proved,
            pct=f"({100 * self._proved / self._done:.1f} %)",
            rate=rate,
        )

"""`prover eval`: prove a set of problems in batch, many searches at once, resumable, with a summary.

`prover eval minif2f` reads miniF2F (an upstream checkout or its JSONL); `prover eval jsonl` reads a
user's own JSONL of problems. Both run the same pipeline: resolve the settings, select the problems,
open the run directory (`prepare_run`), run the searches locally or on Ray, print the summary.

Results stream into `<out>/results.jsonl` (one line per problem, durable as each finishes) next to
`<out>/manifest.json`. `--resume` skips every problem already recorded with the same statement.

Formal mode: `--attempts K` runs up to K searches of each problem, attempt i with seed `--seed + i`
on every generation request, stopping at the first proof (pass@k; each record lists its attempts
under `search_attempts`). `--seed` is `model.seed` (and `informal.seed`): it seeds the backend's
sampler, the server's `seed` and the retry jitter, and is recorded in the manifest.
`--export-trees DIR` writes each problem's search graph to `DIR/<name>.json` (`prover tree` draws it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    stack_options,
    warn_about_sampling,
)

DEFAULT_MAX_ENV_ERRORS = 20
EXIT_ENVIRONMENT = 3
"""Exit status when Lean or the model failed (the run stopped early, or every problem ended in env_error)."""

selection_options = stack_options(
    click.option("--names", "pattern", help="Only names matching these globs, comma-separated (e.g. 'mathd_*,amc*')."),
    click.option(
        "--category",
        "categories",
        multiple=True,
        help="Only this category (repeatable): mathd_algebra, mathd_numbertheory, amc, aime, imo, induction, "
        "algebra, numbertheory, other.",
    ),
    click.option("--limit", type=click.IntRange(min=1), help="Only the first N selected problems."),
    click.option(
        "--language",
        type=click.Choice(["lean4", "isabelle"]),
        default=None,
        help="Language of records without a `language` field (default lean4).",
    ),
)
dojo_options = stack_options(
    click.option(
        "--dojo-repo",
        help="--env dojo: the traced repository (default: the checkout, or the repository named in the JSONL's "
        "source).",
    ),
    click.option("--dojo-commit", help="--env dojo: its commit (default: the checkout's HEAD, or the JSONL's source)."),
)
run_options = stack_options(
    click.option(
        "--concurrency", type=click.IntRange(min=1), help="Searches in flight at once (per Ray worker); default 32."
    ),
    click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/latest)."),
    click.option("--resume", is_flag=True, help="Continue the run in --out, skipping problems already recorded."),
    click.option("--force", is_flag=True, help="With --resume: accept a different search budget or model."),
    click.option("--retry-errors", is_flag=True, help="With --resume: attempt again problems that ended in env_error."),
    click.option(
        "--max-env-errors",
        type=click.IntRange(min=0),
        default=DEFAULT_MAX_ENV_ERRORS,
        show_default=True,
        help="Stop after this many infrastructure errors in a row (0: never stop).",
    ),
    click.option("--no-progress", is_flag=True, help="No live progress bar."),
    click.option("--json", "as_json", is_flag=True, help="Print the closing summary as one JSON object."),
)
informal_options = stack_options(
    click.option(
        "--mode",
        type=click.Choice(["formal", "informal"]),
        default="formal",
        show_default=True,
        help="formal: best-first search on each statement; informal: draft, sketch and prove (`prover formalize`).",
    ),
    click.option(
        "--lang",
        type=click.Choice(["lean4", "isabelle"]),
        default=None,
        help="--mode informal: the formal language (default lean4; also the language of records without one).",
    ),
    click.option(
        "--attempts",
        type=click.IntRange(min=1),
        help="Formal: up to K searches per problem, seeds --seed, --seed+1, ..., stopping at the first proof "
        "(pass@k). --mode informal: sketches per problem. Default 1.",
    ),
    click.option(
        "--seed",
        type=click.IntRange(min=0),
        help="Seed of every random source: sampling, the server's seed, retry jitter (default 0; in the manifest).",
    ),
    click.option(
        "--export-trees",
        type=click.Path(file_okay=False, path_type=Path),
        help="Write each problem's search tree to DIR/<name>.json (draw one with `prover tree`).",
    ),
)
executor_options = stack_options(
    click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Where searches run."),
    click.option("--address", help="--executor ray: the cluster address (e.g. auto or ray://host:10001)."),
    click.option(
        "--ray-workers", type=click.IntRange(min=1), help="--executor ray: workers, each with its own Lean pool."
    ),
    click.option(
        "--ray-generator",
        type=click.Choice(["auto", "node", "worker"]),
        default="auto",
        show_default=True,
        help="--executor ray: one model per node shared by its workers, or one per worker "
        "(auto: per worker for --backend openai, whose server is already shared).",
    ),
)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which problems a run covers: the data file or checkout and the filters applied to it."""

    path: Path
    splits: list[str] | None
    pattern: str | None
    categories: list[str] | None
    limit: int | None
    language: str | None

    def filters(self) -> dict[str, Any]:
        """The filters as recorded in the manifest (and compared on resume)."""
        return {"splits": self.splits, "pattern": self.pattern, "categories": self.categories, "limit": self.limit}


@dataclass(frozen=True, slots=True)
class Loaded:
    """The selected problems, and where each lives for LeanDojo (empty for the REPL)."""

    dataset: Any
    locations: dict[str, Any] = field(default_factory=dict)


def _settings_overrides(options: dict[str, Any]) -> dict[str, Any]:
    informal = options["mode"] == "informal"
    return settings_overrides(
        options,
        eval={
            "concurrency": options["concurrency"],
            "out_dir": options["out"],
            "executor": options["executor"],
            "ray_address": options["address"],
            "ray_workers": options["ray_workers"],
        },
        model={"seed": options["seed"]},
        informal={"attempts": options["attempts"] if informal else None, "seed": options["seed"]},
    )


@click.group(name="eval")
def eval_group() -> None:
    """Evaluate on a benchmark in batch."""


def _common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    stacked = stack_options(
        selection_options,
        lean_options,
        dojo_options,
        model_options,
        search_options,
        run_options,
        informal_options,
        executor_options,
        settings_options,
    )
    return stacked(function)


@eval_group.command(name="minif2f")
@click.option(
    "--split", type=click.Choice(["valid", "test", "all"]), default="test", show_default=True, help="Which split."
)
@click.option(
    "--dataset",
    type=click.Path(path_type=Path),
    help="A miniF2F-lean4 checkout or a JSONL file (default: the checkout `prover setup` fetched).",
)
@_common_options
def minif2f(**options: Any) -> None:
    """Prove miniF2F in batch and print the pass rate overall, per split and per category.

    Exits 0 when every selected problem has a record, 2 for bad input, settings, a missing
    dependency, or Lean or the model not answering before the first problem, 3 when the environment
    failed during the run (too many infrastructure errors in a row, or every problem ended in one).
    """
    from prover.minif2f.dataset import load_dataset

    settings = _resolve_settings(options)
    default = _default_dataset(settings.lean.data_dir)
    splits = ["valid", "test"] if options["split"] == "all" else [options["split"]]
    selection = _selection(options, options["dataset"] or default, splits)
    _evaluate(options, settings, selection, load_dataset, title="miniF2F")


@eval_group.command(name="jsonl")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--split", "splits", multiple=True, help="Only problems of this split (repeatable; default all).")
@_common_options
def jsonl(**options: Any) -> None:
    """Prove the problems of a JSONL file (one `{"name", "formal_statement", "header"?, ...}` a line).

    Same run directory, resume, progress, summary and exit codes as `prover eval minif2f`.
    """
    from prover.minif2f.dataset import load_problems

    settings = _resolve_settings(options)
    selection = _selection(options, options["dataset"], list(options["splits"]) or None)
    _evaluate(options, settings, selection, load_problems, title=Path(options["dataset"]).stem)


def _resolve_settings(options: dict[str, Any]) -> Any:
    from prover.config import load_settings

    if (options["force"] or options["retry_errors"]) and not options["resume"]:
        raise UserFacingError("--force and --retry-errors only apply with --resume")
    if options["mode"] != "informal" and options["lang"]:
        raise UserFacingError("--lang only applies with --mode informal")
    if options["mode"] == "informal" and options["export_trees"]:
        raise UserFacingError("--export-trees applies to --mode formal (best-first search) only")
    settings = load_settings(options["config_file"], os.environ, _settings_overrides(options))
    formal_extras = (options["attempts"] or 1) > 1 or options["export_trees"]
    if settings.eval.executor == "ray" and options["mode"] != "informal" and formal_extras:
        raise UserFacingError("--attempts above 1 and --export-trees run locally only (use --executor local)")
    if options["mode"] != "informal" and (options["attempts"] or 1) > 1 and settings.model.temperature == 0:
        click.echo(
            "warning: --attempts with temperature 0 repeats the same deterministic search; "
            "give --temperature > 0 for independent attempts",
            err=True,
        )
    if options["mode"] != "informal":
        warn_about_sampling(settings)
    return settings


def _default_dataset(data_dir: Path | None) -> Path:
    from prover.lean_setup import minif2f_checkout

    assert data_dir is not None, "load_settings fills in lean.data_dir"
    return minif2f_checkout(data_dir)


def _selection(options: dict[str, Any], path: Path, splits: list[str] | None) -> Selection:
    return Selection(
        path=Path(path),
        splits=splits,
        pattern=options["pattern"],
        categories=list(options["categories"]) or None,
        limit=options["limit"],
        language=options["language"] or (options["lang"] if options["mode"] == "informal" else None),
    )


def _evaluate(
    options: dict[str, Any], settings: Any, selection: Selection, loader: Callable[..., Any], *, title: str
) -> None:
    """Select, open the run directory, run what is left, print the summary; exits 1 on an abort."""
    loaded = _load(selection, settings, options, loader)
    if options["mode"] == "informal":
        _check_informal(options, settings, loaded)
    with _run_directory_lock(settings.eval.out_dir):
        prepared = _prepare(options, settings, selection, loaded.dataset)
        remaining = [problem for problem in loaded.dataset.problems if problem.name not in prepared.skip]
        if prepared.skip and remaining:
            click.echo(f"resuming: {len(prepared.skip)} recorded, {len(remaining)} to go", err=True)
        aborted = _execute(options, settings, loaded, prepared, title) if remaining else None
        records = _recorded(prepared, loaded.dataset)  # read once, after the run, for the summary and exit status
        _print_summary(prepared, records, loaded.dataset, options["as_json"], title)
        new = [record for record in records if record.name not in prepared.skip]
    if aborted is not None:
        click.echo(f"error: {aborted}\nfix the backend, then rerun with --resume --retry-errors", err=True)
        raise SystemExit(EXIT_ENVIRONMENT)
    if new and all(record.status == "env_error" for record in new):
        click.echo(
            f"error: all {len(new)} problem(s) of this run ended in an environment error; "
            "fix the backend, then rerun with --resume --retry-errors",
            err=True,
        )
        raise SystemExit(EXIT_ENVIRONMENT)


@contextlib.contextmanager
def _run_directory_lock(out_dir: Path) -> Iterator[None]:
    """Hold the run directory for this run; a second run on it is refused, naming the first one's pid."""
    from prover.evaluation.session import RunDirectoryError, RunLock

    try:
        lock = RunLock(out_dir)
        lock.__enter__()
    except RunDirectoryError as error:
        raise UserFacingError(str(error)) from error
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _load(selection: Selection, settings: Any, options: dict[str, Any], loader: Callable[..., Any]) -> Loaded:
    from prover.minif2f.dataset import DatasetError, dojo_locations

    try:
        dataset = loader(
            selection.path,
            splits=selection.splits,
            pattern=selection.pattern,
            categories=selection.categories,
            limit=selection.limit,
            language=selection.language,
            policy=settings.lean.policy,
        )
        locations = {}
        if settings.lean.backend == "dojo":
            locations = dojo_locations(dataset, options["dojo_repo"], options["dojo_commit"])
    except DatasetError as error:
        raise UserFacingError(str(error)) from error
    if not len(dataset):
        raise UserFacingError(f"no problem of {selection.path} matches the selection {selection.filters()}")
    return Loaded(dataset, locations)


def _prepare(options: dict[str, Any], settings: Any, selection: Selection, dataset: Any) -> Any:
    from prover.evaluation.manifest import ResumeMismatch
    from prover.evaluation.session import RunDirectoryError, prepare_run

    try:
        prepared = prepare_run(
            settings.eval.out_dir,
            settings,
            dataset,
            resume=options["resume"],
            force=options["force"],
            retry_errors=options["retry_errors"],
            selection={
                **selection.filters(),
                "mode": _run_mode(options, settings),
                "export_trees": options["export_trees"].resolve() if options["export_trees"] else None,
            },
            command=sys.argv,
        )
    except (RunDirectoryError, ResumeMismatch) as error:
        raise UserFacingError(str(error)) from error
    for warning in prepared.warnings:
        click.echo(f"warning: {warning}", err=True)
    if prepared.retried:
        click.echo(f"retrying {len(prepared.retried)} problem(s) that ended in env_error", err=True)
    return prepared


def _execute(options: dict[str, Any], settings: Any, loaded: Loaded, prepared: Any, title: str) -> str | None:
    """Run the searches; returns the abort message when the run stopped early."""
    from prover.evaluation.results import ResultsWriter
    from prover.evaluation.runner import EvalAborted

    max_errors = options["max_env_errors"] or None
    run = _run_ray if settings.eval.executor == "ray" else _run_local
    recorded = _recorded(prepared, loaded.dataset)
    progress = ProgressDisplay(
        title=_run_label(loaded.dataset, title),
        enabled=not options["no_progress"],
        recorded_proved=sum(record.proved for record in recorded),
    )
    try:
        with ResultsWriter(prepared.results_path) as writer, progress:
            asyncio.run(run(Execution(options, settings, loaded, prepared, writer, progress, max_errors)))
    except EvalAborted as error:
        return str(error)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted; finished problems are saved in {prepared.results_path}. "
            "Run the same command with --resume to continue.",
            err=True,
        )
        raise click.Abort() from None
    return None


def _env_builder(settings: Any, loaded: Loaded) -> Callable[[], Any]:
    """Builds the run's Lean backend (picklable, for Ray workers): the settings' backend, with locations."""
    backends = current_backends()
    if loaded.locations:
        return functools.partial(backends.build_env, settings.lean, dojo_locations=loaded.locations)
    return functools.partial(backends.build_env, settings.lean)


def _run_mode(options: dict[str, Any], settings: Any) -> dict[str, Any]:
    """What the manifest records of the mode (`check_resume` refuses to mix modes without --force)."""
    if options["mode"] != "informal":
        attempts = options["attempts"] or 1
        # A single attempt records no count, so runs recorded before --attempts existed resume as they were.
        return {"mode": "formal", "attempts": attempts} if attempts > 1 else {"mode": "formal"}
    return {"mode": "informal", "lang": options["lang"] or "lean4", "attempts": settings.informal.attempts}


def _check_informal(options: dict[str, Any], settings: Any, loaded: Loaded) -> None:
    language = options["lang"] or "lean4"
    if settings.eval.executor == "ray":
        raise UserFacingError("--mode informal runs locally only (use --executor local)")
    if language == "lean4" and settings.lean.backend != "repl":
        raise UserFacingError("--mode informal checks Lean sketches with the REPL backend (--env repl)")
    other = sorted({problem.name for problem in loaded.dataset.problems if problem.language.value != language})
    if other:
        raise UserFacingError(
            f"--lang {language}: {len(other)} selected problem(s) are in another language (e.g. {other[0]}); "
            "give --lang to match the data (or --language for records without a language)"
        )


@dataclass(frozen=True, slots=True)
class Execution:
    """Everything one run of the searches needs, local or on Ray."""

    options: dict[str, Any]
    settings: Any
    loaded: Loaded
    prepared: Any
    writer: Any
    events: Any
    max_errors: int | None


async def _run_informal(run: Execution) -> None:
    """`--mode informal`: `formalize` each problem over one model and one checker, through `run_problems`."""
    from prover.cli.formalize_cmd import formalize_to_record, informal_backend, load_prompts
    from prover.evaluation.runner import run_problems

    settings = run.settings
    prompts = load_prompts(settings)
    concurrency = settings.eval.concurrency if run.options["concurrency"] else settings.informal.max_concurrent_problems
    async with informal_backend(settings, run.options["lang"] or "lean4") as (text, backend):

        async def attempt(problem: Any) -> Any:
            return await formalize_to_record(problem, text, backend, settings, prompts)

        await run_problems(
            run.loaded.dataset.problems,
            attempt,
            concurrency=concurrency,
            writer=run.writer,
            skip=run.prepared.skip,
            events=run.events,
            max_consecutive_env_errors=run.max_errors,
        )


async def _run_local(run: Execution) -> None:
    from prover.evaluation.runner import run_evaluation

    if run.options["mode"] == "informal":
        await _run_informal(run)
        return

    env = _env_builder(run.settings, run.loaded)()  # Lean first: the cheaper thing to find missing
    try:
        generator = current_backends().build_generator(run.settings.model)
        try:
            pending = [problem for problem in run.loaded.dataset.problems if problem.name not in run.prepared.skip]
            await _preflight(env, generator, pending[0])
            await run_evaluation(
                run.loaded.dataset.problems,
                env,
                generator,
                run.settings.search,
                concurrency=run.settings.eval.concurrency,
                writer=run.writer,
                skip=run.prepared.skip,
                events=run.events,
                max_consecutive_env_errors=run.max_errors,
                attempts=run.options["attempts"] or 1,
                seed=run.settings.model.seed,
                tree_dir=run.options["export_trees"],
            )
        finally:
            await generator.close()
    finally:
        await env.close()


async def _preflight(env: Any, generator: Any, problem: Any) -> None:
    from prover.preflight import PreflightError, preflight

    try:
        await preflight(env, generator, problem)
    except PreflightError as error:
        raise UserFacingError(str(error)) from error


async def _run_ray(run: Execution) -> None:
    from prover.distributed import RayOptions, run_distributed

    settings = run.settings
    mode = run.options["ray_generator"]
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
        run.loaded.dataset.problems,
        env_factory=_env_builder(settings, run.loaded),
        generator_factory=functools.partial(current_backends().build_generator, settings.model),
        search=settings.search.to_config(),
        options=ray_options,
        writer=run.writer,
        skip=run.prepared.skip,
        events=run.events,
        max_consecutive_env_errors=run.max_errors,
    )


def _recorded(prepared: Any, dataset: Any) -> list[Any]:
    """The records of the run directory that belong to the selected problems."""
    from prover.evaluation.results import read_records

    if not prepared.results_path.exists():
        return []
    selected = set(dataset.names)
    return [record for record in read_records(prepared.results_path) if record.name in selected]


def _run_label(dataset: Any, title: str) -> str:
    """`miniF2F test`, `miniF2F valid+test`: the same name in the progress bar and the summary."""
    from prover.minif2f.dataset import SPLITS

    present = {problem.split for problem in dataset.problems}
    splits = "+".join(split for split in SPLITS if split in present)
    return f"{title} {splits}".strip()


def _print_summary(prepared: Any, records: list[Any], dataset: Any, as_json: bool, title: str) -> None:
    from prover.evaluation.summary import format_summary, summarize

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
            "invalid_statements": summary.invalid_statements,
            "env_errors": summary.env_errors,
            "results": str(prepared.results_path),
            "manifest": str(prepared.out_dir / "manifest.json"),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(format_summary(summary, title=_run_label(dataset, title)))
    click.echo(f"results: {prepared.results_path}   manifest: {prepared.out_dir / 'manifest.json'}")


class ProgressDisplay:
    """A rich progress bar on standard error, fed by the evaluation's event stream.

    It is an event listener: `EvaluationStarted` sets the total (problems already recorded, on a
    resume, count as done, and `recorded_proved` of them as proved), each `ProblemFinished` advances
    the bar and the proved count; every other event is ignored. So the bar ends where the summary
    does.
    """

    def __init__(self, title: str, enabled: bool, recorded_proved: int = 0, console: Any = None) -> None:
        self._console = console
        self._handlers: list[tuple[Any, Any]] = []
        self._title = title
        self._enabled = enabled
        self._proved = recorded_proved
        self._done = 0
        self._new = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressDisplay:
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
            console=self._console if self._console is not None else Console(stderr=True),
            speed_estimate_period=600.0,
        )
        self._progress.__enter__()
        self._route_logs(self._progress.console)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
        for handler, console in self._handlers:
            handler.console = console
        self._handlers = []

    def _route_logs(self, console: Any) -> None:
        """Log lines go through the bar's own console while it is shown: printed above the bar, never into it."""
        import logging

        from rich.logging import RichHandler

        for handler in logging.getLogger().handlers:
            if isinstance(handler, RichHandler):
                self._handlers.append((handler, handler.console))
                handler.console = console

    def __call__(self, event: object) -> None:
        from prover.evaluation.events import EvaluationStarted, ProblemFinished

        if isinstance(event, EvaluationStarted):
            self._started(event.total, event.skipped)
        elif isinstance(event, ProblemFinished):
            self._finished(bool(event.record.proved))

    def _started(self, total: int, skipped: int) -> None:
        if self._progress is None:
            return
        self._done = skipped
        pct = f"({100 * self._proved / skipped:.1f} %)" if skipped else ""
        self._task = self._progress.add_task(
            self._title, total=total + skipped, completed=skipped, proved=self._proved, pct=pct, rate=""
        )

    def _finished(self, proved: bool) -> None:
        self._done += 1
        self._new += 1
        self._proved += int(proved)
        if self._progress is None or self._task is None:
            return
        task = self._progress.tasks[self._task]
        elapsed = task.elapsed or 0.0
        rate = f"{60 * self._new / elapsed:.1f}/min" if elapsed > 0 else ""
        self._progress.update(
            self._task,
            advance=1,
            proved=self._proved,
            pct=f"({100 * self._proved / self._done:.1f} %)",
            rate=rate,
        )

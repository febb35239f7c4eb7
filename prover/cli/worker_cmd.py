"""`prover worker`: run jobs from a job store on this machine, with its own Lean and model, and no HTTP.

Several workers (on several machines, with PostgreSQL) and `prover serve` share one store; each worker
claims queued jobs, runs them and reports their events through the store only. SIGINT or SIGTERM
stops the worker: its running jobs are left `running` and come back to the queue when their lease
expires (or at once, when a server or worker starts again on this host).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

import click

from prover.cli.main import UserFacingError, current_backends
from prover.cli.options import model_options, search_options, settings_options, settings_overrides
from prover.cli.serve_cmd import demo_backends, serve_lean_options

logger = logging.getLogger(__name__)


@click.command(name="worker")
@click.option(
    "--db",
    "database_url",
    help="SQLAlchemy URL of the job store (service.database_url), e.g. postgresql+psycopg://user:pass@host/db. "
    "Default: SQLite at <home>/service/jobs.sqlite.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Jobs run at once (service.workers; default 4).")
@click.option(
    "--demo",
    is_flag=True,
    help="Use `prover demo`'s stand-ins (REPL stand-in as Lean, a scripted model), like `prover serve --demo`.",
)
@click.option("--demo-latency-ms", type=click.FloatRange(min=0), default=0.0, help="--demo: delay of each REPL reply.")
@serve_lean_options
@model_options
@search_options
@settings_options
def worker(**options: Any) -> None:
    """Claim and run prove, verify and formalize jobs from a job store until SIGINT or SIGTERM.

    The jobs run with this worker's settings: its search budgets are the jobs' defaults and its
    `[service.limits]` cap what a job may ask for.
    """
    from prover.config import load_settings

    # `--workers` is the service's (jobs run at once), as in `prover serve`; the REPL pool is `--lean-workers`.
    flags = {**options, "workers": options["lean_workers"]}
    extra: dict[str, dict[str, Any]] = {
        "service": {"database_url": options["database_url"], "workers": options["workers"]}
    }
    backends = current_backends()
    if options["demo"]:
        backends, demo_overrides = demo_backends(backends, options["demo_latency_ms"], options["lean_workers"])
        extra.update(demo_overrides)
    settings = load_settings(options["config_file"], os.environ, settings_overrides(flags, **extra))
    if settings.service.workers < 1:
        raise UserFacingError("service.workers is 0: a worker must run at least one job at a time (--workers)")
    asyncio.run(_run(settings, backends, demo=options["demo"]))


def _open_store(settings: Any) -> Any:
    from prover.service.store import JobStore, settings_database_url

    try:
        store = JobStore(settings_database_url(settings))
        store.migrate()
    except ValueError as error:
        raise UserFacingError(f"--db: {error}") from error
    return store


async def _run(settings: Any, backends: Any, *, demo: bool = False) -> None:
    from prover.service.runner import JobRunner

    store = _open_store(settings)
    try:
        env = backends.build_env(settings.lean)  # Lean first: the cheaper thing to find missing
        try:
            if demo:  # the demo's tactic generator carries its scripted text generator
                generator = backends.build_generator(settings.model)
                text = generator.text
            else:
                text = backends.build_text_generator(settings.model)
                from prover.models import build_generator

                generator = build_generator(settings.model, text=text)  # closing it closes `text`
            try:
                runner = JobRunner(
                    store, settings, env=env, generator=generator, text=text, workers=settings.service.workers
                )
                await runner.start()
                click.echo(
                    f"worker {runner.worker_prefix}: {settings.service.workers} job(s) at once from {store!r}; "
                    "Ctrl-C to stop",
                    err=True,
                )
                try:
                    await _until_signalled()
                finally:
                    await runner.stop()
            finally:
                await generator.close()
        finally:
            await env.close()
    finally:
        store.close()


async def _until_signalled() -> None:
    """Return on the first SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stopped.set)
            installed.append(signum)
    try:
        await stopped.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    logger.info("worker stopping: running jobs stay running until their lease expires")

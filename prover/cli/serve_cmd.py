"""`prover serve`: the HTTP job service (`prover.service.app.create_app`) under uvicorn.

`--demo` serves with the stand-ins `prover demo` uses (the REPL stand-in as Lean, a scripted model),
so the service, its web page, a client or a load test can run end to end on a box without Lean or a
model; its problems are `prover.demo.STATEMENTS` (`mathd_algebra_1` and `mathd_numbertheory_2` are
provable, `amc12a_2000_p3` is not, `imo_1959_p1` is a cheat the re-check rejects).
`--demo-latency-ms` slows every REPL reply, to make jobs last long enough to watch or cancel.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from prover.cli.main import UserFacingError, current_backends
from prover.cli.options import lean_option_group, model_options, search_options, settings_options, settings_overrides

# `--workers` is the service's (jobs run at once), so the REPL pool's size is `--lean-workers` here.
serve_lean_options = lean_option_group("--lean-workers")


@click.command(name="serve")
@click.option("--host", help="Address to listen on (default 127.0.0.1; others need [[service.tokens]]).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default 8000).")
@click.option("--db", "database_url", metavar="URL", help="Job store URL (default SQLite under <home>/service).")
@click.option("--workers", type=click.IntRange(min=0), help="Jobs run at once in this process (0: none).")
@click.option("--hash-token", metavar="TOKEN", help="Print TOKEN's sha256 for [[service.tokens]] and exit.")
@click.option(
    "--demo",
    is_flag=True,
    help="Use `prover demo`'s stand-ins (REPL stand-in as Lean, a scripted model): no Lean or model needed.",
)
@click.option("--demo-latency-ms", type=click.FloatRange(min=0), default=0.0, help="--demo: delay of each REPL reply.")
@serve_lean_options
@model_options
@search_options
@settings_options
def serve(**options: Any) -> None:
    """Serve the job API (/v1), the live page (/), /health, /ready and /metrics."""
    if options["hash_token"] is not None:
        from prover.service.settings import hash_token

        if not options["hash_token"]:
            raise UserFacingError("--hash-token: the token is empty")
        click.echo(hash_token(options["hash_token"]))
        return
    from prover.config import load_settings

    backends = current_backends()
    service = {
        "host": options["host"],
        "port": options["port"],
        "database_url": options["database_url"],
        "workers": options["workers"],
    }
    flags = {**options, "workers": options["lean_workers"]}
    extra: dict[str, dict[str, Any]] = {"service": service}
    if options["demo"]:
        backends, demo_overrides = demo_backends(backends, options["demo_latency_ms"], options["lean_workers"])
        extra.update(demo_overrides)
    settings = load_settings(options["config_file"], os.environ, settings_overrides(flags, **extra))
    _run(settings, backends)


def demo_backends(
    backends: Any, latency_ms: float, lean_workers: int | None = None
) -> tuple[Any, dict[str, dict[str, Any]]]:
    """`prover demo`'s backends and the settings they need (the REPL stand-in's command, sampling);
    `lean_workers` REPL stand-ins (default 2)."""
    import dataclasses

    from prover.demo import build_demo_generator, write_world

    world = write_world(Path(tempfile.mkdtemp(prefix="prover-serve-demo-")))
    command = world.repl_argv() + (["--latency-ms", f"{latency_ms:g}"] if latency_ms else [])
    chosen = dataclasses.replace(backends, build_generator=functools.partial(build_demo_generator, str(world.table)))
    overrides: dict[str, dict[str, Any]] = {
        "lean": {
            "backend": "repl",
            "repl": {"command": command, "workers": lean_workers or 2},
            "comparator": {"enabled": "off"},
        },
        "model": {"temperature": 1.0},
        "search": {"samples": 4},
    }
    return chosen, overrides


def _run(settings: Any, backends: Any) -> None:
    import uvicorn

    from prover.service.app import create_app
    from prover.service.auth import ExposureError

    try:
        app = create_app(settings, backends=backends)
    except ExposureError as error:
        raise UserFacingError(str(error)) from error
    service = settings.service
    click.echo(f"prover serve: http://{service.host}:{service.port}/ (API docs at /docs)", err=True)
    uvicorn.run(app, host=service.host, port=service.port, log_level="info", access_log=False)

"""The `prover` command. Subcommands live in their own modules and are imported only when invoked,
so `prover --help` and `prover --version` work on a bare CPU box without torch or Lean.

Expected failures (a missing toolchain or model, bad settings, a malformed statement) print one
clear message and exit with status 2; nothing the user can fix ends in a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from prover import __version__

# name -> (module, attribute, one-line help shown by `prover --help` without importing the module)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "prove": ("prover.cli.prove", "prove", "Attempt one theorem with best-first search."),
    "eval": ("prover.cli.eval_cmd", "eval_group", "Evaluate on a benchmark (miniF2F) in batch."),
    "formalize": (
        "prover.cli.formalize_cmd",
        "formalize",
        "Draft, sketch and prove one problem from its informal proof (Lean 4 or Isabelle).",
    ),
    "report": ("prover.cli.report_cmd", "report", "Write report.md and plots for one run or compare two."),
    "setup": ("prover.cli.setup_cmd", "setup", "Install or find elan, Lean, the REPL, Mathlib and the data."),
    "doctor": (
        "prover.cli.setup_cmd",
        "doctor",
        "Report what is installed: Lean, the REPL, LeanDojo, GPUs, vLLM.",
    ),
    "config": ("prover.cli.config_cmd", "config_group", "Show the resolved settings, or list every PROVER_* variable."),
    "demo": (
        "prover.cli.demo_cmd",
        "demo",
        "Run a small world end to end with the shipped REPL and model stand-ins (no Lean needed).",
    ),
    "tree": (
        "prover.cli.tree_cmd",
        "tree",
        "Draw one theorem's search tree (SVG or PNG) from a run's exported trees.",
    ),
    "serve": ("prover.cli.serve_cmd", "serve", "Serve the job API, the live page and /metrics over HTTP."),
    "verify": (
        "prover.cli.verify_cmd",
        "verify",
        "Re-check recorded proofs (a run directory or a JSONL of pairs) with the strongest judge.",
    ),
    "worker": ("prover.cli.worker_cmd", "worker", "Run queued service jobs from a job store (no HTTP)."),
}

EXIT_USAGE = 2


class UserFacingError(click.ClickException):
    """An error the user can fix; printed as one message, exit status 2."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, short_help = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            return _unavailable(cmd_name, short_help)
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, short_help: str) -> click.Command:
    @click.command(name=name, help=short_help)
    def command() -> None:
        raise UserFacingError(f"`prover {name}` is not part of this installation")

    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="prover")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Prove Lean 4 theorems with Llemma: best-first tactic search, a pooled Lean REPL, and a
    whole-file re-check of every proof before it is reported."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    from rich.console import Console
    from rich.logging import RichHandler

    # Logs go to standard error: standard output carries only results (`prove --json | jq` must parse).
    handler = RichHandler(console=Console(stderr=True), show_path=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


def current_backends() -> Any:
    """The `prover.wiring.Backends` the running command builds Lean and the model with.

    Those given to `main(backends=...)`, else the real ones.
    """
    context = click.get_current_context(silent=True)
    given = context.find_root().obj if context is not None else None
    if given is not None:
        return given
    from prover.wiring import Backends

    return Backends()


def main(argv: list[str] | None = None, *, backends: Any = None) -> None:
    """Console entry point; turns the expected failures into exit status 2 with one message.

    `backends` (a `prover.wiring.Backends`) replaces the real Lean and model builders, for tests
    and programs that embed the CLI.
    """
    from lean_env.errors import MissingDependency
    from prover.config import SettingsError

    try:
        cli.main(args=argv, prog_name="prover", standalone_mode=False, obj=backends)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except MissingDependency as error:
        click.echo(f"error: {error.what} is not available.\n{error.how}", err=True)
        sys.exit(EXIT_USAGE)
    except SettingsError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":  # pragma: no cover
    main()

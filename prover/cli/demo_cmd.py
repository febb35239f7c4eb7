"""`prover demo`: the whole product on a small world, without Lean or a model (see `prover.demo`).

It runs what `prover eval jsonl` runs (real settings, runner, REPL client and pool, search,
whole-file re-check, results file), with the REPL stand-in as the Lean REPL and a scripted text
generator as the model, then prints one proof and the rejected cheat, and writes the report.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

import click

from prover.cli.main import UserFacingError


@click.command(name="demo")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write the run (an empty or new directory; default a fresh temporary one).",
)
@click.option("--no-progress", is_flag=True, help="No live progress bar.")
def demo(out: Path | None, no_progress: bool) -> None:
    """Run four problems end to end with the shipped REPL and model stand-ins: progress, a proof, a
    rejected cheat and a report, in seconds, before installing Lean."""
    from prover.cli.main import cli
    from prover.demo import CHEAT, write_world
    from prover.demo import build_demo_generator as build_generator
    from prover.wiring import Backends

    if out is None:
        out = Path(tempfile.mkdtemp(prefix="prover-demo-"))
    elif out.exists() and any(out.iterdir()):
        raise UserFacingError(f"{out} is not empty: give `prover demo --out` a new or empty directory")
    out = out.resolve()
    world = write_world(out / "inputs")
    run = out / "run"
    click.echo("prover demo: 4 problems, the REPL stand-in as Lean, a scripted model (nothing to install)")
    click.echo(f"  problems: {world.dataset}\n")
    started = time.monotonic()
    backends = Backends(build_generator=functools.partial(build_generator, str(world.table)))
    argv = ["eval", "jsonl", str(world.dataset), "--out", str(run), "--concurrency", "4"]
    argv += ["--repl-command", world.repl_command(), "--workers", "2"]
    argv += ["--samples", "4", "--temperature", "1.0", "--expansions", "8", "--timeout", "60"]
    argv += ["--no-progress"] if no_progress else []
    cli.main(args=argv, prog_name="prover", standalone_mode=False, obj=backends)

    from prover.evaluation.results import RESULTS_FILE, read_records

    records = read_records(run / RESULTS_FILE)
    proved = next((record for record in records if record.proved and len(record.tactics) > 1), None)
    proved = proved or next((record for record in records if record.proved), None)
    if proved is not None:
        click.echo(f"\nA proof ({proved.name}, judge: {proved.judge}), re-checked by the REPL as a whole file:")
        click.echo(_indent(proved.lean_file or f"{proved.formal_statement} {proved.proof}"))
    cheat = next((record for record in records if record.name == CHEAT), None)
    if cheat is not None and cheat.rejected_proofs:
        rejected = cheat.rejected_proofs[0]
        click.echo(f"\nA rejected cheat ({CHEAT}, status {cheat.status}): closed every goal step by step,")
        click.echo(f"but the whole-file re-check said `{rejected['status']}`: {rejected['reason']}")
        click.echo(_indent(rejected["proof"]))

    report_note = _write_report(run)
    click.echo(f"\ndone in {time.monotonic() - started:.1f} s")
    click.echo(f"  results:  {run / RESULTS_FILE}  (one JSON object a problem)")
    click.echo(f"  manifest: {run / 'manifest.json'}")
    click.echo(f"  report:   {report_note}")
    click.echo(f"  inputs:   {world.dataset.parent}  (problems, REPL script, model table)")
    click.echo(
        "Next: `prover setup` installs Lean, Mathlib and the REPL, then `prover eval minif2f` or `prover prove`."
    )


def _write_report(run: Path) -> str:
    from lean_env.errors import MissingDependency
    from prover.report import write_report

    try:
        return str(write_report([run]))
    except MissingDependency as error:
        return f"not written: {error.what} is not installed ({error.how})"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())

"""`prover report RUN [RUN2]`: report.md, PNG plots and one .lean file per proof; two runs are compared."""

from __future__ import annotations

from pathlib import Path

import click

from prover.cli.main import UserFacingError


@click.command(name="report")
@click.argument("run", type=click.Path(path_type=Path, file_okay=False))
@click.argument("run2", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write (default RUN/report, or RUN/compare_<RUN2> with two runs).",
)
def report(run: Path, run2: Path | None, out: Path | None) -> None:
    """Write report.md with summary tables and plots for RUN, or compare RUN (before) with RUN2 (after).

    Plots: theorems proved against search time and against expansions, and pass rate per category.
    Every proof is written as a complete .lean file under proofs/. The report lists every unproved
    theorem with its reason and every proof the final check rejected; a run with no records gets no plots.
    """
    from prover.evaluation.results import ResultsError
    from prover.evaluation.summary import format_summary
    from prover.report import ReportError, load_run, write_report

    runs = [run] if run2 is None else [run, run2]
    try:
        path = write_report(runs, out)
        for directory in runs:
            loaded = load_run(directory)
            if loaded.records:
                click.echo(format_summary(loaded.summary, title=loaded.label))
            else:
                click.echo(f"{loaded.label}: no theorem attempted yet (the results file has no records)")
    except (ReportError, ResultsError) as error:
        raise UserFacingError(str(error)) from error
    click.echo(f"report: {path}")

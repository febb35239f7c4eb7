"""Reports of evaluation runs: `report.md` with summary tables, PNG plots and one `.lean` file per proof.

With two runs the report compares them side by side: per-category pass rates of each, and which
theorems the second run gained, lost, or proved in common with the first (over the theorems both
attempted). Plots are drawn with matplotlib's Agg canvas, imported only here and only when a report
is written, so the rest of the package never needs matplotlib.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lean_env.errors import MissingDependency
from prover.evaluation.manifest import read_manifest
from prover.evaluation.results import RESULTS_FILE, EvalRecord, read_records
from prover.evaluation.summary import Summary, summarize, summary_markdown
from prover.minif2f.dataset import Category

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"


class ReportError(ValueError):
    """A run directory cannot be reported on (no results file); the message names it."""


@dataclass(frozen=True, slots=True)
class Run:
    """One run directory as read for a report."""

    path: Path
    label: str
    records: tuple[EvalRecord, ...]
    manifest: dict[str, Any] | None
    summary: Summary

    @property
    def proved(self) -> dict[str, EvalRecord]:
        return {record.name: record for record in self.records if record.proved}

    @property
    def attempted(self) -> set[str]:
        return {record.name for record in self.records}


def load_run(path: Path, label: str | None = None) -> Run:
    """Read a run directory's results and manifest. Raises `ReportError` if it has no results file."""
    path = Path(path)
    results = path / RESULTS_FILE
    if not results.exists():
        raise ReportError(f"{path}: no {RESULTS_FILE}; give a directory written by `prover eval --out`")
    records = tuple(read_records(results))
    manifest = read_manifest(path)
    expected = manifest.get("dataset", {}).get("count") if manifest else None
    return Run(path, label or path.name, records, manifest, summarize(records, expected=expected))


def _labels(paths: Sequence[Path]) -> list[str]:
    names = [Path(path).resolve().name or str(path) for path in paths]
    if len(set(names)) < len(names):
        return [f"{letter}: {name}" for letter, name in zip("AB", names, strict=False)]
    return names


def write_report(runs: Sequence[Path], out_dir: Path | None = None) -> Path:
    """Write `report.md`, `plots/*.png` and `proofs/**.lean` for one run, or a comparison of two.

    Default output directory: `<run>/report` for one run, `<run>/compare_<other run>` for two.
    Returns the path of `report.md`. Raises `ReportError` for a directory without results and
    `MissingDependency` when matplotlib is not installed.
    """
    if not 1 <= len(runs) <= 2:
        raise ReportError(f"a report covers one run or compares two; got {len(runs)}")
    figure_class = _figure_class()
    labels = _labels(runs)
    loaded = [load_run(path, label) for path, label in zip(runs, labels, strict=True)]
    if out_dir is None:
        first = Path(runs[0])
        out_dir = first / "report" if len(runs) == 1 else first / f"compare_{Path(runs[1]).resolve().name}"
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    proof_dirs = _write_proofs(loaded, out_dir)
    _plot_proved_against(figure_class, loaded, "wall", plots / "proved_vs_time.png")
    _plot_proved_against(figure_class, loaded, "expansions", plots / "proved_vs_expansions.png")
    _plot_categories(figure_class, loaded, plots / "categories.png")
    if any(pass_at_k(run.records) for run in loaded):
        _plot_pass_at_k(figure_class, loaded, plots / PASS_AT_K_PLOT)
    text = _markdown(loaded, proof_dirs, out_dir)
    report = out_dir / REPORT_FILE
    report.write_text(text, encoding="utf-8")
    return report


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise MissingDependency("matplotlib", "Install it with: pip install 'llemma-prover[report]'") from error
    return Figure


def _safe_filename(name: str) -> str:
    return "".join(char if char.isalnum() or char in "._-" else "_" for char in name) or "theorem"


def _write_proofs(runs: Sequence[Run], out_dir: Path) -> list[Path]:
    directories: list[Path] = []
    for run in runs:
        directory = out_dir / "proofs" if len(runs) == 1 else out_dir / "proofs" / _safe_filename(run.label)
        directory.mkdir(parents=True, exist_ok=True)
        for name, record in sorted(run.proved.items()):
            text = record.lean_file
            if text is None:  # a record from a writer that did not keep the file: keep at least the proof
                text = f"-- {name}: the statement was not recorded; the verified proof follows\n{record.proof}\n"
            (directory / f"{_safe_filename(name)}.lean").write_text(text, encoding="utf-8")
        directories.append(directory)
    return directories


def _cumulative(values: list[float]) -> tuple[list[float], list[int]]:
    ordered = sorted(values)
    return ordered, list(range(1, len(ordered) + 1))


def _plot_proved_against(figure_class: Any, runs: Sequence[Run], axis: str, path: Path) -> None:
    figure = figure_class(figsize=(7, 4.5), dpi=110)
    ax = figure.add_subplot()
    for run in runs:
        proved = list(run.proved.values())
        if axis == "wall":
            values = [record.wall_seconds for record in proved]
        else:
            values = [float(record.expansions) for record in proved]
        xs, ys = _cumulative(values)
        label = f"{run.label} ({len(proved)}/{run.summary.overall.attempted})"
        if xs:
            ax.step([0.0, *xs], [0, *ys], where="post", label=label)
        else:
            ax.plot([], [], label=label)
    if axis == "wall":
        positive = [record.wall_seconds for run in runs for record in run.proved.values() if record.wall_seconds > 0]
        if positive and max(positive) > 100 * min(positive):  # real runs span 0.1 s to the 600 s budget
            ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_xlabel("search wall time per theorem (s)")
        ax.set_title("Theorems proved within a time budget")
    else:
        ax.set_xlabel("expansions per theorem")
        ax.set_title("Theorems proved within an expansion budget")
    ax.set_ylabel("theorems proved")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


PASS_AT_K_PLOT = "pass_at_k.png"
"""The pass@k curve over attempts, drawn when a run has informal records."""


def _plot_pass_at_k(figure_class: Any, runs: Sequence[Run], path: Path) -> None:
    figure = figure_class(figsize=(7, 4.5), dpi=110)
    ax = figure.add_subplot()
    for run in runs:
        curve = pass_at_k(run.records)
        if curve:
            ks = [k for k, _, _ in curve]
            rates = [100 * proved / total if total else 0.0 for _, proved, total in curve]
            ax.plot(ks, rates, marker="o", label=run.label)
    ax.set_xlabel("attempts (k)")
    ax.set_ylabel("pass@k (%)")
    ax.set_title("Problems proved within k attempts")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def _plot_categories(figure_class: Any, runs: Sequence[Run], path: Path) -> None:
    categories = [c for c in Category if any(c in run.summary.by_category for run in runs)]
    figure = figure_class(figsize=(8, 4.5), dpi=110)
    ax = figure.add_subplot()
    width = 0.8 / max(len(runs), 1)
    for index, run in enumerate(runs):
        positions = [i + (index - (len(runs) - 1) / 2) * width for i in range(len(categories))]
        tallies = [run.summary.by_category.get(category) for category in categories]
        rates = [100 * tally.rate if tally else 0.0 for tally in tallies]
        bars = ax.bar(positions, rates, width=width, label=run.label)
        for bar, tally in zip(bars, tallies, strict=True):
            if tally is not None:
                ax.annotate(
                    f"{tally.proved}/{tally.attempted}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels([category.label for category in categories], rotation=30, ha="right")
    ax.set_ylabel("proved (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Pass rate per category")
    if len(runs) > 1:
        ax.legend()
    figure.tight_layout()
    figure.savefig(path)


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def _run_info(run: Run) -> list[str]:
    manifest = run.manifest or {}
    budget = manifest.get("search_budget", {})
    model = manifest.get("model", {})
    dataset = manifest.get("dataset", {})
    lean = manifest.get("lean", {})
    versions = manifest.get("versions", {})
    revision = str(manifest.get("git_revision", "?"))[:12]
    rows = [
        f"| model | {model.get('name', '?')} ({model.get('backend', '?')}) |",
        f"| budget | {budget.get('expansions', '?')} expansions × {budget.get('samples', '?')} samples, "
        f"{budget.get('timeout_s', '?')} s per theorem, tactic timeout {budget.get('tactic_timeout_s', '?')} s |",
        f"| dataset | {dataset.get('source', '?')} (sha256 {str(dataset.get('sha256', '?'))[:12]}, "
        f"{dataset.get('count', '?')} theorems selected) |",
        f"| Lean | {lean.get('backend', '?')}, toolchain {lean.get('toolchain') or 'unknown'} |",
        f"| code | llemma-prover {versions.get('llemma-prover', '?')}, git {revision}"
        f"{' (uncommitted changes)' if manifest.get('git_dirty') else ''} |",
        f"| sessions | {len(manifest.get('sessions', []))} |",
    ]
    if not manifest:
        rows = ["| manifest | missing |"]
    return ["| | |", "|---|---|", *rows]


def _run_section(run: Run, proof_dir: Path, out_dir: Path) -> list[str]:
    summary = run.summary
    lines = [f"## {run.label}", ""]
    headline = f"**proved {summary.overall}**"
    if summary.expected is not None and summary.overall.attempted < summary.expected:
        headline += f" — {summary.overall.attempted} of {summary.expected} selected theorems attempted so far"
    lines += [headline, "", *_run_info(run), "", summary_markdown(summary), ""]
    proved = list(run.proved.values())
    times = [record.wall_seconds for record in proved]
    expansions = [float(record.expansions) for record in proved]
    first_expansion = sum(1 for record in proved if record.expansions <= 1)
    lengths = Counter(len(record.tactics) for record in proved)
    lines += [
        f"- search time over all theorems: {summary.search_seconds / 3600:.2f} h; "
        f"median time to a proof: {_median(times)} s; median expansions to a proof: {_median(expansions)}",
        f"- proofs found on the first expansion: {first_expansion} of {len(proved)}",
        "- proof lengths (tactics): " + (", ".join(f"{k}: {v}" for k, v in sorted(lengths.items())) or "-"),
        "",
    ]
    reasons = Counter(
        (record.failure_reason or "").split(":")[0][:80] for record in run.records if record.status == "env_error"
    )
    if reasons:
        lines += ["Infrastructure errors (`env_error`), by cause:", ""]
        lines += [f"- {count} × {reason or 'unknown'}" for reason, count in reasons.most_common(10)]
        lines.append("")
    invalid = sorted((record for record in run.records if record.status == "invalid_statement"), key=lambda r: r.name)
    if invalid:
        lines += ["Statements that do not elaborate (`invalid_statement`, never retried):", ""]
        lines += [
            f"- {record.name}: {((record.failure_reason or '').strip() or 'no message').splitlines()[0][:120]}"
            for record in invalid[:20]
        ]
        if len(invalid) > 20:
            lines.append(f"- ... and {len(invalid) - 20} more")
        lines.append("")
    if proved:
        relative = proof_dir.relative_to(out_dir).as_posix()
        judges = Counter(_judge(record) for record in proved)
        lines += [
            "- accepted by: " + ", ".join(f"{judge}: {count}" for judge, count in sorted(judges.items())),
            "",
        ]
        lines += [
            "| proved theorem | category | tactics | time (s) | expansions | judge |",
            "|---|---|---:|---:|---:|---|",
        ]
        for record in sorted(proved, key=lambda r: r.name):
            link = f"[{record.name}]({relative}/{_safe_filename(record.name)}.lean)"
            lines.append(
                f"| {link} | {record.category} | {len(record.tactics)} | {record.wall_seconds:.1f} | "
                f"{record.expansions} | {_judge(record)} |"
            )
        lines.append("")
    return lines


def _judge(record: EvalRecord) -> str:
    """The judge that accepted a proof; records from before judges were recorded were checked by the REPL."""
    return record.judge or "repl (unrecorded)"


def _comparison(first: Run, second: Run) -> list[str]:
    both = first.attempted & second.attempted
    a = set(first.proved) & both
    b = set(second.proved) & both
    gained, lost, common = sorted(b - a), sorted(a - b), sorted(a & b)
    lines = [
        f"## Comparison: {first.label} → {second.label}",
        "",
        f"Over the {len(both)} theorems both runs attempted: {first.label} proved {len(a)}, "
        f"{second.label} proved {len(b)}; gained {len(gained)}, lost {len(lost)}, common {len(common)}.",
        "",
        f"| category | {first.label} | {second.label} |",
        "|---|---:|---:|",
    ]
    for category in Category:
        left = first.summary.by_category.get(category)
        right = second.summary.by_category.get(category)
        if left is None and right is None:
            continue
        lines.append(f"| {category.label} | {left or '-'} | {right or '-'} |")
    lines.append(f"| **overall** | {first.summary.overall} | {second.summary.overall} |")
    lines.append("")
    for title, names in ((f"Gained by {second.label}", gained), (f"Lost by {second.label}", lost), ("Common", common)):
        lines.append(f"**{title} ({len(names)})**: " + (", ".join(f"`{name}`" for name in names) or "none"))
        lines.append("")
    only_first = len(first.attempted - second.attempted)
    only_second = len(second.attempted - first.attempted)
    if only_first or only_second:
        lines.append(
            f"Not compared: {only_first} theorem(s) attempted only by {first.label}, "
            f"{only_second} only by {second.label}."
        )
        lines.append("")
    return lines


def _markdown(runs: Sequence[Run], proof_dirs: Sequence[Path], out_dir: Path) -> str:
    title = runs[0].label if len(runs) == 1 else f"{runs[0].label} vs {runs[1].label}"
    lines = [f"# miniF2F evaluation report: {title}", ""]
    if len(runs) == 2:
        lines += _comparison(runs[0], runs[1])
    lines += [
        "## Plots",
        "",
        "![theorems proved within a time budget](plots/proved_vs_time.png)",
        "",
        "![theorems proved within an expansion budget](plots/proved_vs_expansions.png)",
        "",
        "![pass rate per category](plots/categories.png)",
        "",
    ]
    for run, proof_dir in zip(runs, proof_dirs, strict=True):
        lines += _run_section(run, proof_dir, out_dir)
        lines += _informal_section(run)
    return "\n".join(lines).rstrip() + "\n"


def _informal(record: EvalRecord) -> dict[str, Any] | None:
    """The `informal` field of a record written by `prover eval --mode informal`, if any."""
    extra = record.model_extra or {}
    value = extra.get("informal")
    return value if isinstance(value, dict) else None


def pass_at_k(records: Sequence[EvalRecord]) -> list[tuple[int, int, int]]:
    """(k, problems proved within their first k attempts, problems) for k = 1 .. the most attempts allowed.

    An attempt counts by its number (attempt 0 is the greedy one), so a problem proved by attempt 2 counts
    from k = 3 on, however the concurrent attempts finished.
    """
    informal = [value for value in (_informal(record) for record in records) if value is not None]
    if not informal:
        return []
    most = max(
        [int(value.get("attempts_allowed") or 0) for value in informal]
        + [len(value.get("attempts") or []) for value in informal]
        + [1]
    )
    first: list[int | None] = []
    for value in informal:
        numbers = [int(a.get("number", 0)) for a in value.get("attempts") or [] if a.get("verified")]
        first.append(min(numbers) if numbers else None)
    return [(k, sum(1 for n in first if n is not None and n < k), len(informal)) for k in range(1, most + 1)]


def _gap_closers(records: Sequence[EvalRecord]) -> Counter[tuple[str, str]]:
    """(method, detail) of every gap of every finished attempt; detail names the heuristic or tactic."""
    counts: Counter[tuple[str, str]] = Counter()
    for record in records:
        value = _informal(record)
        for attempt in (value or {}).get("attempts") or []:
            for gap in attempt.get("gaps") or []:
                method = str(gap.get("method", "open"))
                closing = gap.get("closing")
                detail = ""
                if method in ("heuristic", "automation") and closing:
                    detail = str(closing)
                elif method == "open":
                    tried = gap.get("tried") or []
                    detail = "cancelled" if any(str(t).startswith("cancelled") for t in tried) else ""
                counts[(method, detail)] += 1
    return counts


def _time_split(records: Sequence[EvalRecord]) -> dict[str, float]:
    totals = {"draft": 0.0, "sketch": 0.0, "prove": 0.0, "check": 0.0}
    for record in records:
        for attempt in (_informal(record) or {}).get("attempts") or []:
            for key, seconds in (attempt.get("timings") or {}).items():
                if key in totals:
                    totals[key] += float(seconds or 0.0)
    return totals


def _informal_section(run: Run) -> list[str]:
    """Pass@k over attempts, how gaps were closed and the time split, for records with `informal`."""
    curve = pass_at_k(run.records)
    if not curve:
        return []
    lines = [f"### {run.label}: informal to formal", "", f"![pass@k over attempts](plots/{PASS_AT_K_PLOT})", ""]
    lines += ["Pass@k over attempts:", ""]
    lines += ["| k | proved | of | pass@k |", "|---:|---:|---:|---:|"]
    for k, proved, total in curve:
        lines.append(
            f"| {k} | {proved} | {total} | {100 * proved / total:.1f} % |" if total else f"| {k} | 0 | 0 | - |"
        )
    lines += ["", "How gaps were closed (every gap of every attempt):", ""]
    closers = _gap_closers(run.records)
    if closers:
        lines += ["| method | which | gaps |", "|---|---|---:|"]
        for (method, detail), count in sorted(closers.items(), key=lambda item: (-item[1], item[0])):
            escaped = detail.replace("|", "\\|") or "-"
            lines.append(f"| {method} | {escaped} | {count} |")
    else:
        lines.append("- no gaps recorded")
    split = _time_split(run.records)
    all_stages = 0.0
    for seconds in split.values():
        all_stages += seconds
    lines += ["", "Time split across the stages (all attempts):", ""]
    lines += ["| stage | seconds | share |", "|---|---:|---:|"]
    for stage, seconds in split.items():
        share = f"{100 * seconds / all_stages:.1f} %" if all_stages > 0 else "-"
        lines.append(f"| {stage} | {seconds:.2f} | {share} |")
    lines.append("")
    return lines

"""Reports of evaluation runs: `report.md` with summary tables, PNG plots and one `.lean` file per proof.

With two runs the report compares them side by side: per-category pass rates of each, and which
theorems the second run gained, lost, or proved in common with the first (over the theorems both
attempted). The report says what failed as well as what was proved: every unproved theorem with its
full reason, every proof the final check rejected with the judge and its reason, and the whole budget
(search limits, model, temperature, prompt format). A run with no records says so and gets no plots.

Plots are drawn with matplotlib's Agg canvas, imported only here and only when a report is written, so
the rest of the package never needs matplotlib. `proved_figure`, `categories_figure` and
`pass_at_k_figure` build the figures (None when there is nothing to draw) without saving them. They
are drawn for a paper: curves run to the budget, integer ticks where the axis counts, one line style
and marker per run, the legend below the axes, a percent axis, titles naming the model and budget.
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
from prover.evaluation.summary import pass_at_k as summary_pass_at_k
from prover.minif2f.dataset import Category

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"

TIME_PLOT = "proved_vs_time.png"
EXPANSIONS_PLOT = "proved_vs_expansions.png"
CATEGORIES_PLOT = "categories.png"
PASS_AT_K_PLOT = "pass_at_k.png"
"""The pass@k curve over attempts, drawn when a run has informal records."""

STYLES: tuple[tuple[str, str, str], ...] = (("-", "o", ""), ("--", "s", "//"), (":", "^", ".."), ("-.", "D", "xx"))
"""(line style, marker, bar hatch) of the first, second, ... run, so overlapping curves stay apart in print."""


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

    @property
    def budget(self) -> dict[str, Any]:
        """The manifest's `search_budget` ({} without a manifest)."""
        return dict((self.manifest or {}).get("search_budget") or {})

    @property
    def model_settings(self) -> dict[str, Any]:
        """The model settings as recorded: `settings.model` merged over the manifest's `model` entry."""
        manifest = self.manifest or {}
        merged = dict(manifest.get("model") or {})
        merged.update((manifest.get("settings") or {}).get("model") or {})
        return merged


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
    `MissingDependency` when matplotlib is not installed. A plot with nothing to draw (no records)
    is not written, and one left there by an earlier report is removed.
    """
    if not 1 <= len(runs) <= 2:
        raise ReportError(f"a report covers one run or compares two; got {len(runs)}")
    _figure_class()  # fail early, before anything is written, when matplotlib is missing
    labels = _labels(runs)
    loaded = [load_run(path, label) for path, label in zip(runs, labels, strict=True)]
    if out_dir is None:
        first = Path(runs[0])
        out_dir = first / "report" if len(runs) == 1 else first / f"compare_{Path(runs[1]).resolve().name}"
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    proof_dirs = _write_proofs(loaded, out_dir)
    figures = {
        TIME_PLOT: proved_figure(loaded, "wall"),
        EXPANSIONS_PLOT: proved_figure(loaded, "expansions"),
        CATEGORIES_PLOT: categories_figure(loaded),
        PASS_AT_K_PLOT: pass_at_k_figure(loaded),
    }
    written: set[str] = set()
    for name, figure in figures.items():
        if figure is None:
            (plots / name).unlink(missing_ok=True)
        else:
            figure.savefig(plots / name)
            written.add(name)
    text = _markdown(loaded, proof_dirs, out_dir, written)
    report = out_dir / REPORT_FILE
    report.write_text(text, encoding="utf-8")
    return report


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise MissingDependency("matplotlib", "Install it with: pip install 'llemma-prover[report]'") from error
    return Figure


def _new_figure(width: float = 7.5, height: float = 5.0) -> Any:
    """A figure whose constrained layout keeps the legend (drawn below the axes) and titles on the canvas."""
    return _figure_class()(figsize=(width, height), dpi=110, layout="constrained")


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


# -- words ---------------------------------------------------------------------------------------


def plural(count: Any, word: str, words: str | None = None) -> str:
    """`1 expansion`, `100 expansions`, `? expansions` (an unknown count reads as plural)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _number(value: Any) -> str:
    """A budget figure as a person writes it: 600.0 -> `600`, 0.6 -> `0.6`, None -> `?`."""
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _short_model(run: Run) -> str:
    return str(run.model_settings.get("name") or "unknown model")


def _budget_text(run: Run) -> str:
    """`100 expansions × 32 samples, 600 s per theorem`, from the manifest (`?` where unrecorded)."""
    budget = run.budget
    expansions = budget.get("expansions", "?")
    samples = budget.get("samples", "?")
    return (
        f"{plural(expansions, 'expansion')} × {plural(samples, 'sample')}, "
        f"{_number(budget.get('timeout_s'))} s per theorem"
    )


def _subtitle(runs: Sequence[Run], extra: str = "") -> str:
    """The model and budget of the runs: one line when they agree, one line per run when they differ."""
    described = [f"{_short_model(run)}, {_budget_text(run)}{extra}" for run in runs]
    if len(set(described)) == 1:
        return described[0]
    return "\n".join(f"{run.label}: {text}" for run, text in zip(runs, described, strict=True))


def _one_line(text: str | None, default: str = "no reason recorded") -> str:
    """A reason for a Markdown table cell: whole, on one line, pipes escaped."""
    collapsed = " ".join((text or "").split())
    return collapsed.replace("|", "\\|") or default


# -- plots ---------------------------------------------------------------------------------------


def _limit(run: Run, axis: str) -> float | None:
    """The run's budget on `axis` (search time or expansions) as recorded in its manifest, if any."""
    key = "timeout_s" if axis == "wall" else "expansions"
    value = run.budget.get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _value(record: EvalRecord, axis: str) -> float:
    return record.wall_seconds if axis == "wall" else float(record.expansions)


def _legend_below(figure: Any, ax: Any, runs: int) -> Any:
    """The legend under the axes (off the data), one column per run."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return figure.legend(handles, labels, loc="outside lower center", ncols=max(1, min(runs, 3)), frameon=False)


def _markevery(points: int) -> list[int]:
    """Indices of the proof points to mark (index 0 is the origin), at most about 20 of them."""
    if points == 0:
        return [0]
    step = max(1, points // 20)
    return list(range(1, points + 1, step))


def proved_figure(runs: Sequence[Run], axis: str) -> Any | None:
    """Theorems proved within a budget of search time (`axis="wall"`) or of expansions (`"expansions"`).

    Each run's curve is a step function of the proofs' costs, from 0 to the run's budget (the manifest's
    `timeout_s` or `expansions`; without one, the largest cost any record reached). When every run
    attempted the same number of theorems the left axis counts theorems and the right one gives the
    percent of them; otherwise the curves are drawn in percent of each run's own theorems. None when no
    run has a record.
    """
    if axis not in ("wall", "expansions"):
        raise ValueError(f"proved_figure: axis must be 'wall' or 'expansions', not {axis!r}")
    drawn = [run for run in runs if run.records]
    if not drawn:
        return None
    figure = _new_figure()
    ax = figure.add_subplot()
    totals = {run.summary.overall.attempted for run in drawn}
    shared = totals.pop() if len(totals) == 1 else None
    right = 0.0
    for index, run in enumerate(runs):
        if not run.records:
            continue
        linestyle, marker, _ = STYLES[index % len(STYLES)]
        proved = sorted(_value(record, axis) for record in run.proved.values())
        limit = _limit(run, axis) or max(_value(record, axis) for record in run.records)
        limit = max([limit, *proved, 1.0])
        right = max(right, limit)
        total = run.summary.overall.attempted
        counts = list(range(0, len(proved) + 1))
        ys = [float(c) for c in counts] if shared is not None else [100 * c / total for c in counts]
        xs = [0.0, *proved, limit]
        ys = [*ys, ys[-1]]
        ax.step(
            xs,
            ys,
            where="post",
            linestyle=linestyle,
            marker=marker,
            markevery=_markevery(len(proved)),
            markersize=5,
            linewidth=1.8,
            label=f"{run.label}: {len(proved)}/{total} ({100 * len(proved) / total:.1f} %)",
        )
    if axis == "wall":
        positive = [record.wall_seconds for run in drawn for record in run.proved.values() if record.wall_seconds > 0]
        if positive and right > 100 * min(positive):  # real runs span 0.1 s to the 600 s budget
            ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_xlabel("search wall time per theorem (s)")
        title = "Theorems proved within a time budget"
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("expansions per theorem")
        title = "Theorems proved within an expansion budget"
    ax.set_xlim(0, right)
    if shared is not None:
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, max(shared, 1) * 1.05)
        ax.set_ylabel("theorems proved")
        total = max(shared, 1)
        percent = ax.secondary_yaxis(
            "right",
            functions=(lambda y: 100 * y / total, lambda p: p * total / 100),
        )
        percent.set_ylabel(f"proved (% of the {plural(shared, 'theorem')} attempted)")
    else:
        ax.set_ylim(0, 105)
        ax.set_ylabel("proved (% of each run's theorems)")
    figure.suptitle(title, fontweight="bold")
    ax.set_title(_subtitle(runs), fontsize=9)
    ax.grid(True, alpha=0.3)
    _legend_below(figure, ax, len(drawn))
    return figure


def pass_at_k_figure(runs: Sequence[Run]) -> Any | None:
    """Pass@k over attempts (percent of the problems), one styled curve per run; None without informal records."""
    curves = [(index, run, pass_at_k(run.records)) for index, run in enumerate(runs)]
    curves = [item for item in curves if item[2]]
    if not curves:
        return None
    from matplotlib.ticker import MaxNLocator

    figure = _new_figure()
    ax = figure.add_subplot()
    for index, run, curve in curves:
        linestyle, marker, _ = STYLES[index % len(STYLES)]
        ks = [k for k, _, _ in curve]
        rates = [100 * proved / total if total else 0.0 for _, proved, total in curve]
        last = curve[-1]
        ax.plot(
            ks,
            rates,
            linestyle=linestyle,
            marker=marker,
            markersize=6,
            label=f"{run.label}: {last[1]}/{last[2]} within {plural(last[0], 'attempt')}",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, max(curve[-1][0] for _, _, curve in curves) + 0.5)
    ax.set_ylim(0, 105)
    ax.set_xlabel("attempts (k)")
    ax.set_ylabel("pass@k (% of the problems)")
    figure.suptitle("Problems proved within k attempts", fontweight="bold")
    ax.set_title(
        "\n".join(sorted({f"{_short_model(run)}, {plural(curve[-1][0], 'attempt')}" for _, run, curve in curves})),
        fontsize=9,
    )
    ax.grid(True, alpha=0.3)
    _legend_below(figure, ax, len(curves))
    return figure


def categories_figure(runs: Sequence[Run]) -> Any | None:
    """Pass rate (percent) per category, one hatched bar per run and category; None when nothing was attempted."""
    categories = [c for c in Category if any(c in run.summary.by_category for run in runs)]
    if not categories:
        return None
    figure = _new_figure(8.0, 5.0)
    ax = figure.add_subplot()
    width = 0.8 / max(len(runs), 1)
    for index, run in enumerate(runs):
        _, _, hatch = STYLES[index % len(STYLES)]
        positions = [i + (index - (len(runs) - 1) / 2) * width for i in range(len(categories))]
        tallies = [run.summary.by_category.get(category) for category in categories]
        rates = [100 * tally.rate if tally else 0.0 for tally in tallies]
        bars = ax.bar(positions, rates, width=width, hatch=hatch, edgecolor="black", linewidth=0.6, label=run.label)
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
    ax.set_ylabel("proved (% of the category's theorems)")
    ax.set_ylim(0, 110)
    figure.suptitle("Pass rate per category", fontweight="bold")
    ax.set_title(_subtitle(runs), fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    if len(runs) > 1:
        _legend_below(figure, ax, len(runs))
    return figure


# -- markdown ------------------------------------------------------------------------------------


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def _sampling_text(run: Run) -> str:
    model = run.model_settings
    temperature = model.get("temperature")
    text = f"temperature {_number(temperature)}"
    if temperature == 0 and model.get("backend") in ("hf", "vllm"):
        text += " (beam search)"
    text += f", prompt format {model.get('prompt_format', '?')}"
    if model.get("max_new_tokens") is not None:
        text += f", at most {plural(model['max_new_tokens'], 'new token')} per tactic"
    return text


def _mode_row(run: Run) -> list[str]:
    manifest = run.manifest or {}
    mode = manifest.get("mode") or {}
    if mode.get("mode") != "informal":
        return []
    informal = (manifest.get("settings") or {}).get("informal") or {}
    attempts = mode.get("attempts", informal.get("attempts", "?"))
    text = f"informal to formal ({mode.get('lang', '?')}), {plural(attempts, 'attempt')} per problem"
    if "temperature" in informal:
        text += f", sampled attempts at temperature {_number(informal['temperature'])}"
    return [f"| mode | {text} |"]


def _run_info(run: Run) -> list[str]:
    manifest = run.manifest or {}
    if not manifest:
        return ["| | |", "|---|---|", "| manifest | missing |"]
    budget = run.budget
    model = run.model_settings
    dataset = manifest.get("dataset", {})
    lean = manifest.get("lean", {})
    versions = manifest.get("versions", {})
    revision = str(manifest.get("git_revision", "?"))[:12]
    rows = [
        f"| model | {model.get('name', '?')} ({model.get('backend', '?')}) |",
        f"| sampling | {_sampling_text(run)} |",
        f"| budget | {plural(budget.get('expansions', '?'), 'expansion')} × "
        f"{plural(budget.get('samples', '?'), 'sample')} per expansion, "
        f"{_number(budget.get('timeout_s'))} s per theorem, "
        f"tactic timeout {_number(budget.get('tactic_timeout_s'))} s, "
        f"final check timeout {_number(budget.get('verify_timeout_s'))} s |",
        *_mode_row(run),
        f"| dataset | {dataset.get('source', '?')} (sha256 {str(dataset.get('sha256', '?'))[:12]}, "
        f"{plural(dataset.get('count', '?'), 'theorem')} selected) |",
        f"| Lean | {lean.get('backend', '?')}, toolchain {lean.get('toolchain') or 'unknown'} |",
        f"| code | llemma-prover {versions.get('llemma-prover', '?')}, git {revision}"
        f"{' (uncommitted changes)' if manifest.get('git_dirty') else ''} |",
        f"| sessions | {len(manifest.get('sessions', []))} |",
    ]
    return ["| | |", "|---|---|", *rows]


def _unproved_section(run: Run) -> list[str]:
    """Every theorem not proved, with its status and whole reason; env_error causes grouped first."""
    unproved = [record for record in run.records if not record.proved]
    if not unproved:
        return []
    lines: list[str] = []
    causes = Counter(_one_line(record.failure_reason, "unknown") for record in unproved if record.status == "env_error")
    if causes:
        lines += ["Infrastructure errors (`env_error`, rerun with `--resume --retry-errors`), by cause:", ""]
        lines += [f"- {count} × {cause}" for cause, count in causes.most_common()]
        lines.append("")
    order = {"env_error": 0, "invalid_statement": 1}
    lines += [
        f"**Unproved theorems ({len(unproved)})**:",
        "",
        "| unproved theorem | category | status | expansions | time (s) | reason |",
        "|---|---|---|---:|---:|---|",
    ]
    for record in sorted(unproved, key=lambda r: (order.get(r.status, 2), r.status, r.name)):
        lines.append(
            f"| {record.name} | {record.category} | {record.status} | {record.expansions} | "
            f"{record.wall_seconds:.1f} | {_one_line(record.failure_reason)} |"
        )
    lines.append("")
    return lines


def _rejected_section(run: Run) -> list[str]:
    """Every proof that closed the goals step by step but that the final check rejected, with the verdict."""
    rejected = [(record, entry) for record in run.records for entry in record.rejected_proofs]
    if not rejected:
        return []
    theorems = len({record.name for record, _ in rejected})
    lines = [
        f"**Proofs rejected by the final check ({len(rejected)}, of {plural(theorems, 'theorem')})**: "
        "each closed every goal step by step, then failed the whole-file check.",
        "",
    ]
    for record, entry in sorted(rejected, key=lambda item: item[0].name):
        outcome = "proved by another proof" if record.proved else f"ended {record.status}"
        judge = entry.get("judge") or "judge not recorded"
        lines.append(
            f"- `{record.name}` ({outcome}): rejected by {judge} as `{entry.get('status', '?')}`: "
            f"{_one_line(entry.get('reason'))}"
        )
        proof = str(entry.get("proof") or "").rstrip()
        if proof:
            lines += ["", "  ```lean", *[f"  {line}" for line in proof.splitlines()], "  ```"]
    lines.append("")
    return lines


def _run_section(run: Run, proof_dir: Path, out_dir: Path) -> list[str]:
    summary = run.summary
    lines = [f"## {run.label}", ""]
    if not run.records:
        expected = f" of the {plural(summary.expected, 'selected theorem')}" if summary.expected else ""
        lines += [
            f"**No theorem attempted yet**: {RESULTS_FILE} has no records{expected}, so there is nothing to "
            "count or plot.",
            "",
            *_run_info(run),
            "",
        ]
        return lines
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
    lines += _unproved_section(run)
    lines += _rejected_section(run)
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
    lines.append(f"| **overall** | {_overall(first)} | {_overall(second)} |")
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


def _overall(run: Run) -> str:
    return str(run.summary.overall) if run.records else "nothing attempted"


PLOT_CAPTIONS: dict[str, str] = {
    TIME_PLOT: "theorems proved within a time budget",
    EXPANSIONS_PLOT: "theorems proved within an expansion budget",
    CATEGORIES_PLOT: "pass rate per category",
}


def _markdown(runs: Sequence[Run], proof_dirs: Sequence[Path], out_dir: Path, plots: set[str]) -> str:
    title = runs[0].label if len(runs) == 1 else f"{runs[0].label} vs {runs[1].label}"
    lines = [f"# miniF2F evaluation report: {title}", ""]
    if len(runs) == 2:
        lines += _comparison(runs[0], runs[1])
    lines += ["## Plots", ""]
    shown = [name for name in PLOT_CAPTIONS if name in plots]
    for name in shown:
        lines += [f"![{PLOT_CAPTIONS[name]}](plots/{name})", ""]
    if not shown:
        lines += ["No plots: no theorem has been attempted yet.", ""]
    for run, proof_dir in zip(runs, proof_dirs, strict=True):
        lines += _run_section(run, proof_dir, out_dir)
        lines += _informal_section(run)
        lines += _formal_section(run)
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
        return _formal_pass_at_k(records)
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


def _formal_pass_at_k(records: Sequence[EvalRecord]) -> list[tuple[int, int, int]]:
    """The same triples for a formal run made with `--attempts K > 1` (searches with seeds); [] otherwise."""
    if not any(len((record.model_extra or {}).get("search_attempts") or []) > 1 for record in records):
        return []
    total = len(records)
    return [(k, round(share * total), total) for k, share in summary_pass_at_k(records)]


def _formal_section(run: Run) -> list[str]:
    """Pass@k over the independent searches of a formal run made with `--attempts K`."""
    if any(_informal(record) is not None for record in run.records):
        return []
    curve = _formal_pass_at_k(run.records)
    if not curve:
        return []
    lines = [f"### {run.label}: pass@k over searches", "", f"![pass@k](plots/{PASS_AT_K_PLOT})", ""]
    lines += ["| k | proved | of | pass@k |", "|---:|---:|---:|---:|"]
    lines += [f"| {k} | {proved} | {total} | {100 * proved / total:.1f} % |" for k, proved, total in curve]
    return [*lines, ""]


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
    if not any(_informal(record) is not None for record in run.records):
        return []  # a formal run: its pass@k over searches is `_formal_section`'s
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
    all_stages = sum(split.values())
    lines += ["", "Time split across the stages (all attempts):", ""]
    lines += ["| stage | seconds | share |", "|---|---:|---:|"]
    for stage, seconds in split.items():
        share = f"{100 * seconds / all_stages:.1f} %" if all_stages > 0 else "-"
        lines.append(f"| {stage} | {seconds:.2f} | {share} |")
    lines.append("")
    return lines

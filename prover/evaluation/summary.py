"""Pass rates of an evaluation: overall, per split and per category, as values and as text tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from prover.evaluation.results import EvalRecord
from prover.minif2f.dataset import SPLITS, Category
from search.types import SearchStatus


@dataclass(frozen=True, slots=True)
class Tally:
    """`proved` of `attempted` theorems."""

    proved: int = 0
    attempted: int = 0

    @property
    def rate(self) -> float:
        """Proved / attempted, in [0, 1]; 0 when nothing was attempted."""
        return self.proved / self.attempted if self.attempted else 0.0

    def add(self, proved: bool) -> Tally:
        return Tally(self.proved + int(proved), self.attempted + 1)

    def __str__(self) -> str:
        return f"{self.proved}/{self.attempted} ({100 * self.rate:.1f} %)"


@dataclass(frozen=True, slots=True)
class Summary:
    """What an evaluation achieved. Categories and splits with no attempted theorem are absent.

    `expected` is how many problems the run was asked to cover (from the manifest), when known;
    `by_status` counts the records' statuses (proved, failed, timed_out, ...). `invalid_statements`
    (statements that do not elaborate: attempted, never proved, never retried) and `env_errors`
    (infrastructure failures, re-run by `--retry-errors`) are counted apart because they call for
    different actions. A category outside miniF2F's is tallied as `Category.OTHER`.
    """

    overall: Tally
    by_split: dict[str, Tally]
    by_category: dict[Category, Tally]
    by_status: dict[str, int]
    expected: int | None = None
    search_seconds: float = 0.0
    expansions: int = 0
    invalid_statements: int = 0
    env_errors: int = 0

    @property
    def complete(self) -> bool:
        """True when every expected theorem has a record (unknown expectations count as complete)."""
        return self.expected is None or self.overall.attempted >= self.expected


def summarize(records: Iterable[EvalRecord], expected: int | None = None) -> Summary:
    """Count proved and attempted problems in `records` (one per problem, as `read_records` returns)."""
    overall = Tally()
    by_split: dict[str, Tally] = {}
    by_category: dict[Category, Tally] = {}
    statuses: Counter[str] = Counter()
    seconds = 0.0
    expansions = 0
    for record in records:
        overall = overall.add(record.proved)
        split = record.split or "unknown"
        by_split[split] = by_split.get(split, Tally()).add(record.proved)
        try:
            category = Category(record.category)
        except ValueError:
            category = Category.OTHER
        by_category[category] = by_category.get(category, Tally()).add(record.proved)
        statuses[record.status] += 1
        seconds += record.wall_seconds
        expansions += record.expansions
    split_order = {name: index for index, name in enumerate(SPLITS)}
    ordered_splits = dict(sorted(by_split.items(), key=lambda item: (split_order.get(item[0], 99), item[0])))
    ordered_categories = {category: by_category[category] for category in Category if category in by_category}
    return Summary(
        overall=overall,
        by_split=ordered_splits,
        by_category=ordered_categories,
        by_status=dict(statuses.most_common()),
        expected=expected,
        search_seconds=seconds,
        expansions=expansions,
        invalid_statements=statuses[SearchStatus.INVALID_STATEMENT.value],
        env_errors=statuses[SearchStatus.ENV_ERROR.value],
    )


def format_summary(summary: Summary, title: str = "miniF2F") -> str:
    """A plain-text summary for the terminal: the headline, then per split, per category, per status."""
    headline = f"{title}: proved {summary.overall}"
    if summary.expected is not None and summary.overall.attempted < summary.expected:
        headline += f"  [{summary.overall.attempted} of {summary.expected} theorems attempted so far]"
    lines = [headline]
    if len(summary.by_split) > 1 or (summary.by_split and "unknown" not in summary.by_split):
        lines.append("  by split:    " + "   ".join(f"{name} {tally}" for name, tally in summary.by_split.items()))
    width = max((len(category.label) for category in summary.by_category), default=0)
    if summary.by_category:
        lines.append("  by category:")
        for category, tally in summary.by_category.items():
            counts = f"{tally.proved:>4}/{tally.attempted:<4}"
            lines.append(f"    {category.label:<{width}}  {counts} {100 * tally.rate:5.1f} %")
    if summary.by_status:
        lines.append("  outcomes:    " + ", ".join(f"{status} {count}" for status, count in summary.by_status.items()))
    if summary.invalid_statements:
        lines.append(
            f"  invalid statements: {summary.invalid_statements} (do not elaborate; fix the dataset, not retried)"
        )
    if summary.env_errors:
        lines.append(f"  infrastructure errors: {summary.env_errors} (rerun with --resume --retry-errors)")
    return "\n".join(lines)


def summary_markdown(summary: Summary) -> str:
    """The summary as Markdown tables (overall and per split, then per category)."""
    rows = ["| | proved | attempted | rate |", "|---|---:|---:|---:|"]
    rows.append(f"| **overall** | {summary.overall.proved} | {summary.overall.attempted} | {_pct(summary.overall)} |")
    for split, tally in summary.by_split.items():
        rows.append(f"| {split} | {tally.proved} | {tally.attempted} | {_pct(tally)} |")
    rows.append("")
    rows.append("| category | proved | attempted | rate |")
    rows.append("|---|---:|---:|---:|")
    for category, tally in summary.by_category.items():
        rows.append(f"| {category.label} | {tally.proved} | {tally.attempted} | {_pct(tally)} |")
    rows.append("")
    rows.append("| outcome | problems |")
    rows.append("|---|---:|")
    for status, count in summary.by_status.items():
        rows.append(f"| {status} | {count} |")
    if summary.invalid_statements:
        rows.append("")
        rows.append(
            f"{summary.invalid_statements} statement(s) do not elaborate (`invalid_statement`): counted as attempted, "
            "never retried."
        )
    return "\n".join(rows)


def _pct(tally: Tally) -> str:
    return f"{100 * tally.rate:.1f} %"


def _proved_at(record: EvalRecord) -> tuple[int, int | None]:
    """(attempts made, the 1-based attempt that proved it or None) of one formal record.

    A record without `search_attempts` (a single search, an older run, a Ray run) is one attempt.
    """
    made = (record.model_extra or {}).get("search_attempts")
    if not isinstance(made, list) or not made:
        return 1, (1 if record.proved else None)
    for number, attempt in enumerate(made, start=1):
        if isinstance(attempt, dict) and attempt.get("status") == SearchStatus.PROVED.value:
            return len(made), number
    return len(made), None


def pass_at_k(records: Iterable[EvalRecord]) -> list[tuple[int, float]]:
    """The pass@k curve of a formal run: `(k, share of problems proved within their first k attempts)`.

    k runs from 1 to the most attempts any record made (`prover eval --attempts K` stops a problem's
    attempts at its first proof, so a proved problem counts for every k from its proving attempt on).
    The denominator is every record, as in `summarize`'s overall rate, so the last point equals it.
    Empty records give an empty curve.
    """
    outcomes = [_proved_at(record) for record in records]
    if not outcomes:
        return []
    horizon = max(made for made, _ in outcomes)
    total = len(outcomes)
    return [
        (k, sum(1 for _, proved_at in outcomes if proved_at is not None and proved_at <= k) / total)
        for k in range(1, horizon + 1)
    ]

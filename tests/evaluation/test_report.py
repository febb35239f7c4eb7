"""`prover report`: markdown tables, PNG plots, one .lean file per proof, and a two-run comparison."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prover.cli.main import cli
from prover.config import load_settings
from prover.evaluation.results import ResultsWriter
from prover.evaluation.runner import run_evaluation
from prover.evaluation.session import prepare_run
from prover.minif2f.dataset import category_of, load_dataset
from prover.report import categories_figure, load_run, pass_at_k_figure, proved_figure, write_report
from search.types import SearchConfig
from tests.evaluation.worlds import NAMES, world, write_jsonl

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(tmp_path: Path, name: str, provable: list[str], names: tuple[str, ...] = NAMES) -> Path:
    dataset = load_dataset(write_jsonl(tmp_path / f"{name}.jsonl", NAMES))
    out = tmp_path / name
    prepared = prepare_run(out, load_settings(environ={}), dataset)
    env, generator = world(provable, NAMES)
    with ResultsWriter(prepared.results_path) as writer:
        asyncio.run(
            run_evaluation(
                [p for p in dataset.problems if p.name in names],
                env,
                generator,
                SearchConfig(max_expansions=5, num_samples=4),
                writer=writer,
            )
        )
    return out


def test_single_run_report_has_tables_plots_and_proof_files(tmp_path: Path) -> None:
    run = make_run(tmp_path, "baseline", list(NAMES[:4]))
    done = CliRunner().invoke(cli, ["report", str(run)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    report_dir = run / "report"
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    assert "**proved 4/10 (40.0 %)**" in text
    assert "| mathd algebra | 2 | 2 | 100.0 % |" in text
    assert "| AMC | 1 | 1 | 100.0 % |" in text and "| IMO | 0 | 1 | 0.0 % |" in text
    assert "| model | EleutherAI/llemma_7b (hf) |" in text
    assert "[mathd_algebra_10](proofs/mathd_algebra_10.lean)" in text
    for plot in ("proved_vs_time.png", "proved_vs_expansions.png", "categories.png"):
        assert f"(plots/{plot})" in text
        assert (report_dir / "plots" / plot).read_bytes().startswith(PNG_MAGIC)
    proofs = sorted(path.name for path in (report_dir / "proofs").glob("*.lean"))
    assert proofs == sorted(f"{name}.lean" for name in NAMES[:4])
    lean = (report_dir / "proofs" / "amc12a_2019_p21.lean").read_text(encoding="utf-8")
    assert lean.startswith("import Mathlib") and lean.endswith(":= by\n  simp\n  linarith\n")
    assert "proved 4/10" in done.output and "report.md" in done.output


def test_two_runs_are_compared_gained_lost_common(tmp_path: Path) -> None:
    before = make_run(tmp_path, "before", list(NAMES[:4]))
    after = make_run(tmp_path, "after", list(NAMES[2:7]), names=NAMES[:9])
    done = CliRunner().invoke(cli, ["report", str(before), str(after)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    out = before / "compare_after"
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "gained 3, lost 2, common 2" in text
    assert "**Gained by after (3)**: `aime_1983_p1`, `imo_1959_p1`, `induction_sum_odd`" in text
    assert "**Lost by after (2)**: `mathd_algebra_10`, `mathd_algebra_11`" in text
    assert "Not compared: 1 theorem(s) attempted only by before, 0 only by after." in text
    assert "| **overall** | 4/10 (40.0 %) | 5/9 (55.6 %) |" in text
    assert len(list((out / "proofs" / "before").glob("*.lean"))) == 4
    assert len(list((out / "proofs" / "after").glob("*.lean"))) == 5
    assert (out / "plots" / "categories.png").read_bytes().startswith(PNG_MAGIC)


def test_report_on_a_directory_without_results_exits_2(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert done.exit_code == 2 and "no results.jsonl" in done.output


# -- what failed, the whole budget, empty runs (issue 11, item 9) -------------------------------------


def manual_run(
    tmp_path: Path, name: str, records: list[dict[str, object]], overrides: dict[str, object] | None = None
) -> Path:
    """A run directory with a real manifest (settings from `overrides`) and the given records."""
    dataset = load_dataset(write_jsonl(tmp_path / f"{name}.jsonl", NAMES))
    out = tmp_path / name
    prepared = prepare_run(out, load_settings(environ={}, overrides=overrides), dataset)
    with ResultsWriter(prepared.results_path) as writer:
        for record in records:
            writer.write(record)
    return out


def record(name: str, status: str = "failed", reason: str | None = None, **extra: object) -> dict[str, object]:
    proved = status == "proved"
    return {
        "name": name,
        "split": "test",
        "category": category_of(name).value,
        "status": status,
        "proved": proved,
        "verified": proved,
        "proof": "by\n  simp" if proved else None,
        "tactics": ["simp"] if proved else [],
        "failure_reason": reason,
        "stats": {"expansions": extra.pop("expansions", 1), "wall_seconds": extra.pop("wall_seconds", 0.5)},
        **extra,
    }


ENV_CAUSE = "REPL process died: lean exited with signal 9: out of memory (rlimit 8 GiB): restart 3 of 3 failed"


def test_unproved_theorems_are_listed_with_their_whole_reason(tmp_path: Path) -> None:
    run = manual_run(
        tmp_path,
        "failures",
        [
            record("mathd_algebra_10", "proved", judge="repl"),
            record("mathd_algebra_11", "env_error", ENV_CAUSE),
            record("aime_1983_p1", "failed", "every tactic from the root failed"),
            record("imo_1959_p1", "timed_out", "wall-clock budget of 600 s used up"),
            record("induction_sum_odd", "invalid_statement", "unknown identifier 'Finset.sum_rang'\nline 2: error | x"),
        ],
    )
    text = write_report([run]).read_text(encoding="utf-8")
    assert f"- 1 × {ENV_CAUSE}" in text  # the whole cause, colons and all, not cut at the first ":"
    assert "**Unproved theorems (4)**" in text
    assert f"| mathd_algebra_11 | mathd_algebra | env_error | 1 | 0.5 | {ENV_CAUSE} |" in text
    assert "| aime_1983_p1 | aime | failed | 1 | 0.5 | every tactic from the root failed |" in text
    assert "| imo_1959_p1 | imo | timed_out | 1 | 0.5 | wall-clock budget of 600 s used up |" in text
    assert "unknown identifier 'Finset.sum_rang' line 2: error \\| x |" in text  # one line, pipe escaped
    table = text[text.index("**Unproved theorems") :]
    assert table.index("mathd_algebra_11") < table.index("induction_sum_odd") < table.index("aime_1983_p1")
    assert "| mathd_algebra_10 | mathd_algebra | proved" not in text


def test_rejected_proofs_are_listed_with_judge_and_reason(tmp_path: Path) -> None:
    unsound = {
        "proof": "by\n  exact sorry",
        "status": "nonstandard_axioms",
        "reason": "uses axioms outside the permitted set: sorryAx",
        "judge": "comparator",
    }
    old = {"proof": "by\n  native_decide", "status": "lean_error", "reason": "error: unknown tactic"}
    run = manual_run(
        tmp_path,
        "rejections",
        [
            record(
                "imo_1959_p1", "failed", "1 proof(s) rejected by verification, last: ...", rejected_proofs=[unsound]
            ),
            record("mathd_algebra_10", "proved", judge="repl", rejected_proofs=[old]),
        ],
    )
    text = write_report([run]).read_text(encoding="utf-8")
    assert "**Proofs rejected by the final check (2, of 2 theorems)**" in text
    assert (
        "- `imo_1959_p1` (ended failed): rejected by comparator as `nonstandard_axioms`: "
        "uses axioms outside the permitted set: sorryAx" in text
    )
    assert "  ```lean\n  by\n    exact sorry\n  ```" in text
    assert (
        "- `mathd_algebra_10` (proved by another proof): rejected by judge not recorded as `lean_error`: "
        "error: unknown tactic" in text
    )


def test_budget_names_temperature_prompt_format_and_counts_in_words(tmp_path: Path) -> None:
    overrides = {
        "search": {"expansions": 1, "samples": 1, "timeout_s": 60},
        "model": {"temperature": 0.7, "prompt_format": "reprover"},
    }
    one = manual_run(tmp_path, "one", [record("mathd_algebra_10")], overrides)
    text = write_report([one]).read_text(encoding="utf-8")
    assert "| sampling | temperature 0.7, prompt format reprover, at most 256 new tokens per tactic |" in text
    assert "| budget | 1 expansion × 1 sample per expansion, 60 s per theorem, tactic timeout 5 s," in text
    default = manual_run(tmp_path, "default", [record("mathd_algebra_10")])
    text = write_report([default]).read_text(encoding="utf-8")
    assert "| sampling | temperature 0 (beam search), prompt format llemma," in text
    assert "| budget | 100 expansions × 32 samples per expansion, 600 s per theorem," in text


def test_an_empty_run_says_so_and_draws_no_plots(tmp_path: Path) -> None:
    run = manual_run(tmp_path, "empty", [])
    stale = run / "report" / "plots" / "proved_vs_time.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG_MAGIC)  # left by an earlier report: must not survive as a blank plot
    done = CliRunner().invoke(cli, ["report", str(run)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    text = (run / "report" / "report.md").read_text(encoding="utf-8")
    assert "**No theorem attempted yet**: results.jsonl has no records of the 10 selected theorems" in text
    assert "No plots: no theorem has been attempted yet." in text
    assert "0/0" not in text and "0.0 %" not in text and ".png" not in text
    assert list((run / "report" / "plots").iterdir()) == []
    assert "no theorem attempted yet" in done.output and "0/0" not in done.output
    compared = write_report([run, make_run(tmp_path, "full", list(NAMES[:2]))], tmp_path / "cmp")
    text = compared.read_text(encoding="utf-8")
    assert "| **overall** | nothing attempted | 2/10 (20.0 %) |" in text and "(plots/categories.png)" in text


# -- plots for a paper (issue 11, item 10) -----------------------------------------------------------


def drawn(figure: Any) -> Any:
    """Lay the figure out on an Agg canvas and return its renderer, so extents are final."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def small_budget_run(tmp_path: Path, name: str, provable: list[str], names: tuple[str, ...] = NAMES) -> Path:
    """A scripted run whose manifest records the budget it ran with (5 expansions, 30 s)."""
    dataset = load_dataset(write_jsonl(tmp_path / f"{name}.jsonl", NAMES))
    out = tmp_path / name
    settings = load_settings(environ={}, overrides={"search": {"expansions": 5, "samples": 4, "timeout_s": 30}})
    prepared = prepare_run(out, settings, dataset)
    env, generator = world(provable, NAMES)
    with ResultsWriter(prepared.results_path) as writer:
        asyncio.run(
            run_evaluation(
                [p for p in dataset.problems if p.name in names],
                env,
                generator,
                SearchConfig(max_expansions=5, num_samples=4),
                writer=writer,
            )
        )
    return out


def curves(ax: Any) -> list[Any]:
    return [line for line in ax.get_lines() if len(line.get_xdata())]


def test_proved_curves_run_to_the_budget_with_integer_ticks_and_distinct_styles(tmp_path: Path) -> None:
    runs = [
        load_run(small_budget_run(tmp_path, "before", list(NAMES[:4]))),
        load_run(small_budget_run(tmp_path, "after", list(NAMES[:4]))),  # the same curve: must stay visible
    ]
    figure = proved_figure(runs, "expansions")
    renderer = drawn(figure)
    ax = figure.axes[0]
    lines = curves(ax)
    assert len(lines) == 2
    for line in lines:
        assert max(line.get_xdata()) == 5 and list(line.get_ydata())[-1] == 4  # to the budget, at 4 proved
    assert lines[0].get_linestyle() != lines[1].get_linestyle()
    assert lines[0].get_marker() != lines[1].get_marker()
    ticks = [tick for tick in ax.get_xticks() if 0 <= tick <= 5]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert ax.get_xlim() == (0.0, 5.0)
    legend = figure.legends[0]
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    assert [text.get_text() for text in legend.get_texts()] == ["before: 4/10 (40.0 %)", "after: 4/10 (40.0 %)"]
    percent = [child for child in ax.child_axes if "%" in child.get_ylabel()]
    assert percent and percent[0].get_ylabel() == "proved (% of the 10 theorems attempted)"
    assert ax.get_ylabel() == "theorems proved"
    title = figure.get_suptitle() + "\n" + ax.get_title()
    assert "expansion budget" in title and "EleutherAI/llemma_7b" in title
    assert "5 expansions × 4 samples, 30 s per theorem" in title

    timed = proved_figure(runs, "wall")
    drawn(timed)
    for line in curves(timed.axes[0]):
        assert max(line.get_xdata()) == 30.0  # the time budget, not the slowest proof
    assert timed.axes[0].get_xlim()[1] == 30.0


def test_runs_of_different_sizes_are_drawn_in_percent_with_one_title_line_each(tmp_path: Path) -> None:
    before = load_run(small_budget_run(tmp_path, "before", list(NAMES[:4])))
    after = load_run(make_run(tmp_path, "after", list(NAMES[2:7]), names=NAMES[:9]))  # manifest: 100 expansions
    figure = proved_figure([before, after], "expansions")
    drawn(figure)
    ax = figure.axes[0]
    assert "%" in ax.get_ylabel() and not ax.child_axes
    first, second = curves(ax)
    assert list(first.get_ydata())[-1] == 40.0 and round(list(second.get_ydata())[-1], 1) == 55.6
    assert max(first.get_xdata()) == 5 and max(second.get_xdata()) == 100
    assert "before: EleutherAI/llemma_7b, 5 expansions × 4 samples" in ax.get_title()
    assert "after: EleutherAI/llemma_7b, 100 expansions × 32 samples" in ax.get_title()


def test_category_and_pass_at_k_plots_are_styled_per_run(tmp_path: Path) -> None:
    before = load_run(small_budget_run(tmp_path, "before", list(NAMES[:4])))
    after = load_run(small_budget_run(tmp_path, "after", list(NAMES[2:7])))
    figure = categories_figure([before, after])
    renderer = drawn(figure)
    ax = figure.axes[0]
    hatches = {patch.get_hatch() for patch in ax.patches}
    assert len(hatches) == 2 and "%" in ax.get_ylabel()
    assert not figure.legends[0].get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    assert "EleutherAI/llemma_7b" in ax.get_title() and "5 expansions" in ax.get_title()

    def informal(name: str, first_verified: int | None) -> dict[str, object]:
        attempts = [{"number": n, "verified": n == first_verified} for n in range(3)]
        return record(
            name,
            "proved" if first_verified is not None else "failed",
            informal={
                "attempts_allowed": 3,
                "attempts": attempts,
            },
        )

    one = load_run(manual_run(tmp_path, "i1", [informal("mathd_algebra_10", 0), informal("imo_1959_p1", 2)]))
    two = load_run(manual_run(tmp_path, "i2", [informal("mathd_algebra_10", 1), informal("imo_1959_p1", None)]))
    figure = pass_at_k_figure([one, two])
    renderer = drawn(figure)
    ax = figure.axes[0]
    first, second = curves(ax)
    assert (first.get_linestyle(), first.get_marker()) != (second.get_linestyle(), second.get_marker())
    assert list(first.get_ydata()) == [50.0, 50.0, 100.0] and list(second.get_ydata()) == [0.0, 50.0, 50.0]
    assert all(float(tick).is_integer() for tick in ax.get_xticks())
    assert not figure.legends[0].get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    assert "EleutherAI/llemma_7b, 3 attempts" in ax.get_title()
    assert proved_figure([load_run(manual_run(tmp_path, "none", []))], "wall") is None

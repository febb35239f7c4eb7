"""`prover report`: markdown tables, PNG plots, one .lean file per proof, and a two-run comparison."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from prover.cli.main import cli
from prover.config import load_settings
from prover.evaluation.results import ResultsWriter
from prover.evaluation.runner import run_evaluation
from prover.evaluation.session import prepare_run
from prover.minif2f.dataset import load_dataset
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

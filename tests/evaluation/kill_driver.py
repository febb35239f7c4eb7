"""A run of `prover eval` over scripted stand-ins, resumable: `test_resume.py` kills it with SIGKILL.

Usage: python -m tests.evaluation.kill_driver OUT_DIR DATASET.jsonl
Proves every theorem whose name ends in an even number; each search takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from prover.config import load_settings
from prover.evaluation.results import ResultsWriter
from prover.evaluation.runner import run_evaluation
from prover.evaluation.session import prepare_run
from prover.minif2f.dataset import load_dataset
from tests.evaluation.worlds import world


def provable(name: str) -> bool:
    return int(name.rsplit("_", 1)[1]) % 2 == 0


def main(out_dir: Path, dataset_path: Path) -> None:
    settings = load_settings(
        environ={},
        overrides={"search": {"expansions": 10, "samples": 4}, "eval": {"concurrency": 4, "out_dir": out_dir}},
    )
    dataset = load_dataset(dataset_path)
    prepared = prepare_run(out_dir, settings, dataset, resume=True)
    env, generator = world(
        [name for name in dataset.names if provable(name)],
        dataset.names,
        generator_latency=0.03,
        tactic_latency=0.02,
    )
    with ResultsWriter(prepared.results_path) as writer:
        asyncio.run(
            run_evaluation(
                dataset.problems,
                env,
                generator,
                settings.search,
                concurrency=settings.eval.concurrency,
                writer=writer,
                skip=prepared.skip,
            )
        )
    print(f"done: {len(prepared.skip)} skipped", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

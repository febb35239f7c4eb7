"""Distributed evaluation on a local Ray instance with two workers, scripted Lean and model stand-ins."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from prover.evaluation.results import ResultsWriter, completed_names, read_records
from search.types import SearchConfig
from tests.evaluation import ray_support
from tests.evaluation.worlds import NAMES, problems

ray = pytest.importorskip("ray")

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVABLE = NAMES[:6]
CONFIG = SearchConfig(max_expansions=10, num_samples=4, wall_clock_s=60.0)

pytestmark = pytest.mark.slow  # a local Ray instance takes ~5 s to start, each run a few seconds more
DEADLINE_S = 120


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        # A throwaway local instance: no auth token written under $HOME, no dashboard.
        patch.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
        )
        try:
            yield
        finally:
            ray.shutdown()


def options(**overrides: object):  # type: ignore[no-untyped-def]
    from prover.distributed import RayOptions

    values: dict[str, object] = {
        "workers": 2,
        "concurrency_per_worker": 3,
        "generator_mode": "node",
        "generator_num_gpus": 0.0,
        "worker_num_cpus": 1.0,
    }
    values.update(overrides)
    return RayOptions(**values)  # type: ignore[arg-type]


async def test_two_workers_share_a_node_generator_and_stream_into_one_file(local_ray: None, tmp_path: Path) -> None:
    from prover.distributed import run_distributed

    results = tmp_path / "results.jsonl"
    env_factory = functools.partial(ray_support.make_env, NAMES, PROVABLE, str(tmp_path), tactic_latency=0.2)
    generator_factory = functools.partial(ray_support.make_generator, NAMES, PROVABLE, str(tmp_path))
    half = problems(NAMES[:5])
    with ResultsWriter(results) as writer:
        first = await asyncio.wait_for(
            run_distributed(
                half,
                env_factory=env_factory,
                generator_factory=generator_factory,
                search=CONFIG,
                options=options(),
                writer=writer,
            ),
            DEADLINE_S,
        )
    assert len(first.records) == 5
    # Resume: the same file, the names already recorded are skipped, the rest are run.
    with ResultsWriter(results) as writer:
        second = await asyncio.wait_for(
            run_distributed(
                problems(NAMES),
                env_factory=env_factory,
                generator_factory=generator_factory,
                search=CONFIG,
                options=options(),
                writer=writer,
                skip=completed_names(results),
            ),
            DEADLINE_S,
        )
    assert set(second.skipped) == set(NAMES[:5])
    records = read_records(results)
    assert Counter(record.name for record in records) == Counter(NAMES)
    assert {record.name for record in records if record.proved} == set(PROVABLE)
    assert len({record.worker for record in second.records}) == 2, "both workers took theorems"
    # One node: one generator per run, shared by both workers (two runs, so two builds in all).
    assert len(list(tmp_path.glob("generator-*"))) == 2
    proved = next(record for record in records if record.proved)
    assert proved.lean_file is not None and proved.lean_file.endswith("  simp\n  linarith\n")


async def test_a_lost_worker_s_theorems_are_retried_elsewhere(local_ray: None, tmp_path: Path) -> None:
    from prover.distributed import run_distributed

    results = tmp_path / "results.jsonl"
    dies_once, dies_always = NAMES[1], NAMES[8]
    env_factory = functools.partial(
        ray_support.make_env, NAMES, PROVABLE, str(tmp_path), die_always=[dies_always], die_once=[dies_once]
    )
    generator_factory = functools.partial(ray_support.make_generator, NAMES, PROVABLE)
    with ResultsWriter(results) as writer:
        outcome = await asyncio.wait_for(
            run_distributed(
                problems(NAMES),
                env_factory=env_factory,
                generator_factory=generator_factory,
                search=CONFIG,
                options=options(generator_mode="worker", max_attempts=2, max_worker_restarts=4),
                writer=writer,
            ),
            DEADLINE_S,
        )
    records = {record.name: record for record in read_records(results)}
    assert Counter(record.name for record in outcome.records) == Counter(NAMES), "each theorem recorded once"
    assert len(read_records(results)) == len(NAMES)
    assert records[dies_once].proved and records[dies_once].attempts >= 2
    assert records[dies_always].status == "env_error"
    assert "Ray worker lost 2 times" in (records[dies_always].failure_reason or "")
    assert {name for name, record in records.items() if record.proved} == set(PROVABLE)


async def test_nothing_left_to_do_needs_no_cluster(tmp_path: Path) -> None:
    from prover.distributed import run_distributed

    outcome = await run_distributed(
        problems(NAMES[:3]),
        env_factory=functools.partial(ray_support.make_env, NAMES, PROVABLE, str(tmp_path)),
        generator_factory=functools.partial(ray_support.make_generator, NAMES, PROVABLE),
        search=CONFIG,
        options=options(address="ray://nowhere:1"),
        skip=set(NAMES[:3]),
    )
    assert outcome.records == () and set(outcome.skipped) == set(NAMES[:3])

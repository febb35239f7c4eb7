"""Distributed evaluation on a local Ray instance with two workers, scripted Lean and model stand-ins."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


async def test_only_the_problem_that_kills_its_worker_is_charged(local_ray: None, tmp_path: Path) -> None:
    """A killer alongside innocents: the innocents are re-run alone, never charged, and recorded as usual."""
    from prover.distributed import run_distributed
    from prover.evaluation.events import ProblemFinished, ProblemStarted, WorkerLost

    results = tmp_path / "results.jsonl"
    killer, dies_once = NAMES[1], NAMES[7]
    env_factory = functools.partial(
        ray_support.make_env,
        NAMES,
        PROVABLE,
        str(tmp_path),
        die_always=[killer],
        die_once=[dies_once],
        tactic_latency=0.3,  # the killer's companions are still searching when it kills the worker
    )
    generator_factory = functools.partial(ray_support.make_generator, NAMES, PROVABLE)
    events: list[object] = []
    with ResultsWriter(results) as writer:
        outcome = await asyncio.wait_for(
            run_distributed(
                problems(NAMES),
                env_factory=env_factory,
                generator_factory=generator_factory,
                search=CONFIG,
                options=options(generator_mode="worker", max_attempts=2, max_worker_restarts=6),
                writer=writer,
                events=events.append,
            ),
            DEADLINE_S,
        )
    records = {record.name: record for record in read_records(results)}
    assert Counter(record.name for record in outcome.records) == Counter(NAMES), "each problem recorded once"
    assert len(read_records(results)) == len(NAMES)
    assert records[killer].status == "env_error" and records[killer].attempts == 2
    assert "Ray worker lost 2 times while running it alone" in (records[killer].failure_reason or "")
    for name, record in records.items():
        if name == killer:
            continue
        assert record.attempts == 1, f"{name} was charged for a worker it did not kill"
        assert record.status == ("proved" if name in PROVABLE else "failed"), (name, record.failure_reason)
    assert (tmp_path / f"died-{dies_once}").exists(), "the one-time killer did kill a worker"
    losses = [event for event in events if isinstance(event, WorkerLost)]
    assert [loss.charged for loss in losses if loss.charged is not None] == [killer, killer]
    assert any(killer in loss.in_flight and len(loss.in_flight) > 1 for loss in losses), "innocents were beside it"
    starts = [event.attempt for event in events if isinstance(event, ProblemStarted) and event.name == killer]
    assert starts == [1, 2]
    assert sum(isinstance(event, ProblemFinished) for event in events) == len(NAMES)


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


async def test_a_suspect_waits_for_an_empty_worker_while_ordinary_work_drains_off_it() -> None:
    """Placement: a suspect waits for an empty worker, reserving one so that ordinary work drains off it."""
    from prover.distributed import RayOptions, _Worker, _WorkerPool

    class FakeRay:
        class exceptions:  # mirrors ray.exceptions
            RayActorError = RuntimeError
            RayTaskError = ValueError

    never: Any = None  # the pool never starts a worker here: placement only
    pool = _WorkerPool(FakeRay(), never, never, CONFIG, RayOptions(workers=2, concurrency_per_worker=2), None)
    busy, idle = _Worker(0, object(), "a"), _Worker(1, object(), "b")
    pool.workers = {0: busy, 1: idle}
    busy.in_flight.update({"x", "y"})
    idle.in_flight.add("z")
    suspect = asyncio.create_task(pool._acquire("s", alone=True))
    await asyncio.sleep(0)
    assert not suspect.done() and idle.draining, "the emptier worker is reserved for the suspect"
    ordinary = asyncio.create_task(pool._acquire("o", alone=False))
    await asyncio.sleep(0)
    assert not ordinary.done(), "no ordinary work lands on a reserved worker or a full one"
    await pool._release(idle, "z")
    assert await suspect is idle and idle.alone and idle.in_flight == {"s"}
    await pool._release(busy, "x")
    assert await ordinary is busy
    await pool._release(idle, "s")
    assert not idle.alone and not idle.draining

"""MergingGenerator: concurrent calls become batched inner calls (generic over any backend)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from lean_env.types import ProofState
from prover.models.base import GenerationError, PromptTooLong
from prover.models.batching import MergingGenerator
from search.types import GenerationRequest, TacticCandidate


class RecordingInner:
    """Answers each request with one candidate naming its state; records every batch it gets."""

    def __init__(self, latency: float = 0.01) -> None:
        self.latency = latency
        self.batches: list[list[str]] = []
        self.fail_with: Exception | None = None
        self.too_long: set[str] = set()
        self.closed = False

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        self.batches.append([r.state.pp for r in requests])
        await asyncio.sleep(self.latency)
        if self.fail_with is not None:
            raise self.fail_with
        bad = [index for index, r in enumerate(requests) if r.state.pp in self.too_long]
        if bad:
            raise PromptTooLong("too long", indices=bad)
        return [[TacticCandidate(f"tac {r.state.pp}", -1.0, 2)] for r in requests]

    async def close(self) -> None:
        self.closed = True


def req(name: str, samples: int = 4) -> GenerationRequest:
    return GenerationRequest(ProofState.from_pp(f"⊢ {name}"), samples)


async def test_concurrent_calls_are_merged_into_one_inner_call() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=20)
    results = await asyncio.wait_for(
        asyncio.gather(*(merger.generate([req(str(i))]) for i in range(8))),
        timeout=5,
    )
    assert len(inner.batches) == 1 and len(inner.batches[0]) == 8
    assert merger.stats.inner_calls == 1 and merger.stats.calls == 8 and merger.stats.batch_sizes == [8]
    # Every caller gets the answers to its own requests, in order.
    assert [r[0][0].text for r in results] == [f"tac ⊢ {i}" for i in range(8)]


async def test_calls_arriving_during_an_inner_call_join_the_next_one() -> None:
    inner = RecordingInner(latency=0.1)
    merger = MergingGenerator(inner, window_ms=0)
    first = asyncio.ensure_future(merger.generate([req("a")]))
    await asyncio.sleep(0.03)  # the first inner call is running now
    rest = [asyncio.ensure_future(merger.generate([req(name)])) for name in "bcd"]
    await asyncio.wait_for(asyncio.gather(first, *rest), timeout=5)
    assert inner.batches == [["⊢ a"], ["⊢ b", "⊢ c", "⊢ d"]]


async def test_budget_splits_batches_in_arrival_order() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=20, max_batch_cost=10, cost=lambda r: r.num_samples)
    calls = [merger.generate([req(str(i), samples=4)]) for i in range(5)]  # cost 4 each: 2 fit in 10
    await asyncio.wait_for(asyncio.gather(*calls), timeout=5)
    assert [len(batch) for batch in inner.batches] == [2, 2, 1]
    assert [s for batch in inner.batches for s in batch] == [f"⊢ {i}" for i in range(5)]
    # A single call above the budget still runs (alone).
    await asyncio.wait_for(merger.generate([req("big", samples=50)]), timeout=5)
    assert inner.batches[-1] == ["⊢ big"]


async def test_a_multi_request_call_stays_together() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=5)
    out = await asyncio.wait_for(merger.generate([req("x"), req("y"), req("z")]), timeout=5)
    assert [row[0].text for row in out] == ["tac ⊢ x", "tac ⊢ y", "tac ⊢ z"]
    assert await merger.generate([]) == []


async def test_prompt_too_long_fails_only_its_caller() -> None:
    inner = RecordingInner()
    inner.too_long = {"⊢ huge"}
    merger = MergingGenerator(inner, window_ms=20)
    results = await asyncio.wait_for(
        asyncio.gather(
            merger.generate([req("a")]),
            merger.generate([req("b"), req("huge")]),
            merger.generate([req("c")]),
            return_exceptions=True,
        ),
        timeout=5,
    )
    assert isinstance(results[1], PromptTooLong) and results[1].indices == (1,)
    first, third = results[0], results[2]
    assert isinstance(first, list) and isinstance(third, list)
    assert first[0][0].text == "tac ⊢ a" and third[0][0].text == "tac ⊢ c"
    assert inner.batches[1] == ["⊢ a", "⊢ c"]  # the others were retried without it


async def test_inner_failure_reaches_every_caller_of_the_batch() -> None:
    inner = RecordingInner()
    inner.fail_with = GenerationError("CUDA error: device-side assert")
    merger = MergingGenerator(inner, window_ms=10)
    results = await asyncio.wait_for(
        asyncio.gather(*(merger.generate([req(str(i))]) for i in range(3)), return_exceptions=True), timeout=5
    )
    assert all(isinstance(r, GenerationError) and "device-side" in str(r) for r in results)
    inner.fail_with = None  # the merger keeps serving after a failure
    assert (await asyncio.wait_for(merger.generate([req("ok")]), timeout=5))[0][0].text == "tac ⊢ ok"


async def test_cancelled_caller_is_not_sent() -> None:
    inner = RecordingInner(latency=0.1)
    merger = MergingGenerator(inner, window_ms=0)
    first = asyncio.ensure_future(merger.generate([req("running")]))
    await asyncio.sleep(0.03)
    doomed = asyncio.ensure_future(merger.generate([req("cancelled")]))
    kept = asyncio.ensure_future(merger.generate([req("kept")]))
    await asyncio.sleep(0.01)
    doomed.cancel()
    await asyncio.wait_for(asyncio.gather(first, kept), timeout=5)
    assert doomed.cancelled()
    assert ["⊢ cancelled"] not in inner.batches and inner.batches[-1] == ["⊢ kept"]


async def test_close_fails_queued_calls_and_closes_inner() -> None:
    inner = RecordingInner(latency=0.2)
    merger = MergingGenerator(inner, window_ms=0)
    running = asyncio.ensure_future(merger.generate([req("a")]))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(merger.generate([req("b")]))
    await asyncio.sleep(0.01)
    await merger.close()
    for task in (running, queued):
        with pytest.raises(GenerationError):
            await asyncio.wait_for(task, timeout=5)
    assert inner.closed
    with pytest.raises(GenerationError, match="closed"):
        await merger.generate([req("late")])


def test_merger_survives_a_new_event_loop() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=1)
    for name in ("first", "second"):  # two asyncio.run calls, as two CLI phases would do
        out = asyncio.run(asyncio.wait_for(merger.generate([req(name)]), timeout=5))
        assert out[0][0].text == f"tac ⊢ {name}"

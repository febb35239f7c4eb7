"""MergingGenerator: concurrent text calls become batched inner calls (generic over any backend)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from lean_env.types import ProofState
from prover.models.base import GenerationError, PromptTooLong, SamplingConfig
from prover.models.batching import BatchMerger, MergingGenerator
from prover.models.prompts import PromptFormat
from prover.models.tactics import PromptedTacticGenerator
from prover.models.text import Completion, FinishReason, TextGenerator, TextRequest
from search.types import GenerationRequest


class RecordingInner:
    """Answers each request with one completion naming its prompt; records every batch it gets."""

    def __init__(self, latency: float = 0.01) -> None:
        self.latency = latency
        self.batches: list[list[str]] = []
        self.fail_with: Exception | None = None
        self.too_long: set[str] = set()
        self.closed = False

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        self.batches.append([r.prompt for r in requests])
        await asyncio.sleep(self.latency)
        if self.fail_with is not None:
            raise self.fail_with
        bad = [index for index, r in enumerate(requests) if r.prompt in self.too_long]
        if bad:
            raise PromptTooLong("too long", indices=bad)
        return [[Completion(f"tac {r.prompt}", (-0.5, -0.5), FinishReason.STOP)] for r in requests]

    async def close(self) -> None:
        self.closed = True


def req(name: str, samples: int = 4) -> TextRequest:
    return TextRequest(f"⊢ {name}", n=samples, temperature=1.0)


async def test_concurrent_calls_are_merged_into_one_inner_call() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=20)
    assert isinstance(merger, TextGenerator)
    results = await asyncio.wait_for(
        asyncio.gather(*(merger.complete([req(str(i))]) for i in range(8))),
        timeout=5,
    )
    assert len(inner.batches) == 1 and len(inner.batches[0]) == 8
    assert merger.stats.inner_calls == 1 and merger.stats.calls == 8 and merger.stats.batch_sizes == [8]
    # Every caller gets the answers to its own requests, in order.
    assert [r[0][0].text for r in results] == [f"tac ⊢ {i}" for i in range(8)]


async def test_calls_arriving_during_an_inner_call_join_the_next_one() -> None:
    inner = RecordingInner(latency=0.1)
    merger = MergingGenerator(inner, window_ms=0)
    first = asyncio.ensure_future(merger.complete([req("a")]))
    await asyncio.sleep(0.03)  # the first inner call is running now
    rest = [asyncio.ensure_future(merger.complete([req(name)])) for name in "bcd"]
    await asyncio.wait_for(asyncio.gather(first, *rest), timeout=5)
    assert inner.batches == [["⊢ a"], ["⊢ b", "⊢ c", "⊢ d"]]


async def test_budget_splits_batches_in_arrival_order() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=20, max_batch_cost=10, cost=lambda r: r.n)
    calls = [merger.complete([req(str(i), samples=4)]) for i in range(5)]  # cost 4 each: 2 fit in 10
    await asyncio.wait_for(asyncio.gather(*calls), timeout=5)
    assert [len(batch) for batch in inner.batches] == [2, 2, 1]
    assert [s for batch in inner.batches for s in batch] == [f"⊢ {i}" for i in range(5)]
    # A single call above the budget still runs (alone).
    await asyncio.wait_for(merger.complete([req("big", samples=50)]), timeout=5)
    assert inner.batches[-1] == ["⊢ big"]


async def test_a_multi_request_call_stays_together() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=5)
    out = await asyncio.wait_for(merger.complete([req("x"), req("y"), req("z")]), timeout=5)
    assert [row[0].text for row in out] == ["tac ⊢ x", "tac ⊢ y", "tac ⊢ z"]
    assert await merger.complete([]) == []


async def test_prompt_too_long_fails_only_its_caller() -> None:
    inner = RecordingInner()
    inner.too_long = {"⊢ huge"}
    merger = MergingGenerator(inner, window_ms=20)
    results = await asyncio.wait_for(
        asyncio.gather(
            merger.complete([req("a")]),
            merger.complete([req("b"), req("huge")]),
            merger.complete([req("c")]),
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
        asyncio.gather(*(merger.complete([req(str(i))]) for i in range(3)), return_exceptions=True), timeout=5
    )
    assert all(isinstance(r, GenerationError) and "device-side" in str(r) for r in results)
    inner.fail_with = None  # the merger keeps serving after a failure
    assert (await asyncio.wait_for(merger.complete([req("ok")]), timeout=5))[0][0].text == "tac ⊢ ok"


async def test_cancelled_caller_is_not_sent() -> None:
    inner = RecordingInner(latency=0.1)
    merger = MergingGenerator(inner, window_ms=0)
    first = asyncio.ensure_future(merger.complete([req("running")]))
    await asyncio.sleep(0.03)
    doomed = asyncio.ensure_future(merger.complete([req("cancelled")]))
    kept = asyncio.ensure_future(merger.complete([req("kept")]))
    await asyncio.sleep(0.01)
    doomed.cancel()
    await asyncio.wait_for(asyncio.gather(first, kept), timeout=5)
    assert doomed.cancelled()
    assert ["⊢ cancelled"] not in inner.batches and inner.batches[-1] == ["⊢ kept"]


async def test_close_fails_queued_calls_and_closes_inner() -> None:
    inner = RecordingInner(latency=0.2)
    merger = MergingGenerator(inner, window_ms=0)
    running = asyncio.ensure_future(merger.complete([req("a")]))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(merger.complete([req("b")]))
    await asyncio.sleep(0.01)
    await merger.close()
    for task in (running, queued):
        with pytest.raises(GenerationError):
            await asyncio.wait_for(task, timeout=5)
    assert inner.closed
    with pytest.raises(GenerationError, match="closed"):
        await merger.complete([req("late")])


def test_merger_survives_a_new_event_loop() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=1)
    for name in ("first", "second"):  # two asyncio.run calls, as two CLI phases would do
        out = asyncio.run(asyncio.wait_for(merger.complete([req(name)]), timeout=5))
        assert out[0][0].text == f"tac ⊢ {name}"


async def test_default_cost_is_the_number_of_completions() -> None:
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=20, max_batch_cost=8)
    calls = [merger.complete([req(str(i), samples=3)]) for i in range(4)]  # 3 each: 2 fit in 8
    await asyncio.wait_for(asyncio.gather(*calls), timeout=5)
    assert merger.stats.batch_sizes == [2, 2]


async def test_tactic_and_text_callers_share_batches() -> None:
    # A tactic generator and a plain text caller (a draft, a sketch) over one merger: one inner call.
    inner = RecordingInner()
    merger = MergingGenerator(inner, window_ms=20)
    fmt = PromptFormat("plain", "S: {{state}}\n", ("\n",))
    tactic = PromptedTacticGenerator(merger, fmt, SamplingConfig(temperature=1.0, max_new_tokens=7))
    state = GenerationRequest(ProofState.from_pp("⊢ p"), 3)
    candidates, drafts = await asyncio.wait_for(
        asyncio.gather(tactic.generate([state]), merger.complete([TextRequest("Informal:", max_tokens=9)])), timeout=5
    )
    assert inner.batches == [["S: ⊢ p\n", "Informal:"]] and merger.stats.calls == 2
    assert [c.text for c in candidates[0]] == ["tac S: ⊢ p"] and candidates[0][0].num_tokens == 2
    assert drafts[0][0].text == "tac Informal:"


async def test_batch_merger_is_generic_over_requests_and_results() -> None:
    seen: list[list[int]] = []

    async def double(batch: list[int]) -> list[int]:
        seen.append(batch)
        return [2 * x for x in batch]

    async def nothing() -> None:
        return None

    merger: BatchMerger[int, int] = BatchMerger(double, nothing, cost=lambda x: 1, window_ms=20)
    results = await asyncio.wait_for(asyncio.gather(merger.submit([1, 2]), merger.submit([3])), timeout=5)
    assert results == [[2, 4], [6]] and seen == [[1, 2, 3]]
    await merger.close()

"""The `hf` backend end to end on a tiny random Llama saved to a temp dir (real loading code, no downloads)."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the hf backend needs torch (the `hf` extra)")
pytest.importorskip("transformers", reason="the hf backend needs transformers (the `hf` extra)")

from lean_env.errors import MissingDependency  # noqa: E402
from lean_env.types import ProofState  # noqa: E402
from prover.config import ModelSettings  # noqa: E402
from prover.models import (  # noqa: E402
    MergingGenerator,
    PromptedTacticGenerator,
    build_generator,
    build_text_generator,
)
from prover.models.base import PromptTooLong, SamplingConfig, finalize_candidates  # noqa: E402
from prover.models.hf import HFGenerator, ModelLoadError, RawSample, resolve_dtype  # noqa: E402
from prover.models.prompts import REPROVER, PromptFormat  # noqa: E402
from prover.models.text import Completion, FinishReason, TextGenerator, TextRequest  # noqa: E402
from search.types import GenerationRequest, TacticCandidate  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
STATES = [
    "⊢ n + 0 = n",
    "a b : ℝ\nhab : a < b\n⊢ a ≤ b + 1",
    "x y z : ℕ\nh₀ : x + y = z\nh₁ : y = 2\nh₂ : z = 7\n⊢ x = 5",
    "p q : Prop\nhp : p\n⊢ p ∨ q",
    "f : ℕ → ℕ\nhf : ∀ n, f n = 2 * n\n⊢ f 3 = 6",
    "s : Finset ℕ\n⊢ s.card ≥ 0",
]
NO_STOPS = PromptFormat("plain", "{{state}}\n", ())


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model, tokenizer


def make(loaded: tuple[Any, Any], *, seed: int = 0, static: bool = False, max_batch_tokens: int = 65536) -> HFGenerator:
    model, tokenizer = loaded
    return HFGenerator(model, tokenizer, seed=seed, static_cache=static, max_batch_tokens=max_batch_tokens)


def text(
    state: str, n: int = 4, fmt: PromptFormat = NO_STOPS, *, tokens: int = 8, sampling: dict[str, Any] | None = None
) -> TextRequest:
    """The text request for `state` rendered with `fmt`; `sampling` as the old settings put it
    (temperature 0 meaning beam search)."""
    options = dict(sampling or {"temperature": 1.0})
    temperature = options.pop("temperature")
    return TextRequest(
        fmt.render(req(state)),
        n=n,
        max_tokens=tokens,
        temperature=temperature,
        beam_search=temperature == 0,
        stop=fmt.stops,
        **options,
    )


def tactics(generator: HFGenerator, fmt: PromptFormat, **sampling: Any) -> PromptedTacticGenerator:
    return PromptedTacticGenerator(generator, fmt, SamplingConfig(**sampling))


def teacher_forced(model: Any, prompt_ids: list[int], tokens: tuple[int, ...]) -> float:
    """Sum of log-softmax(raw logits) of `tokens` after `prompt_ids`, one unpadded forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + list(tokens)])).logits[0].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    start = len(prompt_ids) - 1
    return sum(float(log_probs[start + i, token]) for i, token in enumerate(tokens))


def req(state: str, samples: int = 4) -> GenerationRequest:
    return GenerationRequest(ProofState.from_pp(state), samples)


@pytest.mark.parametrize("static", [False, True], ids=["growing-cache", "static-cache"])
@pytest.mark.parametrize(
    "sampling",
    [
        {"temperature": 0.0},
        {"temperature": 0.7, "top_p": 0.9, "top_k": 40},
        {"temperature": 1.3},
    ],
    ids=["beam", "t0.7-topp-topk", "t1.3"],
)
def test_logprobs_equal_a_teacher_forced_pass(loaded: tuple[Any, Any], static: bool, sampling: dict[str, Any]) -> None:
    # Prompts of different lengths share one left-padded batch; each sample's log-prob must still be
    # the raw model's, not the temperature/top-p distribution it was drawn from, token by token.
    generator = make(loaded, seed=1, static=static)
    requests = [text(state, 4, tokens=7, sampling=sampling) for state in STATES[:3]]
    rows = generator.generate_raw(requests)
    assert generator.stats.chunks == 1 and generator.stats.prompts_encoded == 3
    for request, row in zip(requests, rows, strict=True):
        assert len(row) == 4
        ids = generator.prompt_ids(request.prompt)
        for sample in row:
            assert 1 <= len(sample.token_ids) == len(sample.token_logprobs) <= 7
            for count in range(1, len(sample.token_ids) + 1):
                expected = teacher_forced(loaded[0], ids, sample.token_ids[:count])
                assert sum(sample.token_logprobs[:count]) == pytest.approx(expected, abs=1e-4)
            assert sample.logprob == pytest.approx(teacher_forced(loaded[0], ids, sample.token_ids), abs=1e-4)


class FakeGraph:
    """Stands in for a CUDA graph on the CPU: replay re-runs the captured step into the same output
    tensor, and fails if a buffer the step reads moved (a real graph would read stale memory)."""

    replays = 0

    def __init__(self, step: Any, cache: Any) -> None:
        self.step, self.cache = step, cache
        self.pointers = self._pointers()

    def _pointers(self) -> list[int]:
        return [t.data_ptr() for t in (*self.cache.keys, *self.cache.values, self.cache.write_positions)]

    def replay(self) -> None:
        assert self._pointers() == self.pointers, "a buffer of the captured step was reallocated"
        FakeGraph.replays += 1
        self.step.output.copy_(self.step.forward())


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"temperature": 1.0}], ids=["beam", "sampling"])
def test_graph_replay_and_capture_failure_give_the_eager_results(
    loaded: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sampling: dict[str, Any]
) -> None:
    from prover.models import hf

    requests = [text(state, 3, tokens=6, sampling=sampling) for state in STATES[:3]]
    eager = make(loaded, seed=2, static=True).generate_raw(requests)

    caches: list[Any] = []
    real_forward = hf.HFGenerator._forward

    def remember_cache(self: Any, cache: Any, *args: Any) -> Any:
        caches.append(cache)
        return real_forward(self, cache, *args)

    def fake_capture(step: Any) -> None:
        step.output = step.forward().clone()
        step.graph = FakeGraph(step, caches[-1])

    monkeypatch.setattr(hf, "_graphs_available", lambda device: True)
    monkeypatch.setattr(hf.HFGenerator, "_forward", remember_cache)
    monkeypatch.setattr(hf._StaticStep, "_capture", fake_capture)
    FakeGraph.replays = 0
    graphed = make(loaded, seed=2, static=True)
    replayed = graphed.generate_raw(requests)
    # Every decode step is a replay (capture itself runs nothing); the prefill is one eager call.
    assert FakeGraph.replays == graphed.stats.graph_steps == graphed.stats.forward_calls - 1 >= 1
    assert replayed == eager

    def broken_capture(step: Any) -> None:
        raise RuntimeError()  # empty message, as some capture failures have

    monkeypatch.setattr(hf._StaticStep, "_capture", broken_capture)
    generator = make(loaded, seed=2, static=True)
    with caplog.at_level("WARNING", logger="prover.models.hf"):
        assert generator.generate_raw(requests) == eager
    assert "RuntimeError" in caplog.text and "running it eagerly" in caplog.text
    assert generator.stats.graph_failures == 1 and generator.stats.graph_steps == 0
    caplog.clear()
    generator.generate_raw(requests)  # graphs stay off after a failure: no second warning
    assert "RuntimeError" not in caplog.text


@pytest.mark.gpu
@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"temperature": 1.0}], ids=["beam", "sampling"])
def test_cuda_graph_decode_steps_give_the_eager_results(
    loaded: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, sampling: dict[str, Any]
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from prover.models import hf

    model, tokenizer = loaded
    on_gpu = (copy.deepcopy(model).to("cuda"), tokenizer)
    requests = [text(state, 3, tokens=6, sampling=sampling) for state in STATES[:3]]
    graphed = make(on_gpu, seed=2, static=True)
    rows = graphed.generate_raw(requests)
    assert graphed.stats.graph_failures == 0 and graphed.stats.graph_steps >= 1
    monkeypatch.setattr(hf, "_graphs_available", lambda device: False)
    eager = make(on_gpu, seed=2, static=True).generate_raw(requests)
    assert [[s.token_ids for s in row] for row in rows] == [[s.token_ids for s in row] for row in eager]
    for request, row in zip(requests, rows, strict=True):
        for sample in row:
            expected = teacher_forced(model, graphed.prompt_ids(request.prompt), sample.token_ids)
            assert sample.logprob == pytest.approx(expected, abs=1e-3)


def test_beam_search_agrees_with_transformers_beam_search(loaded: tuple[Any, Any]) -> None:
    model, _ = loaded
    generator = make(loaded)
    request = text(STATES[1], 4, tokens=6, sampling={"temperature": 0.0})
    ours = generator.generate_raw([request])[0]
    assert all(sample.finish_reason == FinishReason.LENGTH for sample in ours)  # no EOS: same lengths, same rule
    ids = torch.tensor([generator.prompt_ids(request.prompt)])
    reference = model.generate(
        ids,
        num_beams=4,
        num_return_sequences=4,
        do_sample=False,
        max_new_tokens=6,
        min_new_tokens=6,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert [list(s.token_ids) for s in ours] == [row[ids.shape[1] :].tolist() for row in reference.sequences]
    for sample, score in zip(ours, reference.sequences_scores, strict=True):
        assert sample.logprob / 6 == pytest.approx(float(score), abs=1e-4)


def test_greedy_decoding_agrees_with_transformers_and_copies_its_one_completion(loaded: tuple[Any, Any]) -> None:
    model, _ = loaded
    generator = make(loaded)
    request = TextRequest(NO_STOPS.render(req(STATES[2])), n=3, max_tokens=6, temperature=0.0)
    (row,) = asyncio.run(generator.complete([request]))
    assert len(row) == 3 and row[0] == row[1] == row[2]
    assert generator.stats.sequences == 1  # one sequence decoded, not three
    (raw,) = generator.generate_raw([request])
    ids = torch.tensor([generator.prompt_ids(request.prompt)])
    reference = model.generate(ids, do_sample=False, max_new_tokens=6, min_new_tokens=6)
    assert list(raw[0].token_ids) == reference[0, ids.shape[1] :].tolist()
    assert row[0].finish_reason == FinishReason.LENGTH and row[0].num_tokens == 6


def biased(loaded: tuple[Any, Any], favourites: dict[int, float]) -> tuple[Any, Any]:
    """A copy of the model whose next-token distribution is pinned by a bias on a few tokens."""
    model, tokenizer = loaded
    twin = copy.deepcopy(model)
    head = torch.nn.Linear(twin.config.hidden_size, twin.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(twin.lm_head.weight * 0.01)
        head.bias.fill_(-10.0)
        for token, value in favourites.items():
            head.bias[token] = value
    twin.lm_head = head
    return twin, tokenizer


@pytest.fixture(scope="module")
def dashes(loaded: tuple[Any, Any]) -> tuple[Any, Any]:
    """The model pinned to strings over {a, -}."""
    _, tokenizer = loaded
    a, dash = tokenizer.convert_tokens_to_ids(["a", "-"])
    return biased(loaded, {a: 5.0, dash: 5.0})


DASHES = PromptFormat("dashes", "{{state}}\n", ("---",))


def test_stop_strings_spanning_tokens_end_samples(loaded: tuple[Any, Any], dashes: tuple[Any, Any]) -> None:
    _, tokenizer = loaded
    generator = make(dashes, seed=3)
    request = text(STATES[0], 16, DASHES, tokens=24)
    row = generator.generate_raw([request])[0]
    stopped = [s for s in row if s.finish_reason == FinishReason.STOP]
    assert len(stopped) >= 10
    for sample in stopped:
        decoded = tokenizer.decode(list(sample.token_ids))
        assert decoded.endswith("---") and "---" not in decoded[:-1]  # stopped at the first occurrence
        assert sample.logprob == pytest.approx(
            teacher_forced(dashes[0], generator.prompt_ids(request.prompt), sample.token_ids), abs=1e-4
        )
    for sample in row:
        if sample.finish_reason == FinishReason.LENGTH:
            assert "---" not in sample.text and len(sample.token_ids) == 24

    # Through the text protocol: the same samples, cut before the stop string.
    generator = make(dashes, seed=3)
    (completions,) = asyncio.run(generator.complete([request]))
    assert [c.finish_reason for c in completions] == [s.finish_reason for s in row]
    assert [c.token_logprobs for c in completions] == [s.token_logprobs for s in row]
    for completion, sample in zip(completions, row, strict=True):
        assert "---" not in completion.text and sample.text.startswith(completion.text)
        if completion.finish_reason == FinishReason.STOP:
            assert sample.text == completion.text + "---"

    # Through the tactic generator: empty tactics dropped, duplicates merged, best first.
    generator = make(dashes, seed=3)
    (candidates,) = asyncio.run(
        tactics(generator, DASHES, max_new_tokens=24, temperature=1.0).generate([req(STATES[0], 16)])
    )
    texts = [c.text for c in candidates]
    assert len(texts) == len(set(texts)) < 16
    assert all(set(t) <= {"a", "-"} and "---" not in t and t for t in texts)
    means = [c.mean_logprob for c in candidates]
    assert means == sorted(means, reverse=True)


def test_eos_ends_samples_and_empty_tactics_are_dropped(loaded: tuple[Any, Any]) -> None:
    _, tokenizer = loaded
    eos = tokenizer.eos_token_id
    pinned = biased(loaded, {eos: 30.0})
    sampler = make(pinned)
    request = text(STATES[0], 4, REPROVER, tokens=10)
    row = sampler.generate_raw([request])[0]
    assert len(row) == 4 and all(s.finish_reason == FinishReason.EOS and s.token_ids == (eos,) for s in row)
    (completions,) = asyncio.run(sampler.complete([request]))
    assert all(c == Completion("", c.token_logprobs, FinishReason.EOS) and c.num_tokens == 1 for c in completions)
    assert asyncio.run(tactics(sampler, REPROVER, max_new_tokens=10, temperature=1.0).generate([req(STATES[0])])) == [
        []
    ]

    # Beam search keeps the n best finished hypotheses: EOS at once first, then one token + EOS.
    beams = make(pinned)
    row = beams.generate_raw([text(STATES[0], 4, REPROVER, tokens=10, sampling={"temperature": 0.0})])[0]
    assert row[0].token_ids == (eos,) and row[0].logprob == pytest.approx(0.0, abs=1e-6)
    assert all(
        s.finish_reason == FinishReason.EOS and s.token_ids[-1] == eos and len(s.token_ids) == 2 for s in row[1:]
    )
    (candidates,) = asyncio.run(tactics(beams, REPROVER, max_new_tokens=10, temperature=0.0).generate([req(STATES[0])]))
    assert len(candidates) == 3 and all(c.text and c.num_tokens == 2 for c in candidates)


@pytest.mark.parametrize("temperature", [1.0, 0.0], ids=["sampling", "beam"])
def test_finished_prompts_leave_the_batch_without_disturbing_the_rest(
    loaded: tuple[Any, Any], temperature: float
) -> None:
    # EOS is likely at every step, so prompts finish at different steps and are dropped mid-chunk.
    _, tokenizer = loaded
    a, b = tokenizer.convert_tokens_to_ids(["a", "b"])
    pinned = biased(loaded, {a: 1.0, b: 1.0, tokenizer.eos_token_id: 1.0})
    generator = make(pinned, seed=5)
    requests = [text(state, 2, tokens=12, sampling={"temperature": temperature}) for state in STATES]
    rows = generator.generate_raw(requests)
    assert generator.stats.chunks == 1 and generator.stats.compactions >= 1
    lengths = {len(sample.token_ids) for row in rows for sample in row}
    assert len(lengths) > 1
    for request, row in zip(requests, rows, strict=True):
        for sample in row:
            expected = teacher_forced(pinned[0], generator.prompt_ids(request.prompt), sample.token_ids)
            assert sample.logprob == pytest.approx(expected, abs=1e-4)


def test_duplicate_samples_are_merged(loaded: tuple[Any, Any]) -> None:
    _, tokenizer = loaded
    pinned = biased(loaded, {tokenizer.convert_tokens_to_ids("a"): 8.0, tokenizer.eos_token_id: 8.0})
    generator = tactics(make(pinned), REPROVER, max_new_tokens=3, temperature=1.0)
    (candidates,) = asyncio.run(generator.generate([req(STATES[2], 24)]))
    # 24 samples over {a, EOS} of at most 3 tokens: only "a", "aa", "aaa" are possible tactics.
    assert 1 <= len(candidates) <= 3
    assert {c.text for c in candidates} <= {"a", "aa", "aaa"}


def old_candidates(row: list[RawSample], fmt: PromptFormat, limit: int) -> list[TacticCandidate]:
    """What the backend's own tactic path used to return: candidates from the raw samples (text not
    cut before extraction, log-prob and token count over every generated token)."""
    uncut = (Completion(sample.text, sample.token_logprobs, sample.finish_reason) for sample in row)
    return finalize_candidates(uncut, fmt.extract, limit=limit)


@pytest.mark.parametrize("temperature", [1.0, 0.0], ids=["sampling", "beam"])
def test_prompted_tactic_generator_gives_the_candidates_of_the_old_tactic_path(
    loaded: tuple[Any, Any], dashes: tuple[Any, Any], temperature: float
) -> None:
    requests = [req(state, 8) for state in STATES[:3]]
    generator = tactics(make(dashes, seed=4), DASHES, max_new_tokens=16, temperature=temperature)
    assert [r.stop for r in map(generator.text_request, requests)] == [("---",)] * 3
    assert all(r.beam_search == (temperature == 0) and r.n == 8 for r in map(generator.text_request, requests))
    ours = asyncio.run(generator.generate(requests))
    raw = make(dashes, seed=4).generate_raw([generator.text_request(r) for r in requests])
    expected = [old_candidates(row, DASHES, 8) for row in raw]
    assert [[c.text for c in row] for row in ours] == [[c.text for c in row] for row in expected]
    for mine, theirs in zip(ours, expected, strict=True):
        assert [c.num_tokens for c in mine] == [c.num_tokens for c in theirs]
        assert [c.logprob for c in mine] == pytest.approx([c.logprob for c in theirs])
    assert any(len(row) > 1 for row in ours)


def test_hf_generator_is_a_text_generator_with_token_logprobs(loaded: tuple[Any, Any]) -> None:
    generator = make(loaded, seed=6)
    assert isinstance(generator, TextGenerator)
    request = text(STATES[3], 3, tokens=5)
    (completions,) = asyncio.run(generator.complete([request]))
    ids = generator.prompt_ids(request.prompt)
    (raw,) = make(loaded, seed=6).generate_raw([request])
    for completion, sample in zip(completions, raw, strict=True):
        assert completion.num_tokens == len(sample.token_ids) and completion.text == sample.text
        assert completion.logprob == pytest.approx(sum(completion.token_logprobs))
        assert completion.logprob == pytest.approx(teacher_forced(loaded[0], ids, sample.token_ids), abs=1e-4)
        assert completion.finish_reason in (FinishReason.LENGTH, FinishReason.EOS)
        assert completion.finish_reason != FinishReason.LENGTH or completion.num_tokens == 5
    assert asyncio.run(generator.complete([])) == []


def test_requests_with_their_own_stops_and_lengths_share_one_call(dashes: tuple[Any, Any]) -> None:
    prompt = DASHES.render(req(STATES[0]))
    requests = [
        TextRequest(prompt, n=6, max_tokens=24, temperature=1.0, stop=("---",), seed=11),
        TextRequest(prompt, n=4, max_tokens=5, temperature=1.0, seed=12),  # no stop string: runs 5 tokens
        TextRequest(prompt, n=5, max_tokens=12, temperature=1.0, stop=("a",), seed=13),
        TextRequest(prompt, n=2, max_tokens=7, beam_search=True, stop=("--",)),
    ]
    generator = make(dashes)
    together = asyncio.run(generator.complete(requests))
    assert generator.stats.complete_calls == 1 and generator.stats.chunks == 4  # one chunk per way of decoding
    first, second, third, fourth = together
    assert len(first) == 6 and all("---" not in c.text for c in first)
    assert sum(c.finish_reason == FinishReason.STOP for c in first) >= 3
    assert len(second) == 4 and all(c.finish_reason == FinishReason.LENGTH and c.num_tokens == 5 for c in second)
    assert len(third) == 5 and all("a" not in c.text for c in third)
    assert all(c.finish_reason == FinishReason.STOP for c in third if c.num_tokens < 12)
    assert 1 <= len(fourth) <= 2 and all("--" not in c.text and c.num_tokens <= 7 for c in fourth)
    # Each request gets what it would get alone (seeded samples, deterministic beams).
    for request, row in zip(requests, together, strict=True):
        (alone,) = asyncio.run(make(dashes).complete([request]))
        assert [c.text for c in alone] == [c.text for c in row]
        for mine, theirs in zip(alone, row, strict=True):
            assert mine.token_logprobs == pytest.approx(theirs.token_logprobs, abs=1e-5)


def test_concurrent_text_calls_with_different_stops_merge_into_one_model_call(dashes: tuple[Any, Any]) -> None:
    inner = make(dashes)
    merger = MergingGenerator(inner, window_ms=50, cost=inner.request_cost)
    prompt = DASHES.render(req(STATES[1]))
    calls = [
        [TextRequest(prompt, n=3, max_tokens=10, temperature=1.0, stop=("---",), seed=1)],
        [TextRequest(prompt, n=2, max_tokens=4, temperature=1.0, seed=2)],
        [TextRequest(prompt, n=2, max_tokens=10, temperature=1.0, stop=("---",), seed=1)],
    ]

    async def main() -> list[list[list[Completion]]]:
        try:
            return await asyncio.wait_for(asyncio.gather(*(merger.complete(call) for call in calls)), timeout=60)
        finally:
            await merger.close()

    first, second, third = asyncio.run(main())
    assert merger.stats.calls == 3 and merger.stats.inner_calls == 1 and inner.stats.complete_calls == 1
    # The two calls at the same prompt and settings share one set of samples; the shorter gets its first ones.
    assert inner.stats.chunks == 2 and inner.stats.prompts_encoded == 2
    assert len(first[0]) == 3 and third[0] == first[0][:2]
    assert all(c.num_tokens == 4 and c.finish_reason == FinishReason.LENGTH for c in second[0])


def run_concurrently(generator: Any, requests: list[GenerationRequest]) -> list[Any]:
    async def main() -> list[Any]:
        calls = [generator.generate([r]) for r in requests]
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=60)

    return asyncio.run(main())


def test_concurrent_searches_share_one_batched_call(tiny_model_dir: Path) -> None:
    settings = ModelSettings(
        name=str(tiny_model_dir), prompt_format="reprover", temperature=0.0, max_new_tokens=6, batch_window_ms=50
    )
    generator = build_generator(settings)
    merger = generator.text
    assert isinstance(merger, MergingGenerator) and isinstance(merger.inner, HFGenerator)
    inner = merger.inner
    requests = [req(state) for state in STATES]
    merged = run_concurrently(generator, requests)
    assert merger.stats.inner_calls == 1 and merger.stats.batch_sizes == [len(STATES)]
    assert inner.stats.chunks == 1 and inner.stats.prompts_encoded == len(STATES)
    # Merging changes nothing about the answers: each state alone gives the same candidates.
    alone_generator = PromptedTacticGenerator(inner, generator.prompt_format, generator.sampling)
    for request, (together,) in zip(requests, merged, strict=True):
        (alone,) = asyncio.run(alone_generator.generate([request]))
        assert [c.text for c in together] == [c.text for c in alone]
        assert [c.logprob for c in together] == pytest.approx([c.logprob for c in alone], abs=1e-4)

    # Two searches at the same state: that prompt is encoded once.
    before = inner.stats.prompts_encoded
    run_concurrently(generator, [req(STATES[0]), req(STATES[0]), req(STATES[1])])
    assert inner.stats.prompts_encoded - before == 2
    asyncio.run(generator.close())


def test_tactics_and_other_prompts_share_one_text_generator(tiny_model_dir: Path) -> None:
    settings = ModelSettings(name=str(tiny_model_dir), prompt_format="reprover", max_new_tokens=5, batch_window_ms=50)
    shared = build_text_generator(settings)
    assert isinstance(shared, MergingGenerator)
    generator = build_generator(settings, text=shared)
    assert generator.text is shared

    async def main() -> tuple[Any, Any]:
        try:
            draft = shared.complete([TextRequest("Informal proof:", n=2, max_tokens=6, temperature=1.0)])
            return await asyncio.wait_for(asyncio.gather(generator.generate([req(STATES[0])]), draft), timeout=60)
        finally:
            await generator.close()

    candidates, drafts = asyncio.run(main())
    assert shared.stats.calls == 2 and shared.stats.inner_calls == 1 and shared.stats.batch_sizes == [2]
    assert len(drafts[0]) == 2 and len(candidates) == 1


def test_token_budget_splits_the_work_without_changing_results(loaded: tuple[Any, Any]) -> None:
    whole, split = make(loaded), make(loaded, max_batch_tokens=120)
    requests = [req(state) for state in STATES]
    a = asyncio.run(tactics(whole, REPROVER, max_new_tokens=5, temperature=0.0).generate(requests))
    b = asyncio.run(tactics(split, REPROVER, max_new_tokens=5, temperature=0.0).generate(requests))
    assert whole.stats.chunks == 1 and split.stats.chunks >= 3
    assert [[c.text for c in row] for row in a] == [[c.text for c in row] for row in b]


def test_prompt_too_long_fails_only_that_search(tiny_model_dir: Path) -> None:
    generator = build_generator(ModelSettings(name=str(tiny_model_dir), prompt_format="reprover", max_new_tokens=8))
    huge = "⊢ " + " + ".join(["x"] * 800)  # far beyond the tiny model's 1024 positions

    async def main() -> list[Any]:
        calls = [generator.generate([req(STATES[0])]), generator.generate([req(STATES[1]), req(huge)])]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=60)

    results = asyncio.run(main())
    assert isinstance(results[0], list) and len(results[0]) == 1
    assert isinstance(results[1], PromptTooLong) and results[1].indices == (1,)  # the position in that call
    assert str(tiny_model_dir) in str(results[1]) and "1024" in str(results[1])


def test_per_request_max_tokens_are_checked_against_the_context(loaded: tuple[Any, Any]) -> None:
    generator = make(loaded)
    prompt = NO_STOPS.render(req(STATES[0]))
    room = 1024 - len(generator.prompt_ids(prompt))
    fits, too_long = TextRequest(prompt, max_tokens=room), TextRequest(prompt, max_tokens=room + 1)
    with pytest.raises(PromptTooLong) as info:
        asyncio.run(generator.complete([fits, too_long, fits]))
    assert info.value.indices == (1,) and generator.stats.chunks == 0
    assert (
        generator.request_cost(fits) == 1024 and generator.request_cost(TextRequest(prompt, n=3)) == 1024 - room + 256
    )


def test_load_failures_name_the_model_and_cause(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(MissingDependency) as info:
        build_generator(ModelSettings(name=str(missing)))
    assert isinstance(info.value, ModelLoadError)
    assert str(missing) in str(info.value) and "no such directory" in str(info.value)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    with pytest.raises(ModelLoadError) as info:
        build_generator(ModelSettings(name=str(broken)))
    assert str(broken) in str(info.value) and info.value.cause


def test_dtype_resolution() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ValueError, match=r"model\.dtype"):
        resolve_dtype("int3", torch.device("cpu"))


def test_importing_prover_models_does_not_import_torch() -> None:
    code = (
        "import sys, prover.models, prover.models.batching, prover.models.prompts\n"
        "heavy = [m for m in ('torch', 'transformers', 'httpx', 'vllm') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

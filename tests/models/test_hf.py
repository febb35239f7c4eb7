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
from prover.models import MergingGenerator, build_generator  # noqa: E402
from prover.models.base import PromptTooLong, SamplingConfig  # noqa: E402
from prover.models.hf import HFGenerator, ModelLoadError, resolve_dtype  # noqa: E402
from prover.models.prompts import REPROVER, PromptFormat  # noqa: E402
from search.types import GenerationRequest  # noqa: E402

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


def make(loaded: tuple[Any, Any], fmt: PromptFormat = REPROVER, **sampling: Any) -> HFGenerator:
    options = {
        "max_batch_tokens": sampling.pop("max_batch_tokens", 65536),
        "static_cache": sampling.pop("static", False),
    }
    model, tokenizer = loaded
    return HFGenerator(model, tokenizer, prompt_format=fmt, sampling=SamplingConfig(**sampling), **options)


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
    # the raw model's, not the temperature/top-p distribution it was drawn from.
    generator = make(loaded, NO_STOPS, max_new_tokens=7, seed=1, static=static, **sampling)
    prompts = [NO_STOPS.render(req(state)) for state in STATES[:3]]
    rows = generator.generate_raw(prompts, [4, 4, 4])
    assert generator.stats.chunks == 1 and generator.stats.prompts_encoded == 3
    for prompt, row in zip(prompts, rows, strict=True):
        assert len(row) == 4
        ids = generator.prompt_ids(prompt)
        for sample in row:
            assert 1 <= len(sample.token_ids) <= 7
            expected = teacher_forced(loaded[0], ids, sample.token_ids)
            assert sample.logprob == pytest.approx(expected, abs=1e-4)


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

    prompts = [NO_STOPS.render(req(state)) for state in STATES[:3]]
    eager = make(loaded, NO_STOPS, max_new_tokens=6, seed=2, static=True, **sampling).generate_raw(prompts, [3] * 3)

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
    graphed = make(loaded, NO_STOPS, max_new_tokens=6, seed=2, static=True, **sampling)
    replayed = graphed.generate_raw(prompts, [3] * 3)
    # Every decode step is a replay (capture itself runs nothing); the prefill is one eager call.
    assert FakeGraph.replays == graphed.stats.graph_steps == graphed.stats.forward_calls - 1 >= 1
    assert replayed == eager

    def broken_capture(step: Any) -> None:
        raise RuntimeError()  # empty message, as some capture failures have

    monkeypatch.setattr(hf._StaticStep, "_capture", broken_capture)
    generator = make(loaded, NO_STOPS, max_new_tokens=6, seed=2, static=True, **sampling)
    with caplog.at_level("WARNING", logger="prover.models.hf"):
        assert generator.generate_raw(prompts, [3] * 3) == eager
    assert "RuntimeError" in caplog.text and "running it eagerly" in caplog.text
    assert generator.stats.graph_failures == 1 and generator.stats.graph_steps == 0
    caplog.clear()
    generator.generate_raw(prompts, [3] * 3)  # graphs stay off after a failure: no second warning
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
    prompts = [NO_STOPS.render(req(state)) for state in STATES[:3]]
    graphed = make(on_gpu, NO_STOPS, max_new_tokens=6, seed=2, static=True, **sampling)
    rows = graphed.generate_raw(prompts, [3] * 3)
    assert graphed.stats.graph_failures == 0 and graphed.stats.graph_steps >= 1
    monkeypatch.setattr(hf, "_graphs_available", lambda device: False)
    eager = make(on_gpu, NO_STOPS, max_new_tokens=6, seed=2, static=True, **sampling).generate_raw(prompts, [3] * 3)
    assert [[s.token_ids for s in row] for row in rows] == [[s.token_ids for s in row] for row in eager]
    for prompt, row in zip(prompts, rows, strict=True):
        for sample in row:
            expected = teacher_forced(model, graphed.prompt_ids(prompt), sample.token_ids)
            assert sample.logprob == pytest.approx(expected, abs=1e-3)


def test_beam_search_agrees_with_transformers_beam_search(loaded: tuple[Any, Any]) -> None:
    model, _ = loaded
    generator = make(loaded, NO_STOPS, max_new_tokens=6, temperature=0.0)
    prompt = NO_STOPS.render(req(STATES[1]))
    ours = generator.generate_raw([prompt], [4])[0]
    assert all(sample.finish_reason == "length" for sample in ours)  # no EOS: same lengths, same ranking rule
    ids = torch.tensor([generator.prompt_ids(prompt)])
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


def test_stop_strings_spanning_tokens_end_samples(loaded: tuple[Any, Any]) -> None:
    _, tokenizer = loaded
    a, dash = tokenizer.convert_tokens_to_ids(["a", "-"])
    pinned = biased(loaded, {a: 5.0, dash: 5.0})  # samples are strings over {a, -}
    fmt = PromptFormat("dashes", "{{state}}\n", ("---",))
    generator = make(pinned, fmt, max_new_tokens=24, temperature=1.0, seed=3)
    prompt = fmt.render(req(STATES[0]))
    row = generator.generate_raw([prompt], [16])[0]
    stopped = [s for s in row if s.finish_reason == "stop"]
    assert len(stopped) >= 10
    for sample in stopped:
        text = tokenizer.decode(list(sample.token_ids))
        assert text.endswith("---") and "---" not in text[:-1]  # stopped at the first occurrence
        assert sample.logprob == pytest.approx(
            teacher_forced(pinned[0], generator.prompt_ids(prompt), sample.token_ids), abs=1e-4
        )
    for sample in row:
        if sample.finish_reason == "length":
            assert "---" not in sample.text and len(sample.token_ids) == 24

    # Through the protocol: cut before the stop, empty tactics dropped, duplicates merged, best first.
    generator = make(pinned, fmt, max_new_tokens=24, temperature=1.0, seed=3)
    (candidates,) = asyncio.run(generator.generate([req(STATES[0], 16)]))
    texts = [c.text for c in candidates]
    assert len(texts) == len(set(texts)) < 16
    assert all(set(text) <= {"a", "-"} and "---" not in text and text for text in texts)
    means = [c.mean_logprob for c in candidates]
    assert means == sorted(means, reverse=True)


def test_eos_ends_samples_and_empty_tactics_are_dropped(loaded: tuple[Any, Any]) -> None:
    _, tokenizer = loaded
    eos = tokenizer.eos_token_id
    pinned = biased(loaded, {eos: 30.0})
    sampler = make(pinned, REPROVER, max_new_tokens=10, temperature=1.0)
    row = sampler.generate_raw([REPROVER.render(req(STATES[0]))], [4])[0]
    assert len(row) == 4 and all(s.finish_reason == "eos" and s.token_ids == (eos,) for s in row)
    assert asyncio.run(sampler.generate([req(STATES[0])])) == [[]]

    # Beam search keeps the n best finished hypotheses: EOS at once first, then one token + EOS.
    beams = make(pinned, REPROVER, max_new_tokens=10, temperature=0.0)
    row = beams.generate_raw([REPROVER.render(req(STATES[0]))], [4])[0]
    assert row[0].token_ids == (eos,) and row[0].logprob == pytest.approx(0.0, abs=1e-6)
    assert all(s.finish_reason == "eos" and s.token_ids[-1] == eos and len(s.token_ids) == 2 for s in row[1:])
    (candidates,) = asyncio.run(beams.generate([req(STATES[0])]))
    assert len(candidates) == 3 and all(c.text and c.num_tokens == 2 for c in candidates)


@pytest.mark.parametrize("temperature", [1.0, 0.0], ids=["sampling", "beam"])
def test_finished_prompts_leave_the_batch_without_disturbing_the_rest(
    loaded: tuple[Any, Any], temperature: float
) -> None:
    # EOS is likely at every step, so prompts finish at different steps and are dropped mid-chunk.
    _, tokenizer = loaded
    a, b = tokenizer.convert_tokens_to_ids(["a", "b"])
    pinned = biased(loaded, {a: 1.0, b: 1.0, tokenizer.eos_token_id: 1.0})
    generator = make(pinned, NO_STOPS, max_new_tokens=12, temperature=temperature, seed=5)
    prompts = [NO_STOPS.render(req(state)) for state in STATES]
    rows = generator.generate_raw(prompts, [2] * len(prompts))
    assert generator.stats.chunks == 1 and generator.stats.compactions >= 1
    lengths = {len(sample.token_ids) for row in rows for sample in row}
    assert len(lengths) > 1
    for prompt, row in zip(prompts, rows, strict=True):
        for sample in row:
            expected = teacher_forced(pinned[0], generator.prompt_ids(prompt), sample.token_ids)
            assert sample.logprob == pytest.approx(expected, abs=1e-4)


def test_duplicate_samples_are_merged(loaded: tuple[Any, Any]) -> None:
    _, tokenizer = loaded
    pinned = biased(loaded, {tokenizer.convert_tokens_to_ids("a"): 8.0, tokenizer.eos_token_id: 8.0})
    generator = make(pinned, REPROVER, max_new_tokens=3, temperature=1.0, seed=0)
    (candidates,) = asyncio.run(generator.generate([req(STATES[2], 24)]))
    # 24 samples over {a, EOS} of at most 3 tokens: only "a", "aa", "aaa" are possible tactics.
    assert 1 <= len(candidates) <= 3
    assert {c.text for c in candidates} <= {"a", "aa", "aaa"}


def run_concurrently(generator: Any, requests: list[GenerationRequest]) -> list[Any]:
    async def main() -> list[Any]:
        calls = [generator.generate([r]) for r in requests]
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=60)

    return asyncio.run(main())


def test_concurrent_searches_share_one_batched_call(tiny_model_dir: Path) -> None:
    settings = ModelSettings(
        name=str(tiny_model_dir), prompt_format="reprover", temperature=0.0, max_new_tokens=6, batch_window_ms=50
    )
    merger = build_generator(settings)
    assert isinstance(merger, MergingGenerator) and isinstance(merger.inner, HFGenerator)
    inner = merger.inner
    requests = [req(state) for state in STATES]
    merged = run_concurrently(merger, requests)
    assert merger.stats.inner_calls == 1 and merger.stats.batch_sizes == [len(STATES)]
    assert inner.stats.chunks == 1 and inner.stats.prompts_encoded == len(STATES)
    # Merging changes nothing about the answers: each state alone gives the same candidates.
    for request, (together,) in zip(requests, merged, strict=True):
        (alone,) = asyncio.run(inner.generate([request]))
        assert [c.text for c in together] == [c.text for c in alone]
        assert [c.logprob for c in together] == pytest.approx([c.logprob for c in alone], abs=1e-4)

    # Two searches at the same state: that prompt is encoded once.
    before = inner.stats.prompts_encoded
    run_concurrently(merger, [req(STATES[0]), req(STATES[0]), req(STATES[1])])
    assert inner.stats.prompts_encoded - before == 2
    asyncio.run(merger.close())


def test_token_budget_splits_the_work_without_changing_results(loaded: tuple[Any, Any]) -> None:
    whole = make(loaded, REPROVER, max_new_tokens=5, temperature=0.0)
    split = make(loaded, REPROVER, max_new_tokens=5, temperature=0.0, max_batch_tokens=120)
    requests = [req(state) for state in STATES]
    a = asyncio.run(whole.generate(requests))
    b = asyncio.run(split.generate(requests))
    assert whole.stats.chunks == 1 and split.stats.chunks >= 3
    assert [[c.text for c in row] for row in a] == [[c.text for c in row] for row in b]


def test_prompt_too_long_fails_only_that_search(tiny_model_dir: Path) -> None:
    merger = build_generator(ModelSettings(name=str(tiny_model_dir), prompt_format="reprover", max_new_tokens=8))
    huge = "⊢ " + " + ".join(["x"] * 800)  # far beyond the tiny model's 1024 positions

    async def main() -> list[Any]:
        calls = [merger.generate([req(STATES[0])]), merger.generate([req(huge)])]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=60)

    results = asyncio.run(main())
    assert isinstance(results[0], list) and len(results[0]) == 1
    assert isinstance(results[1], PromptTooLong)
    assert str(tiny_model_dir) in str(results[1]) and "1024" in str(results[1])


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

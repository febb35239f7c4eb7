"""The `vllm` backend: our settings mapped onto vLLM's parameters, tested without importing vLLM;
the real engine only under `-m gpu` where vLLM and CUDA exist."""

from __future__ import annotations

import asyncio
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lean_env.errors import MissingDependency
from lean_env.types import ProofState
from prover.config import ModelSettings
from prover.models.base import PromptTooLong, SamplingConfig
from prover.models.prompts import LLEMMA, REPROVER
from prover.models.tactics import PromptedTacticGenerator
from prover.models.text import FinishReason, TextGenerator, TextRequest
from prover.models.vllm_backend import (
    VLLMGenerator,
    beam_search_params_kwargs,
    engine_kwargs,
    sampling_params_kwargs,
)
from search.types import GenerationRequest

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def test_sampling_params_mapping() -> None:
    request = TextRequest("p", n=32, max_tokens=256, temperature=0.8, top_p=0.95, top_k=0, stop=("---",))
    assert sampling_params_kwargs(request) == {
        "n": 32,
        "temperature": 0.8,
        "top_p": 0.95,
        "top_k": 0,  # vLLM: 0 considers all tokens, like our setting
        "max_tokens": 256,
        "stop": ["---"],
        "logprobs": 0,  # the sampled token's log-prob only: what fills cumulative_logprob
        "skip_special_tokens": True,
    }
    greedy = sampling_params_kwargs(TextRequest("p", n=4, temperature=0.0, seed=9))
    assert greedy["n"] == 1 and greedy["temperature"] == 0.0 and greedy["seed"] == 9  # one greedy completion


def test_beam_search_and_engine_mapping() -> None:
    assert beam_search_params_kwargs(TextRequest("p", n=16, max_tokens=100, beam_search=True)) == {
        "beam_width": 16,
        "max_tokens": 100,
        "temperature": 0.0,
        "length_penalty": 1.0,
    }
    settings = ModelSettings(backend="vllm", name="EleutherAI/llemma_7b", tensor_parallel_size=2, seed=7)
    assert engine_kwargs(settings) == {
        "model": "EleutherAI/llemma_7b",
        "tensor_parallel_size": 2,
        "enable_prefix_caching": True,
        "seed": 7,
    }
    assert engine_kwargs(ModelSettings(dtype="bfloat16"))["dtype"] == "bfloat16"


# ---------------------------------------------------------------- a stand-in engine with vLLM's shapes


class FakeTokenizer:
    """One token per character; id 0 is EOS."""

    eos_token_id = 0

    def encode(self, text: str) -> list[int]:
        return [ord(ch) for ch in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids if i != 0)


@dataclass
class Params:
    kwargs: dict[str, Any]

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@dataclass
class Logprob:
    logprob: float


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]
    cumulative_logprob: float
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str
    stop_reason: str | int | None


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput]


@dataclass
class BeamSequence:
    tokens: list[int]
    logprobs: list[dict[int, Logprob]]
    cum_logprob: float


@dataclass
class BeamOutput:
    sequences: list[BeamSequence]


@dataclass
class FakeLLM:
    """Answers every prompt with fixed continuations; records what it was called with."""

    continuations: list[str]
    max_model_len: int = 4096
    token_logprobs: bool = True
    calls: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def llm_engine(self) -> Any:
        return type("Engine", (), {"model_config": type("Config", (), {"max_model_len": self.max_model_len})()})()

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    def generate(self, prompts: list[dict[str, Any]], params: list[Params], use_tqdm: bool = False) -> list[Any]:
        self.calls.append(("generate", params))
        outputs = []
        for p in params:
            n, stops = p.kwargs["n"], p.kwargs["stop"]
            row = []
            for i in range(n):
                text = self.continuations[i % len(self.continuations)]
                hits = sorted((text.find(s), s) for s in stops if s in text)
                cut, stop = hits[0] if hits else (len(text), None)
                ids = [ord(ch) for ch in text[: cut + len(stop or "")]]
                reason = "stop"  # a stop string, or the continuation ended (EOS)
                if len(ids) > p.kwargs["max_tokens"]:
                    ids, cut, stop, reason = ids[: p.kwargs["max_tokens"]], p.kwargs["max_tokens"], None, "length"
                logprobs = [{token: Logprob(-0.1)} for token in ids] if self.token_logprobs else None
                row.append(CompletionOutput(text[:cut], ids, -0.1 * len(ids), logprobs, reason, stop))
            outputs.append(RequestOutput(row))
        return outputs

    def beam_search(self, prompts: list[dict[str, Any]], params: Params) -> list[BeamOutput]:
        self.calls.append(("beam_search", params))
        outputs = []
        for prompt in prompts:
            sequences = []
            for text in self.continuations[: params.kwargs["beam_width"]]:
                generated = [ord(ch) for ch in text]
                logprobs = [{token: Logprob(-0.5)} for token in generated]
                sequences.append(BeamSequence(prompt["prompt_token_ids"] + generated, logprobs, -0.5 * len(generated)))
            outputs.append(BeamOutput(sequences))
        return outputs


def make(llm: FakeLLM) -> VLLMGenerator:
    return VLLMGenerator(llm, sampling_params_cls=Params, beam_search_params_cls=Params, model_name="fake")


def tactics(llm: FakeLLM, temperature: float) -> PromptedTacticGenerator:
    return PromptedTacticGenerator(make(llm), LLEMMA, SamplingConfig(temperature=temperature, max_new_tokens=64))


def req(state: str, n: int) -> GenerationRequest:
    return GenerationRequest(ProofState.from_pp(state), n)


@pytest.mark.parametrize("token_logprobs", [True, False], ids=["per-token", "cumulative-only"])
def test_sampling_path_uses_vllm_logprobs(token_logprobs: bool) -> None:
    llm = FakeLLM(["simp\n---\nTactic", "ring\n---", "simp\n---"], token_logprobs=token_logprobs)
    rows = asyncio.run(tactics(llm, temperature=1.0).generate([req("⊢ a", 3), req("⊢ b", 2)]))
    ((kind, params),) = llm.calls
    assert kind == "generate" and [p.kwargs["n"] for p in params] == [3, 2]
    assert params[0].kwargs["stop"] == ["---"] and params[0].kwargs["logprobs"] == 0
    assert [c.text for c in rows[0]] == ["simp", "ring"]  # the duplicate "simp" merged
    assert rows[0][0].num_tokens == 8 and rows[0][0].logprob == pytest.approx(-0.8)


def test_text_protocol_on_the_engine_stand_in() -> None:
    llm = FakeLLM(["simp\n---\nTactic", "norm_num"])
    generator = make(llm)
    assert isinstance(generator, TextGenerator)
    requests = [
        TextRequest("p", n=2, max_tokens=64, temperature=1.0, stop=("---",)),
        TextRequest("q", n=1, max_tokens=3, temperature=1.0, stop=("---",)),
        TextRequest("r", n=3, max_tokens=64, temperature=0.0),
        TextRequest("s", n=2, max_tokens=10, beam_search=True, stop=("\n",)),
    ]
    sampled, short, greedy, beams = asyncio.run(generator.complete(requests))
    assert [(c.text, c.finish_reason) for c in sampled] == [
        ("simp\n", FinishReason.STOP),
        ("norm_num", FinishReason.EOS),
    ]
    assert sampled[0].token_logprobs == pytest.approx((-0.1,) * 8)
    assert short[0].finish_reason == FinishReason.LENGTH and short[0].num_tokens == 3
    assert len(greedy) == 3 and greedy[0] == greedy[1] == greedy[2]  # one greedy completion, copied
    assert [(c.text, c.finish_reason, c.num_tokens) for c in beams] == [
        ("simp", FinishReason.STOP, 5),
        ("norm_num", FinishReason.LENGTH, 8),
    ]
    assert [kind for kind, _ in llm.calls] == ["generate", "beam_search"]


def test_beam_path_cuts_beams_at_the_stop_and_resums_logprobs() -> None:
    # vLLM beam search cannot stop on strings: beams run on past `---` and are cut here.
    llm = FakeLLM(["linarith\n---\nTactic state", "nlinarith\n---", "norm_num"])
    rows = asyncio.run(tactics(llm, temperature=0.0).generate([req("⊢ a", 3), req("⊢ b", 3), req("⊢ c", 2)]))
    kinds = [(kind, p.kwargs["beam_width"]) for kind, p in llm.calls]
    assert kinds == [("beam_search", 2), ("beam_search", 3)]  # one engine call per beam width
    linarith = next(c for c in rows[0] if c.text == "linarith")
    # "linarith\n---" is 12 tokens (one per character here) at -0.5 each; the rest is dropped.
    assert linarith.num_tokens == 12 and linarith.logprob == pytest.approx(-6.0)
    norm_num = next(c for c in rows[0] if c.text == "norm_num")
    assert norm_num.num_tokens == 8 and math.isclose(norm_num.mean_logprob, -0.5)
    assert [c.text for c in rows[2]] == ["linarith", "nlinarith"]


def test_prompt_length_is_checked_against_the_engine_context() -> None:
    generator = tactics(FakeLLM(["simp"], max_model_len=len(LLEMMA.template) + 64 + 20), temperature=1.0)
    with pytest.raises(PromptTooLong) as info:
        asyncio.run(generator.generate([req("⊢ short", 1), req("⊢ " + "x" * 200, 1)]))
    assert info.value.indices == (1,) and "fake" in str(info.value)


@pytest.mark.skipif(HAVE_VLLM, reason="vLLM is installed here")
def test_missing_vllm_is_a_missing_dependency() -> None:
    from prover.models import build_generator

    with pytest.raises(MissingDependency) as info:
        build_generator(ModelSettings(backend="vllm"))
    assert info.value.what == "vLLM" and "llemma-prover[vllm]" in info.value.how


@pytest.mark.gpu
def test_real_vllm_engine_on_the_tiny_model(request: pytest.FixtureRequest) -> None:
    if not HAVE_VLLM:
        pytest.skip("vLLM is not installed (the `vllm` extra, Linux + CUDA)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from prover.models import build_generator

    tiny_model_dir: Path = request.getfixturevalue("tiny_model_dir")
    for temperature in (1.0, 0.0):
        settings = ModelSettings(
            backend="vllm",
            name=str(tiny_model_dir),
            prompt_format="reprover",
            temperature=temperature,
            max_new_tokens=8,
        )
        generator = build_generator(settings)

        async def main(gen: Any = generator) -> Any:
            try:
                return await gen.generate([req("⊢ n + 0 = n", 4)])
            finally:
                await gen.close()

        (candidates,) = asyncio.run(main())
        assert len(candidates) <= 4
        assert all(c.num_tokens >= 1 and c.logprob <= 0 and c.text for c in candidates)
        assert all(REPROVER.extract(c.text) == c.text for c in candidates)

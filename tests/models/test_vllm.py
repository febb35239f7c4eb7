"""The `vllm` backend: our settings mapped onto vLLM's parameters and our beam search, tested on a
stand-in engine with vLLM's shapes and refusals; the real engine, and the upstream facts the design
rests on, only under `-m gpu` where vLLM and CUDA exist."""

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
from prover.models.base import GenerationError, PromptTooLong, SamplingConfig
from prover.models.prompts import LLEMMA, REPROVER
from prover.models.tactics import PromptedTacticGenerator
from prover.models.text import FinishReason, TextGenerator, TextRequest
from prover.models.vllm_backend import (
    VLLMGenerator,
    beam_step_params_kwargs,
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


def test_engine_and_beam_step_mapping() -> None:
    settings = ModelSettings(backend="vllm", name="EleutherAI/llemma_7b", tensor_parallel_size=2, seed=7)
    assert engine_kwargs(settings) == {
        "model": "EleutherAI/llemma_7b",
        "tensor_parallel_size": 2,
        "enable_prefix_caching": True,
        "seed": 7,
        "max_logprobs": 64,  # 2 x the default 32 samples; vLLM's own default (20) refuses beam widths > 10
    }
    assert engine_kwargs(ModelSettings(dtype="bfloat16"))["dtype"] == "bfloat16"
    assert engine_kwargs(ModelSettings(max_logprobs=128))["max_logprobs"] == 128
    assert beam_step_params_kwargs(64) == {
        "n": 1,
        "max_tokens": 1,
        "temperature": 0.0,
        "logprobs": 64,
        "detokenize": False,
    }


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


UPSTREAM_LOGPROBS_ERROR = "Requested sample logprobs of {}, which is greater than max allowed: {}"
"""vLLM's refusal of more log-probs than the engine's `max_logprobs` (`SamplingParams._validate_logprobs`
in `vllm/sampling_params.py`; the V1 processor's `_validate_logprobs` before that)."""


@dataclass
class FakeLLM:
    """A stand-in for `vllm.LLM` with upstream's shapes and refusals; records what it was called with.

    Sampling requests get the fixed `continuations`. A one-token request with `logprobs=k` (a
    beam-search step) is answered by `language`, a character-level model: the next character's
    probability is the weight of the `language` strings continuing the text generated so far (EOS,
    id 0, after a string's end), and the reply holds the top k of the tokens of non-zero
    probability. Like vLLM, `generate` raises `ValueError` for `logprobs` above `max_logprobs`, whose
    default is vLLM's 20 (`vllm/engine/arg_utils.py`). It has no `beam_search`: we must not need it.
    """

    continuations: list[str] = field(default_factory=list)
    language: dict[str, float] = field(default_factory=dict)
    max_model_len: int = 4096
    max_logprobs: int = 20
    token_logprobs: bool = True
    calls: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def llm_engine(self) -> Any:
        config = type("Config", (), {"max_model_len": self.max_model_len, "max_logprobs": self.max_logprobs})()
        return type("Engine", (), {"model_config": config})()

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    def generate(self, prompts: list[dict[str, Any]], params: list[Params], use_tqdm: bool = False) -> list[Any]:
        for p in params:
            if p.kwargs["logprobs"] > self.max_logprobs:
                raise ValueError(UPSTREAM_LOGPROBS_ERROR.format(p.kwargs["logprobs"], self.max_logprobs))
        self.calls.append(("generate", params))
        if all(p.kwargs["max_tokens"] == 1 and p.kwargs["logprobs"] > 0 for p in params):
            return [self._step(prompt, p.kwargs["logprobs"]) for prompt, p in zip(prompts, params, strict=True)]
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

    def _step(self, prompt: dict[str, Any], k: int) -> RequestOutput:
        # The generated text is what follows the prompt's end, the Llemma format's "Next tactic:\n---\n".
        text = "".join(chr(i) for i in prompt["prompt_token_ids"]).rsplit("Next tactic:\n---\n", 1)[-1]
        weights: dict[int, float] = {}
        for string, weight in self.language.items():
            if string.startswith(text):
                token = ord(string[len(text)]) if len(string) > len(text) else 0
                weights[token] = weights.get(token, 0.0) + weight
        total = sum(weights.values())
        ranked = sorted(weights.items(), key=lambda item: -item[1])[:k]
        entry = {token: Logprob(math.log(weight / total)) for token, weight in ranked}
        best = ranked[0][0]
        return RequestOutput([CompletionOutput("", [best], entry[best].logprob, [entry], "length", None)])


def make(llm: FakeLLM, max_logprobs: int | None = None) -> VLLMGenerator:
    return VLLMGenerator(llm, sampling_params_cls=Params, model_name="fake", max_logprobs=max_logprobs)


def tactics(llm: FakeLLM, temperature: float, max_logprobs: int | None = None) -> PromptedTacticGenerator:
    sampling = SamplingConfig(temperature=temperature, max_new_tokens=64)
    return PromptedTacticGenerator(make(llm, max_logprobs), LLEMMA, sampling)


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
    llm = FakeLLM(["simp\n---\nTactic", "norm_num"], language={"ring\nmore": 0.5, "rfl": 0.5})
    generator = make(llm)
    assert isinstance(generator, TextGenerator)
    requests = [
        TextRequest("p", n=2, max_tokens=64, temperature=1.0, stop=("---",)),
        TextRequest("q", n=1, max_tokens=3, temperature=1.0, stop=("---",)),
        TextRequest("r", n=3, max_tokens=64, temperature=0.0),
        TextRequest("s\nNext tactic:\n---\n", n=2, max_tokens=10, beam_search=True, stop=("\n",)),
    ]
    sampled, short, greedy, beams = asyncio.run(generator.complete(requests))
    assert [(c.text, c.finish_reason) for c in sampled] == [
        ("simp\n", FinishReason.STOP),
        ("norm_num", FinishReason.EOS),
    ]
    assert sampled[0].token_logprobs == pytest.approx((-0.1,) * 8)
    assert short[0].finish_reason == FinishReason.LENGTH and short[0].num_tokens == 3
    assert len(greedy) == 3 and greedy[0] == greedy[1] == greedy[2]  # one greedy completion, copied
    # Same log-prob, log(0.5): "ring\n" (5 tokens, the stop token included) has the better mean than
    # "rfl" then EOS (4 tokens); the text ends before the stop, the log-probs run through it.
    assert [(c.text, c.finish_reason, c.num_tokens) for c in beams] == [
        ("ring", FinishReason.STOP, 5),
        ("rfl", FinishReason.EOS, 4),
    ]
    assert beams[0].logprob == pytest.approx(math.log(0.5)) == pytest.approx(beams[1].logprob)


LANGUAGE = {
    # Two beams share the tactic and differ only after the stop: upstream's beam search, which ignores
    # stop strings, would spend two of its beams (and 64 tokens each) on them.
    "linarith\n---\nTactic state: one": 0.2,
    "linarith\n---\nTactic state: two": 0.15,
    "linarith \n---\n": 0.25,  # the same tactic once cleaned: merged, keeping the better mean
    "nlinarith\n---\n": 0.2,
    "norm_num": 0.2,  # then EOS
}


def test_beams_end_at_the_stop_and_rank_by_mean_logprob_of_the_kept_tokens() -> None:
    llm = FakeLLM(language=LANGUAGE, max_logprobs=64)
    generator = tactics(llm, temperature=0.0)
    (candidates,) = asyncio.run(generator.generate([req("⊢ a", 4)]))
    assert [c.text for c in candidates] == ["linarith", "nlinarith", "norm_num"]
    linarith, nlinarith, norm_num = candidates
    # Kept tokens: the tactic and its stop "\n---" (or EOS); nothing after the stop, no prompt tokens.
    assert (linarith.num_tokens, linarith.logprob) == (12, pytest.approx(math.log(0.35)))
    assert (nlinarith.num_tokens, nlinarith.logprob) == (13, pytest.approx(math.log(0.2)))
    assert (norm_num.num_tokens, norm_num.logprob) == (9, pytest.approx(math.log(0.2)))
    # The beams stopped at "---": 13 steps (the longest kept beam), not max_new_tokens (64).
    assert generator.text.beam_steps == 13  # type: ignore[attr-defined]
    widths = {p.kwargs["logprobs"] for _, params in llm.calls for p in params}
    assert widths == {8}, "2 x beam width next tokens per beam and step, as vLLM's own beam search"


def test_beam_search_fits_the_engines_max_logprobs() -> None:
    # vLLM's default max_logprobs (20) cannot serve 2 x 32: refused by us, naming the setting, before any call.
    llm = FakeLLM(language=LANGUAGE)
    with pytest.raises(GenerationError, match=r"model\.max_logprobs") as info:
        asyncio.run(tactics(llm, temperature=0.0).generate([req("⊢ a", 32)]))
    assert "64" in str(info.value) and llm.calls == []
    # The engine built from the settings (max_logprobs 64) runs 32 beams.
    wide = FakeLLM(language=LANGUAGE, max_logprobs=ModelSettings().max_logprobs)
    (candidates,) = asyncio.run(tactics(wide, temperature=0.0).generate([req("⊢ a", 32)]))
    assert [c.text for c in candidates] == ["linarith", "nlinarith", "norm_num"]
    # Between W and 2W: fewer next tokens per beam, still within the engine's limit.
    narrow = FakeLLM(language=LANGUAGE, max_logprobs=40)
    asyncio.run(tactics(narrow, temperature=0.0).generate([req("⊢ a", 32)]))
    assert {p.kwargs["logprobs"] for _, params in narrow.calls for p in params} == {40}


def test_beam_requests_of_one_call_step_together() -> None:
    llm = FakeLLM(language=LANGUAGE, max_logprobs=64)
    rows = asyncio.run(tactics(llm, temperature=0.0).generate([req("⊢ a", 3), req("⊢ b", 2), req("⊢ c", 4)]))
    # The best hypotheses are "linarith\n", "linarith \n", "nlinarith\n", "norm_num": the two spellings
    # of linarith merge, so widths 3, 2, 4 give 2, 1, 3 distinct tactics.
    assert [[c.text for c in row] for row in rows] == [
        ["linarith", "nlinarith"],
        ["linarith"],
        ["linarith", "nlinarith", "norm_num"],
    ]
    # One engine call per step for all beams of all requests, each asking 2 x its own width.
    first = llm.calls[0][1]
    assert [p.kwargs["logprobs"] for p in first] == [6, 4, 8]
    assert len(llm.calls) == 13


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


def _need_vllm() -> Any:
    if not HAVE_VLLM:
        pytest.skip("vLLM is not installed (the `vllm` extra, Linux + CUDA)")
    import vllm

    return vllm


@pytest.mark.gpu
def test_upstream_facts_the_vllm_backend_rests_on() -> None:
    """What `prover.models.vllm_backend` assumes of vLLM, read from the installed package."""
    vllm = _need_vllm()
    from vllm.beam_search import get_beam_search_score
    from vllm.engine.arg_utils import EngineArgs
    from vllm.sampling_params import BeamSearchParams

    assert EngineArgs(model="m").max_logprobs == 20, "vLLM's default max_logprobs"
    beam = BeamSearchParams(beam_width=4, max_tokens=8)
    assert not hasattr(beam, "stop"), "vLLM's beam search takes no stop strings"
    # The score divides by every token of the sequence, the prompt's included (3 prompt + 1 generated).
    assert get_beam_search_score([5, 6, 7, 8], -2.0, eos_token_id=0, length_penalty=1.0) == pytest.approx(-0.5)
    for kwargs in (sampling_params_kwargs(TextRequest("p", n=4, temperature=1.0, stop=("---",))),):
        params = vllm.SamplingParams(**kwargs)
        assert params.n == 4 and params.stop == ["---"] and params.logprobs == 0
    step = vllm.SamplingParams(**beam_step_params_kwargs(64))
    assert (step.max_tokens, step.logprobs, step.temperature, step.detokenize) == (1, 64, 0.0, False)


@pytest.mark.gpu
def test_real_vllm_engine_on_the_tiny_model(request: pytest.FixtureRequest) -> None:
    """One engine (vLLM does not hand GPU memory back within a process), built from the settings."""
    vllm = _need_vllm()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from prover.models import build_text_generator

    tiny_model_dir: Path = request.getfixturevalue("tiny_model_dir")
    settings = ModelSettings(backend="vllm", name=str(tiny_model_dir), max_logprobs=20, max_new_tokens=8)
    text = build_text_generator(settings)
    engine: Any = getattr(text, "inner", text)
    assert isinstance(engine, VLLMGenerator) and engine.max_logprobs == 20
    # Upstream's refusal, which a beam width of 32 met at vLLM's default max_logprobs.
    with pytest.raises(ValueError, match="Requested sample logprobs of 64, which is greater than max allowed: 20"):
        engine.llm.generate([{"prompt_token_ids": [1, 2]}], vllm.SamplingParams(**beam_step_params_kwargs(64)))

    async def main() -> list[list[Any]]:
        rows = []
        for temperature in (1.0, 0.0):
            generator = PromptedTacticGenerator(
                text, REPROVER, SamplingConfig(temperature=temperature, max_new_tokens=8)
            )
            rows += await generator.generate([req("⊢ n + 0 = n", 8), req("⊢ 1 = 1", 10)])
        await text.close()
        return rows

    for candidates in asyncio.run(main()):
        assert 1 <= len(candidates) <= 10
        assert all(c.num_tokens >= 1 and c.logprob <= 0 and c.text for c in candidates)
        assert all(REPROVER.extract(c.text) == c.text for c in candidates)
    assert engine.beam_steps >= 1

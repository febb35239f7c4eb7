"""The `vllm` backend: vLLM's offline engine (paged, prefix-shared attention, continuous batching).

vLLM is imported only by `VLLMGenerator.load`; the mapping of our settings onto its parameter
objects is plain dictionaries (`sampling_params_kwargs`, `beam_search_params_kwargs`,
`engine_kwargs`) so it is testable without vLLM. Sampling (temperature > 0) uses `SamplingParams`
with `n`, stop strings and `logprobs=0`, which makes vLLM report each completion's cumulative
log-prob of the raw model distribution. Temperature 0 uses `LLM.beam_search` with
`BeamSearchParams(beam_width=n)` (the current API; the old `use_beam_search` flag is gone); beam
search cannot stop on strings, so each beam is cut at the format's stop string here and its
log-prob re-summed over the tokens kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lean_env.errors import MissingDependency
from prover.config import ModelSettings
from prover.models.base import (
    GenerationError,
    ModelLoadError,
    RawCompletion,
    SamplingConfig,
    finalize_candidates,
    tokens_until_stop,
)
from prover.models.prompts import PromptFormat, check_prompt_lengths
from search.types import GenerationRequest, TacticCandidate

logger = logging.getLogger(__name__)

INSTALL_HINT = "Install it with `pip install 'llemma-prover[vllm]'` on a Linux machine with a CUDA GPU."


def sampling_params_kwargs(sampling: SamplingConfig, num_samples: int, stops: Sequence[str]) -> dict[str, Any]:
    """`SamplingParams` arguments for `num_samples` samples (temperature > 0).

    `logprobs=0` asks for the sampled token's log-prob only, which is what makes vLLM fill
    `cumulative_logprob`; `top_k=0` means no top-k in vLLM as in our settings.
    """
    return {
        "n": num_samples,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "max_tokens": sampling.max_new_tokens,
        "stop": list(stops),
        "logprobs": 0,
        "skip_special_tokens": True,
    }


def beam_search_params_kwargs(sampling: SamplingConfig, num_samples: int) -> dict[str, Any]:
    """`BeamSearchParams` arguments: `num_samples` beams, mean-log-prob ranking (length penalty 1)."""
    return {
        "beam_width": num_samples,
        "max_tokens": sampling.max_new_tokens,
        "temperature": 0.0,
        "length_penalty": 1.0,
    }


def engine_kwargs(settings: ModelSettings) -> dict[str, Any]:
    """`LLM(...)` arguments: the model, tensor parallelism, prefix caching (the few-shot prefix is shared)."""
    kwargs: dict[str, Any] = {
        "model": settings.name,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "enable_prefix_caching": True,
        "seed": settings.seed,
    }
    if settings.dtype != "auto":
        kwargs["dtype"] = settings.dtype
    return kwargs


def _context_length(llm: Any) -> int | None:
    for path in (("llm_engine", "model_config", "max_model_len"), ("model_config", "max_model_len")):
        value: Any = llm
        for attribute in path:
            value = getattr(value, attribute, None)
        if isinstance(value, int):
            return value
    return None


def _token_logprob(entry: Any, token: int) -> float:
    """The log-prob of `token` in one step's entry of vLLM's logprobs (a dict of id -> Logprob or float)."""
    value = entry.get(token) if isinstance(entry, dict) else None
    if value is None:
        raise GenerationError(f"vLLM returned no log-prob for generated token {token}")
    number: Any = getattr(value, "logprob", value)
    return float(number)


class VLLMGenerator:
    """A `TacticGenerator` over a `vllm.LLM`; blocking engine calls run on one worker thread.

    `llm`, `sampling_params_cls` and `beam_search_params_cls` are vLLM's objects (or stand-ins with
    the same shape). Wrap it in `MergingGenerator` so concurrent searches share engine calls.
    """

    def __init__(
        self,
        llm: Any,
        *,
        prompt_format: PromptFormat,
        sampling: SamplingConfig,
        sampling_params_cls: Any,
        beam_search_params_cls: Any,
        model_name: str = "",
    ) -> None:
        self.llm = llm
        self.prompt_format = prompt_format
        self.sampling = sampling
        self.sampling_params_cls = sampling_params_cls
        self.beam_search_params_cls = beam_search_params_cls
        self.model_name = model_name
        self.tokenizer = llm.get_tokenizer()
        self.context_length = _context_length(llm)
        self.engine_calls = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-generate")

    @classmethod
    def load(cls, settings: ModelSettings, prompt_format: PromptFormat) -> VLLMGenerator:
        """Start the engine for `settings.name`.

        Raises `MissingDependency` if vLLM is absent and `ModelLoadError` if the model fails to load.
        """
        try:
            import vllm
        except ImportError as error:
            raise MissingDependency("vLLM", f"{INSTALL_HINT} ({error})") from error
        try:
            llm = vllm.LLM(**engine_kwargs(settings))
        except (OSError, ValueError, RuntimeError) as error:
            raise ModelLoadError(
                settings.name,
                f"{type(error).__name__}: {error}",
                "Check that the name or directory holds a model vLLM supports, that the GPU has room for it, "
                "and that the weights are downloaded if there is no network.",
            ) from error
        from vllm.sampling_params import BeamSearchParams

        return cls(
            llm,
            prompt_format=prompt_format,
            sampling=SamplingConfig.from_settings(settings),
            sampling_params_cls=vllm.SamplingParams,
            beam_search_params_cls=BeamSearchParams,
            model_name=settings.name,
        )

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        """Candidates per request, unique by text, best mean log-prob first."""
        if not requests:
            return []
        prompts = [self.prompt_format.render(request) for request in requests]
        ids = [list(self.tokenizer.encode(prompt)) for prompt in prompts]
        lengths = [len(row) for row in ids]
        check_prompt_lengths(lengths, self.sampling.max_new_tokens, self.context_length, self.model_name)
        counts = [request.num_samples for request in requests]
        loop = asyncio.get_running_loop()
        try:
            completions = await loop.run_in_executor(self._executor, self._complete, ids, counts)
        except GenerationError:
            raise
        except Exception as error:
            raise GenerationError(f"vLLM failed on model {self.model_name!r}: {error}") from error
        return [
            finalize_candidates(row, self.prompt_format.extract, limit=count)
            for row, count in zip(completions, counts, strict=True)
        ]

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _complete(self, ids: list[list[int]], counts: list[int]) -> list[list[RawCompletion]]:
        self.engine_calls += 1
        prompts = [{"prompt_token_ids": row} for row in ids]
        if not self.sampling.beam_search:
            params = [
                self.sampling_params_cls(**sampling_params_kwargs(self.sampling, count, self.prompt_format.stops))
                for count in counts
            ]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            return [
                [
                    RawCompletion(o.text, float(o.cumulative_logprob or 0.0), max(1, len(o.token_ids)))
                    for o in output.outputs
                ]
                for output in outputs
            ]
        # Beam search takes one parameter object for all prompts: one engine call per beam width.
        results: list[list[RawCompletion]] = [[] for _ in ids]
        for width in sorted(set(counts)):
            members = [index for index, count in enumerate(counts) if count == width]
            params = self.beam_search_params_cls(**beam_search_params_kwargs(self.sampling, width))
            outputs = self.llm.beam_search([prompts[index] for index in members], params)
            for index, output in zip(members, outputs, strict=True):
                results[index] = [self._cut_beam(ids[index], sequence) for sequence in output.sequences]
        return results

    def _cut_beam(self, prompt_ids: list[int], sequence: Any) -> RawCompletion:
        generated = list(sequence.tokens[len(prompt_ids) :])
        logprobs = list(getattr(sequence, "logprobs", None) or [])[-len(generated) :] if generated else []

        def decode(tokens: Sequence[int]) -> str:
            return str(self.tokenizer.decode(list(tokens), skip_special_tokens=True))

        keep = tokens_until_stop(generated, decode, self.prompt_format.stops, self.tokenizer.eos_token_id)
        kept = generated[:keep]
        if len(logprobs) == len(generated):
            total = sum(_token_logprob(entry, token) for entry, token in zip(logprobs[:keep], kept, strict=True))
        else:  # no per-token log-probs: the beam's cumulative one is all there is
            total = float(sequence.cum_logprob)
        return RawCompletion(decode(kept), total, max(1, len(kept)))

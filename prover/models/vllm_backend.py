"""The `vllm` backend: vLLM's offline engine (paged, prefix-shared attention, continuous batching).

vLLM is imported only by `VLLMGenerator.load`; the mapping of a `TextRequest` onto its parameter
objects is plain dictionaries (`sampling_params_kwargs`, `beam_search_params_kwargs`,
`engine_kwargs`) so it is testable without vLLM. Sampling and greedy requests use `SamplingParams`
with `n`, stop strings and `logprobs=0`, which makes vLLM report the raw model's log-prob of each
sampled token. Beam-search requests use `LLM.beam_search` with `BeamSearchParams(beam_width=n)`
(the current API; the old `use_beam_search` flag is gone); beam search cannot stop on strings, so
each beam is cut at the request's first stop string here and only the tokens kept are reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lean_env.errors import MissingDependency
from prover.config import ModelSettings
from prover.models.base import GenerationError, ModelLoadError, cut_at_stop, find_stop, tokens_until_stop
from prover.models.prompts import check_prompt_lengths
from prover.models.text import Completion, FinishReason, TextRequest

logger = logging.getLogger(__name__)

INSTALL_HINT = "Install it with `pip install 'llemma-prover[vllm]'` on a Linux machine with a CUDA GPU."


def sampling_params_kwargs(request: TextRequest) -> dict[str, Any]:
    """`SamplingParams` arguments for a sampling or greedy request.

    `logprobs=0` asks for the sampled token's log-prob only (what fills `logprobs` and
    `cumulative_logprob`); `top_k=0` means no top-k in vLLM as in ours. A greedy request asks for
    one completion (vLLM refuses n > 1 without sampling); `complete` copies it.
    """
    kwargs: dict[str, Any] = {
        "n": 1 if request.greedy else request.n,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "logprobs": 0,
        "skip_special_tokens": True,
    }
    if request.seed is not None:
        kwargs["seed"] = request.seed
    return kwargs


def beam_search_params_kwargs(request: TextRequest) -> dict[str, Any]:
    """`BeamSearchParams` arguments: `n` beams, mean-log-prob ranking (length penalty 1)."""
    return {
        "beam_width": request.n,
        "max_tokens": request.max_tokens,
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


def _finish_reason(output: Any) -> FinishReason:
    """Ours from a vLLM `CompletionOutput`: `stop_reason` is the stop string, a stop token id, or None (EOS)."""
    if getattr(output, "finish_reason", None) == "length":
        return FinishReason.LENGTH
    return FinishReason.STOP if isinstance(getattr(output, "stop_reason", None), str) else FinishReason.EOS


def _sampled_completion(output: Any) -> Completion:
    """A `Completion` from a vLLM `CompletionOutput` (its text already ends before the stop string)."""
    token_ids = list(output.token_ids)
    entries = getattr(output, "logprobs", None)
    if entries is not None and len(entries) == len(token_ids):
        logprobs = tuple(_token_logprob(entry, token) for entry, token in zip(entries, token_ids, strict=True))
    else:  # no per-token log-probs: spread the cumulative one, which keeps the sum and the count
        total = float(output.cumulative_logprob or 0.0)
        logprobs = (total / len(token_ids),) * len(token_ids) if token_ids else ()
    return Completion(output.text, logprobs, _finish_reason(output))


class VLLMGenerator:
    """A `TextGenerator` over a `vllm.LLM`; blocking engine calls run on one worker thread.

    `llm`, `sampling_params_cls` and `beam_search_params_cls` are vLLM's objects (or stand-ins with
    the same shape). Wrap it in `MergingGenerator` so concurrent callers share engine calls.
    """

    def __init__(
        self,
        llm: Any,
        *,
        sampling_params_cls: Any,
        beam_search_params_cls: Any,
        model_name: str = "",
    ) -> None:
        self.llm = llm
        self.sampling_params_cls = sampling_params_cls
        self.beam_search_params_cls = beam_search_params_cls
        self.model_name = model_name
        self.tokenizer = llm.get_tokenizer()
        self.context_length = _context_length(llm)
        self.engine_calls = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-generate")

    @classmethod
    def load(cls, settings: ModelSettings) -> VLLMGenerator:
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
            sampling_params_cls=vllm.SamplingParams,
            beam_search_params_cls=BeamSearchParams,
            model_name=settings.name,
        )

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        """Completions per request, in order; `PromptTooLong` (with indices) if a prompt does not fit."""
        if not requests:
            return []
        ids = [list(self.tokenizer.encode(request.prompt)) for request in requests]
        budgets = [request.max_tokens for request in requests]
        check_prompt_lengths([len(row) for row in ids], budgets, self.context_length, self.model_name)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._complete, ids, list(requests))
        except GenerationError:
            raise
        except Exception as error:
            raise GenerationError(f"vLLM failed on model {self.model_name!r}: {error}") from error

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _complete(self, ids: list[list[int]], requests: list[TextRequest]) -> list[list[Completion]]:
        self.engine_calls += 1
        prompts = [{"prompt_token_ids": row} for row in ids]
        results: list[list[Completion]] = [[] for _ in ids]
        sampled = [index for index, request in enumerate(requests) if not request.beam_search]
        if sampled:
            params = [self.sampling_params_cls(**sampling_params_kwargs(requests[index])) for index in sampled]
            outputs = self.llm.generate([prompts[index] for index in sampled], params, use_tqdm=False)
            for index, output in zip(sampled, outputs, strict=True):
                row = [_sampled_completion(o) for o in output.outputs]
                results[index] = row * requests[index].n if requests[index].greedy else row
        # Beam search takes one parameter object for all its prompts: one engine call per (width, length).
        shapes = sorted({(r.n, r.max_tokens) for r in requests if r.beam_search})
        for width, max_tokens in shapes:
            members = [
                i for i, r in enumerate(requests) if r.beam_search and (r.n, r.max_tokens) == (width, max_tokens)
            ]
            params = self.beam_search_params_cls(**beam_search_params_kwargs(requests[members[0]]))
            outputs = self.llm.beam_search([prompts[index] for index in members], params)
            for index, output in zip(members, outputs, strict=True):
                stops = requests[index].stop
                results[index] = [self._cut_beam(ids[index], sequence, stops) for sequence in output.sequences]
        return results

    def _cut_beam(self, prompt_ids: list[int], sequence: Any, stops: Sequence[str]) -> Completion:
        generated = list(sequence.tokens[len(prompt_ids) :])
        entries = list(getattr(sequence, "logprobs", None) or [])[-len(generated) :] if generated else []

        def decode(tokens: Sequence[int]) -> str:
            return str(self.tokenizer.decode(list(tokens), skip_special_tokens=True))

        eos = self.tokenizer.eos_token_id
        kept = generated[: tokens_until_stop(generated, decode, stops, eos)]
        text = decode(kept)
        if len(entries) == len(generated):
            pairs = zip(entries[: len(kept)], kept, strict=True)
            logprobs = tuple(_token_logprob(entry, token) for entry, token in pairs)
        else:  # no per-token log-probs: the beam's cumulative one is all there is, spread over its tokens
            mean = float(sequence.cum_logprob) / max(len(generated), 1)
            logprobs = (mean,) * len(kept)
        if find_stop(text, stops) is not None:
            reason = FinishReason.STOP
        elif kept and kept[-1] == eos:
            reason = FinishReason.EOS
        else:
            reason = FinishReason.LENGTH
        return Completion(cut_at_stop(text, stops), logprobs, reason)

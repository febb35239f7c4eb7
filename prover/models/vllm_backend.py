"""The `vllm` backend: vLLM's offline engine (paged, prefix-shared attention, continuous batching).

vLLM is imported only by `VLLMGenerator.load`; the mapping of a `TextRequest` onto its parameter
objects is plain dictionaries (`sampling_params_kwargs`, `beam_step_params_kwargs`,
`engine_kwargs`) so it is testable without vLLM.

Sampling and greedy requests use `SamplingParams` with `n`, stop strings and `logprobs=0`, which
makes vLLM report the raw model's log-prob of each sampled token.

Beam search is ours, run step by step over `LLM.generate`, and not vLLM's `LLM.beam_search`, which
(`vllm/entrypoints/llm.py`, `vllm/beam_search.py`) ends a beam only at EOS or `max_tokens` and
takes no stop strings (`BeamSearchParams` has none): with the Llemma prompt every beam ran its 256
tokens past `---`, and since the beams differ mostly after the stop, most of them collapsed to the
same tactic once cut. Its ranking also divides the cumulative log-prob by the length of the whole
sequence, prompt included (`get_beam_search_score` is `cum_logprob / len(tokens) ** length_penalty`
and `tokens` starts with the prompt), which is not a per-token score of the completion. Each of
our steps sends every live beam of every beam request of the call to one `generate` call
(`max_tokens=1`, `logprobs=k` with `k = 2W` as upstream, capped by the engine's `max_logprobs`),
so the engine batches them and its prefix cache serves the shared prompt. As in the hf backend, a
candidate that completes a stop string or is EOS becomes a finished hypothesis (if ranked within
the beam), the best W others go on, hypotheses are scored by the mean log-prob of their generated
tokens (stop or EOS token included), and a request is done when W hypotheses are at least as good
as its best live beam, or at `max_tokens`.

vLLM refuses a request for more log-probs per token than its `max_logprobs` (default 20, in
`vllm/engine/arg_utils.py`), with "Requested sample logprobs of 64, which is greater than max
allowed: 20". The engine is therefore built with `model.max_logprobs` (default 64, 2 x the default
32 samples), and a beam width the engine cannot serve raises `GenerationError` naming the setting
before any work is done.

Threading: a blocking `vllm.LLM` driven from one worker thread, behind `MergingGenerator`
(`prover.models.build_text_generator`), rather than `AsyncLLM`. The merger already turns the
concurrent calls of many searches into one engine call, whose sampled requests go to the engine
together and whose beams are stepped together, which is the batch the engine wants; `vllm.LLM`
is the offline API that has stayed put while the async engines moved (V0 `AsyncLLMEngine`, V1
`vllm.v1.engine.async_llm.AsyncLLM`); and one thread keeps our step loop (Python work between
engine steps) off the event loop. The cost: a call that arrives while the engine is busy waits for
that call to end, at most `max_tokens` steps, typically a few dozen since beams end at the stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lean_env.errors import MissingDependency
from prover.config import ModelSettings
from prover.models.base import GenerationError, ModelLoadError, cut_at_stop, find_stop
from prover.models.prompts import check_prompt_lengths
from prover.models.text import Completion, FinishReason, TextRequest

logger = logging.getLogger(__name__)

INSTALL_HINT = "Install it with `pip install 'llemma-prover[vllm]'` on a Linux machine with a CUDA GPU."

VLLM_DEFAULT_MAX_LOGPROBS = 20
"""vLLM's own `max_logprobs` (`vllm/engine/arg_utils.py`), assumed for an engine that does not say."""

_STOP_WINDOW_TOKENS = 8
"""Tokens decoded beyond the longest stop string's length when checking a beam for a stop."""


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


def beam_step_params_kwargs(logprobs: int) -> dict[str, Any]:
    """`SamplingParams` arguments of one beam-search step: one token, the top `logprobs` next tokens.

    What vLLM's own `LLM.beam_search` sends per step (`logprobs=2 * beam_width`, `max_tokens=1`),
    greedy, without detokenizing (we decode the beams ourselves).
    """
    return {"n": 1, "max_tokens": 1, "temperature": 0.0, "logprobs": logprobs, "detokenize": False}


def engine_kwargs(settings: ModelSettings) -> dict[str, Any]:
    """`LLM(...)` arguments: the model, tensor parallelism, prefix caching (the few-shot prefix is
    shared), and `max_logprobs` high enough for beam search of width `search.samples`."""
    kwargs: dict[str, Any] = {
        "model": settings.name,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "enable_prefix_caching": True,
        "seed": settings.seed,
        "max_logprobs": settings.max_logprobs,
    }
    if settings.dtype != "auto":
        kwargs["dtype"] = settings.dtype
    return kwargs


def _engine_config(llm: Any, name: str) -> int | None:
    for path in (("llm_engine", "model_config", name), ("model_config", name)):
        value: Any = llm
        for attribute in path:
            value = getattr(value, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
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


def _top_tokens(output: Any, k: int) -> list[tuple[int, float]] | None:
    """The `k` likeliest next tokens of one step's `RequestOutput`, best first; None if vLLM gave none
    (the sequence reached the model's length or was aborted)."""
    outputs = getattr(output, "outputs", None) or []
    entries = getattr(outputs[0], "logprobs", None) if outputs else None
    if not entries:
        return None
    pairs = [(int(token), float(getattr(value, "logprob", value))) for token, value in entries[0].items()]
    # vLLM adds the sampled token to the top k when it is not among them: keep the top k only.
    pairs.sort(key=lambda pair: -pair[1])
    return pairs[:k]


@dataclass
class _Beam:
    tokens: list[int]
    logprobs: list[float]
    total: float = 0.0


@dataclass
class _BeamRow:
    """One beam-search request's state: live beams (all of one length) and finished hypotheses."""

    prompt: list[int]
    request: TextRequest
    k: int
    live: list[_Beam] = field(default_factory=lambda: [_Beam([], [])])
    hypotheses: list[tuple[float, _Beam, FinishReason]] = field(default_factory=list)
    """(mean token log-prob, beam, reason), best first, at most `request.n`."""
    done: bool = False

    def add(self, beam: _Beam, reason: FinishReason) -> None:
        self.hypotheses.append((beam.total / max(len(beam.tokens), 1), beam, reason))
        self.hypotheses.sort(key=lambda h: -h[0])
        del self.hypotheses[self.request.n :]

    def close(self) -> None:
        for beam in self.live:
            if beam.tokens:
                self.add(beam, FinishReason.LENGTH)
        self.live = []
        self.done = True


class VLLMGenerator:
    """A `TextGenerator` over a `vllm.LLM`; blocking engine calls run on one worker thread.

    `llm` and `sampling_params_cls` are vLLM's objects (or stand-ins with the same shape);
    `max_logprobs` is the engine's (read from its model config when not given, else vLLM's default
    20). Wrap it in `MergingGenerator` so concurrent callers share engine calls. Beam-search
    requests are answered by our own step loop (see the module docstring): at most `n` completions,
    each ended at its first stop string or EOS, best mean token log-prob first.
    """

    def __init__(
        self,
        llm: Any,
        *,
        sampling_params_cls: Any,
        model_name: str = "",
        max_logprobs: int | None = None,
    ) -> None:
        self.llm = llm
        self.sampling_params_cls = sampling_params_cls
        self.model_name = model_name
        self.tokenizer = llm.get_tokenizer()
        self.eos_token_id: int | None = getattr(self.tokenizer, "eos_token_id", None)
        self.context_length = _engine_config(llm, "max_model_len")
        if max_logprobs is None:
            max_logprobs = _engine_config(llm, "max_logprobs") or VLLM_DEFAULT_MAX_LOGPROBS
        self.max_logprobs = max_logprobs
        self.engine_calls = 0
        self.beam_steps = 0
        self._narrow_warned: set[int] = set()
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
        return cls(
            llm,
            sampling_params_cls=vllm.SamplingParams,
            model_name=settings.name,
            max_logprobs=settings.max_logprobs,
        )

    def step_logprobs(self, width: int) -> int:
        """How many next-token log-probs a beam-search step of `width` beams asks for: 2 x width as
        vLLM's own beam search, capped by the engine's `max_logprobs`; raises `GenerationError` when
        the engine cannot give even `width` (beam search would be wrong)."""
        if width > self.max_logprobs:
            raise GenerationError(
                f"beam search of width {width} needs the vLLM engine's max_logprobs >= {2 * width}, "
                f"and it is {self.max_logprobs}: set model.max_logprobs (--set model.max_logprobs={2 * width}) "
                "or ask for fewer samples"
            )
        if 2 * width > self.max_logprobs and width not in self._narrow_warned:
            self._narrow_warned.add(width)
            logger.warning(
                "beam search of width %d reads only %d next tokens per beam (model.max_logprobs); "
                "set model.max_logprobs=%d for the full 2 x width",
                width,
                self.max_logprobs,
                2 * width,
            )
        return min(2 * width, self.max_logprobs)

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        """Completions per request, in order; `PromptTooLong` (with indices) if a prompt does not fit."""
        if not requests:
            return []
        for request in requests:
            if request.beam_search:
                self.step_logprobs(request.n)
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
        results: list[list[Completion]] = [[] for _ in ids]
        sampled = [index for index, request in enumerate(requests) if not request.beam_search]
        if sampled:
            prompts = [{"prompt_token_ids": ids[index]} for index in sampled]
            params = [self.sampling_params_cls(**sampling_params_kwargs(requests[index])) for index in sampled]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            for index, output in zip(sampled, outputs, strict=True):
                row = [_sampled_completion(o) for o in output.outputs]
                results[index] = row * requests[index].n if requests[index].greedy else row
        beams = [index for index, request in enumerate(requests) if request.beam_search]
        if beams:
            rows = [_BeamRow(ids[i], requests[i], self.step_logprobs(requests[i].n)) for i in beams]
            for index, completions in zip(beams, self._beam_search(rows), strict=True):
                results[index] = completions
        return results

    # ------------------------------------------------------------------ beam search

    def _beam_search(self, rows: list[_BeamRow]) -> list[list[Completion]]:
        params = {k: self.sampling_params_cls(**beam_step_params_kwargs(k)) for k in {row.k for row in rows}}
        step = 0
        while True:
            for row in rows:
                if not row.done and step >= row.request.max_tokens:
                    row.close()
            active = [row for row in rows if not row.done]
            if not active:
                break
            pairs = [(row, beam) for row in active for beam in row.live]
            prompts = [{"prompt_token_ids": row.prompt + beam.tokens} for row, beam in pairs]
            outputs = self.llm.generate(prompts, [params[row.k] for row, _ in pairs], use_tqdm=False)
            self.beam_steps += 1
            step += 1
            position = 0
            for row in active:
                width = len(row.live)
                self._advance(row, outputs[position : position + width], step)
                position += width
        return [
            [self._completion(beam, reason, row.request.stop) for _, beam, reason in row.hypotheses] for row in rows
        ]

    def _advance(self, row: _BeamRow, outputs: Sequence[Any], step: int) -> None:
        """Move `row` to its best candidates after one step (the hf backend's rule; see the module docstring)."""
        n = row.request.n
        candidates: list[tuple[float, int, int, float]] = []  # (total, parent, token, the token's log-prob)
        for parent, output in enumerate(outputs):
            beam = row.live[parent]
            top = _top_tokens(output, row.k)
            if top is None:  # the engine ended this beam (model length): it stays as it is
                if beam.tokens:
                    row.add(beam, FinishReason.LENGTH)
                continue
            candidates.extend((beam.total + logprob, parent, token, logprob) for token, logprob in top)
        candidates.sort(key=lambda c: -c[0])
        live: list[_Beam] = []
        for rank, (total, parent, token, logprob) in enumerate(candidates):
            if len(live) >= n and rank >= n:
                break  # neither a live beam nor a hypothesis can come from here on
            beam = row.live[parent]
            new = _Beam([*beam.tokens, token], [*beam.logprobs, logprob], total)
            reason = self._stop_reason(new.tokens, row.request.stop)
            if reason is not None:
                if rank < n:  # as in standard beam search: only hypotheses ranked within the beam count
                    row.add(new, reason)
            elif len(live) < n:
                live.append(new)
        row.live = live
        best_live = max((beam.total / step for beam in live), default=float("-inf"))
        if not live or (len(row.hypotheses) >= n and best_live <= row.hypotheses[-1][0]):
            row.live = []
            row.done = True

    def _decode(self, tokens: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(tokens), skip_special_tokens=True))

    def _stop_reason(self, tokens: list[int], stops: Sequence[str]) -> FinishReason | None:
        """EOS or STOP if the beam `tokens` ends there (its parent did not), else None."""
        if self.eos_token_id is not None and tokens[-1] == self.eos_token_id:
            return FinishReason.EOS
        if not stops:
            return None
        # The parent held no stop string, so a new one ends in the last token: a short tail suffices.
        window = max(len(stop) for stop in stops) + _STOP_WINDOW_TOKENS
        return FinishReason.STOP if find_stop(self._decode(tokens[-window:]), stops) is not None else None

    def _completion(self, beam: _Beam, reason: FinishReason, stops: Sequence[str]) -> Completion:
        return Completion(cut_at_stop(self._decode(beam.tokens), stops), tuple(beam.logprobs), reason)

"""Text generation, the layer under tactic generation: prompts in, completions with log-probs out.

Every backend (`hf`, `vllm`, `openai`) implements `TextGenerator.complete`; `MergingGenerator`
merges the `complete` calls of concurrent callers into batched calls of one backend. Tactic
generation (`prover.models.tactics.PromptedTacticGenerator`) is a prompt format and an extraction
rule on top, so tactics, drafts and sketches can share one model and one batcher.

The request is one validated parameter object with errors naming the field, and a completion is a
plain record (text, per-token log-probs, finish reason), after vLLM's `SamplingParams` and
`CompletionOutput`. Nothing here imports torch, transformers, httpx or vllm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class FinishReason(StrEnum):
    """Why a completion ended."""

    STOP = "stop"
    """A stop string was generated; it is not part of the completion's text."""
    EOS = "eos"
    """The model produced its end-of-sequence token."""
    LENGTH = "length"
    """`max_tokens` tokens were generated without a stop string or EOS."""


@dataclass(frozen=True, slots=True)
class TextRequest:
    """Ask for completions of one prompt. Immutable and hashable; invalid values raise `ValueError`.

    Exactly `n` completions come back, except that beam search returns at most `n` (the beams
    that finished) and a greedy request (`temperature == 0`, no beam search) returns `n` copies of
    its one completion.
    """

    prompt: str
    """The text to continue (the backend adds its tokenizer's BOS token where it has one)."""
    n: int = 1
    """Completions wanted; with `beam_search`, the beam width."""
    max_tokens: int = 256
    """At most this many tokens are generated per completion."""
    temperature: float = 0.0
    """Sampling temperature; 0 means greedy decoding. Ignored by beam search."""
    beam_search: bool = False
    """Beam search of width `n`, ranked by mean token log-prob (an OpenAI-style server without vLLM's
    `use_beam_search` decodes greedily instead; see `model.beam_search`)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p` (1 = off)."""
    top_k: int = 0
    """Keep the `top_k` likeliest tokens only (0 = off)."""
    stop: tuple[str, ...] = ()
    """A completion ends where its text first contains one of these; the stop string is cut off."""
    seed: int | None = None
    """Seed for this request's sampling; None uses the backend's own generator (seeded once)."""

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise ValueError(f"TextRequest.prompt: must be a string, got {type(self.prompt).__name__}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"TextRequest.n: must be an integer >= 1, got {self.n!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"TextRequest.max_tokens: must be an integer >= 1, got {self.max_tokens!r}")
        if not isinstance(self.temperature, int | float) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"TextRequest.temperature: must be a finite number >= 0, got {self.temperature!r}")
        if not isinstance(self.beam_search, bool):
            raise ValueError(f"TextRequest.beam_search: must be a bool, got {self.beam_search!r}")
        if not isinstance(self.top_p, int | float) or not 0 < self.top_p <= 1:
            raise ValueError(f"TextRequest.top_p: must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"TextRequest.top_k: must be an integer >= 0, got {self.top_k!r}")
        if isinstance(self.stop, str) or not all(isinstance(stop, str) and stop for stop in self.stop):
            raise ValueError(f"TextRequest.stop: must be a sequence of non-empty strings, got {self.stop!r}")
        if not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"TextRequest.seed: must be None or an integer >= 0, got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        """Whether this is greedy decoding (temperature 0 without beam search): one distinct completion."""
        return not self.beam_search and self.temperature == 0


@dataclass(frozen=True, slots=True)
class Completion:
    """One completion of a prompt.

    `token_logprobs` are the raw model's log-probabilities (log-softmax of the logits, not after
    temperature or top-p) of the generated tokens, including the token that completed the stop
    string or the EOS token; `text` is their decoding cut before the first stop string.
    """

    text: str
    token_logprobs: tuple[float, ...]
    finish_reason: FinishReason

    @property
    def logprob(self) -> float:
        """The sum of `token_logprobs`: the completion's log-probability under the model."""
        return math.fsum(self.token_logprobs)

    @property
    def num_tokens(self) -> int:
        return len(self.token_logprobs)

    @property
    def mean_logprob(self) -> float:
        """The mean token log-prob (0 for a completion without tokens)."""
        return self.logprob / max(self.num_tokens, 1)


@runtime_checkable
class TextGenerator(Protocol):
    """Completes prompts. Batched: many requests in, one completion list per request out, same order.

    Concurrent callers may share one generator. A failure of the model raises `GenerationError`
    (`PromptTooLong`, with the indices of the requests at fault, when a prompt does not fit).
    """

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]: ...

    async def close(self) -> None: ...

"""What every model backend shares: sampling settings, errors, stop strings and candidate post-processing.

A backend produces `Completion`s (text, per-token log-probs, finish reason); `finalize_candidates`
turns them into what `TacticGenerator.generate` promises: tactics cut at the format's stop
string, cleaned, unique by text (a duplicate keeps its best score), best first.
Nothing here imports torch, transformers, httpx or vllm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lean_env.errors import MissingDependency
from lean_env.lean_syntax import clean_tactic
from prover.config import ModelSettings
from prover.models.text import Completion
from search.types import TacticCandidate


class GenerationError(RuntimeError):
    """The model or the server failed to produce candidates (not a tactic outcome: the search ends)."""


class PromptTooLong(GenerationError):
    """A prompt plus `max_new_tokens` does not fit the model's context.

    `indices` are the positions, in the request list given to `generate`, of the prompts at fault,
    so a caller that merged requests of several searches can fail only the searches concerned.
    """

    def __init__(self, message: str, indices: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.indices: tuple[int, ...] = tuple(indices)


class ModelLoadError(MissingDependency):
    """A model could not be loaded (no weights, no network, out of memory); names the model and the cause."""

    def __init__(self, model: str, cause: str, how: str) -> None:
        self.model = model
        self.cause = cause
        super().__init__(f"model {model!r} ({cause})", how)


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """How candidates are drawn; the subset of `ModelSettings` every backend understands.

    `temperature == 0` means beam search: hf and vllm always, openai when the server offers vLLM's
    `use_beam_search` (`model.beam_search`), else greedy decoding. `top_k == 0` disables top-k
    (Hugging Face would otherwise apply 50).
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingConfig.max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingConfig.top_p: must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"SamplingConfig.top_k: must be >= 0, got {self.top_k}")

    @property
    def beam_search(self) -> bool:
        return self.temperature == 0

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> SamplingConfig:
        return cls(
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            seed=settings.seed,
        )


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest occurrence of any stop string in `text`, or None."""
    positions = [index for index in (text.find(stop) for stop in stops if stop) if index >= 0]
    return min(positions) if positions else None


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` up to (not including) its first stop string."""
    index = find_stop(text, stops)
    return text if index is None else text[:index]


def finalize_candidates(
    completions: Iterable[Completion],
    extract: Callable[[str], str],
    limit: int | None = None,
) -> list[TacticCandidate]:
    """Cut, clean and de-duplicate completions; best (highest mean token log-prob) first.

    `extract` cuts a completion down to the tactic (the prompt format's rule). Empty tactics are
    dropped. A candidate's score covers every token of its completion (at least one is counted).
    Among duplicates the one with the best mean log-prob is kept, so a tactic the model reached by
    two tokenisations is scored by its likelier one. Ties keep generation order.
    """
    best: dict[str, TacticCandidate] = {}
    order: dict[str, int] = {}
    for completion in completions:
        text = clean_tactic(extract(completion.text))
        if not text.strip():
            continue
        candidate = TacticCandidate(text, float(completion.logprob), max(1, completion.num_tokens))
        kept = best.get(text)
        if kept is None:
            order[text] = len(order)
            best[text] = candidate
        elif candidate.mean_logprob > kept.mean_logprob:
            best[text] = candidate
    ranked = sorted(best.values(), key=lambda c: (-c.mean_logprob, order[c.text]))
    return ranked if limit is None else ranked[:limit]

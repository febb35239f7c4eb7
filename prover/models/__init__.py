"""Tactic generation: prompt formats and model backends behind `search.TacticGenerator`.

`build_generator(settings)` returns the backend named by `settings.backend`:
- `hf`: a Hugging Face model run by our own batched decode loop (`prover.models.hf`), wrapped in
  `MergingGenerator` so concurrent searches share model calls;
- `vllm`: vLLM's offline engine, also wrapped in `MergingGenerator`;
- `openai`: OpenAI-compatible `/v1/completions` servers (batching happens on the server).

Importing this package imports neither torch, transformers, httpx nor vllm; each backend module
does, and only when chosen. A missing extra or model raises `lean_env.errors.MissingDependency`.
"""

from __future__ import annotations

from lean_env.errors import MissingDependency
from prover.config import ModelSettings
from prover.models.base import (
    GenerationError,
    ModelLoadError,
    PromptTooLong,
    RawCompletion,
    SamplingConfig,
    finalize_candidates,
)
from prover.models.batching import MergingGenerator, MergingStats
from prover.models.prompts import LLEMMA, REPROVER, PromptFormat, load_prompt_format
from search.types import TacticGenerator

__all__ = [
    "LLEMMA",
    "REPROVER",
    "GenerationError",
    "MergingGenerator",
    "MergingStats",
    "ModelLoadError",
    "PromptFormat",
    "PromptTooLong",
    "RawCompletion",
    "SamplingConfig",
    "build_generator",
    "finalize_candidates",
    "load_prompt_format",
]


def _extra_hint(extra: str) -> str:
    return f"Install the `{extra}` extra: pip install 'llemma-prover[{extra}]'."


def build_generator(settings: ModelSettings) -> TacticGenerator:
    """The tactic generator `settings` describe, ready to use.

    `hf` and `vllm` load the model here (blocking, possibly minutes for a 7B model); `openai`
    contacts no server until the first request. Raises `MissingDependency` when the backend's
    extra is not installed or the model cannot be loaded (`ModelLoadError`, naming model and cause),
    and `SettingsError` for a bad `prompt_format`.
    """
    prompt_format = load_prompt_format(settings.prompt_format)
    if settings.backend == "hf":
        try:
            from prover.models.hf import HFGenerator
        except ImportError as error:
            raise MissingDependency(f"PyTorch/transformers ({error.name or error})", _extra_hint("hf")) from error
        generator = HFGenerator.load(settings, prompt_format)
        return MergingGenerator(
            generator,
            window_ms=settings.batch_window_ms,
            max_batch_cost=settings.max_batch_tokens,
            cost=generator.request_cost,
        )
    if settings.backend == "vllm":
        from prover.models.vllm_backend import VLLMGenerator

        engine = VLLMGenerator.load(settings, prompt_format)
        # vLLM pages its cache itself; merging here only turns concurrent calls into one engine call.
        return MergingGenerator(engine, window_ms=settings.batch_window_ms, max_batch_cost=1 << 30)
    if settings.backend == "openai":
        try:
            from prover.models.openai_backend import OpenAIGenerator
        except ImportError as error:
            raise MissingDependency(f"httpx ({error.name or error})", _extra_hint("openai")) from error
        return OpenAIGenerator.from_settings(settings, prompt_format)
    raise ValueError(f"model.backend: unknown backend {settings.backend!r} (hf, vllm, openai)")

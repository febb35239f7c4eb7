"""Text and tactic generation: prompt formats and model backends behind `TextGenerator`.

`build_text_generator(settings)` returns the text generator `settings.backend` names:
- `hf`: a Hugging Face model run by our own batched decode loop (`prover.models.hf`), wrapped in
  `MergingGenerator` so concurrent callers share model calls;
- `vllm`: vLLM's offline engine, also wrapped in `MergingGenerator`;
- `openai`: OpenAI-compatible `/v1/completions` servers (batching happens on the server).

`build_generator(settings)` puts the configured prompt format on top of one
(`PromptedTacticGenerator`), giving the `search.TacticGenerator` the search asks; pass it an
existing text generator to share that generator's model and batches with other prompts.

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
    SamplingConfig,
    finalize_candidates,
)
from prover.models.batching import BatchMerger, MergingGenerator, MergingStats
from prover.models.prompts import LLEMMA, REPROVER, PromptFormat, load_prompt_format
from prover.models.tactics import PromptedTacticGenerator
from prover.models.text import Completion, FinishReason, TextGenerator, TextRequest

__all__ = [
    "LLEMMA",
    "REPROVER",
    "BatchMerger",
    "Completion",
    "FinishReason",
    "GenerationError",
    "MergingGenerator",
    "MergingStats",
    "ModelLoadError",
    "PromptFormat",
    "PromptTooLong",
    "PromptedTacticGenerator",
    "SamplingConfig",
    "TextGenerator",
    "TextRequest",
    "build_generator",
    "build_text_generator",
    "finalize_candidates",
    "load_prompt_format",
]


def _extra_hint(extra: str) -> str:
    return f"Install the `{extra}` extra: pip install 'llemma-prover[{extra}]'."


def build_text_generator(settings: ModelSettings) -> TextGenerator:
    """The text generator `settings` describe, ready to use; build one and share it.

    `hf` and `vllm` load the model here (blocking, possibly minutes for a 7B model) and come
    wrapped in `MergingGenerator`; `openai` contacts no server until the first request. Raises
    `MissingDependency` when the backend's extra is not installed or the model cannot be loaded
    (`ModelLoadError`, naming model and cause).
    """
    if settings.backend == "hf":
        try:
            from prover.models.hf import HFGenerator
        except ImportError as error:
            raise MissingDependency(f"PyTorch/transformers ({error.name or error})", _extra_hint("hf")) from error
        generator = HFGenerator.load(settings)
        return MergingGenerator(
            generator,
            window_ms=settings.batch_window_ms,
            max_batch_cost=settings.max_batch_tokens,
            cost=generator.request_cost,
        )
    if settings.backend == "vllm":
        from prover.models.vllm_backend import VLLMGenerator

        engine = VLLMGenerator.load(settings)
        # vLLM pages its cache itself; merging here only turns concurrent calls into one engine call.
        return MergingGenerator(engine, window_ms=settings.batch_window_ms, max_batch_cost=1 << 30)
    if settings.backend == "openai":
        try:
            from prover.models.openai_backend import OpenAIGenerator
        except ImportError as error:
            raise MissingDependency(f"httpx ({error.name or error})", _extra_hint("openai")) from error
        return OpenAIGenerator.from_settings(settings)
    raise ValueError(f"model.backend: unknown backend {settings.backend!r} (hf, vllm, openai)")


def build_generator(settings: ModelSettings, text: TextGenerator | None = None) -> PromptedTacticGenerator:
    """The tactic generator `settings` describe: their prompt format and sampling over a text generator.

    `text` defaults to `build_text_generator(settings)`; closing the tactic generator closes it.
    Raises `SettingsError` for a bad `prompt_format` (before any model is loaded), and whatever
    `build_text_generator` raises.
    """
    prompt_format = load_prompt_format(settings.prompt_format)
    if text is None:
        text = build_text_generator(settings)
    return PromptedTacticGenerator(text, prompt_format, SamplingConfig.from_settings(settings))

"""Tactic generation on top of text generation: a prompt format plus extraction over any `TextGenerator`.

`PromptedTacticGenerator` is the `search.TacticGenerator` every backend is used through: it
renders each proof state with the prompt format, asks the text generator for completions that stop
at the format's stop strings, and turns them into candidates (cut, cleaned, unique, best first).
The text generator underneath may be shared with other prompts (drafts, sketches), so they are
batched together with the tactics.

`SeededTacticGenerator` stamps one seed on every request of one search (an evaluation's attempt
`k` uses `seed + k`), over any `TacticGenerator`; `PromptedTacticGenerator` passes a request's
seed on to its `TextRequest`, so it reaches hf's sampler and an OpenAI server's `seed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from prover.models.base import GenerationError, SamplingConfig, finalize_candidates
from prover.models.prompts import PromptFormat
from prover.models.text import TextGenerator, TextRequest
from search.types import GenerationRequest, TacticCandidate, TacticGenerator


class PromptedTacticGenerator:
    """A `TacticGenerator` over `text`: prompt format in front, candidate post-processing behind.

    `sampling` sets how completions are drawn: `temperature == 0` asks for beam search (width
    `num_samples`; backends without beams decode greedily), otherwise `num_samples` samples.
    A request's `seed` becomes its text request's (None: the backend's own generator, seeded once).
    One text request is sent per generation request, in order, so a `PromptTooLong` from `text`
    names the positions of the generation requests at fault. `close` closes `text`.
    """

    def __init__(self, text: TextGenerator, prompt_format: PromptFormat, sampling: SamplingConfig) -> None:
        self.text = text
        self.prompt_format = prompt_format
        self.sampling = sampling

    def text_request(self, request: GenerationRequest) -> TextRequest:
        """The text request `request` becomes: its rendered prompt, the format's stops, our sampling."""
        return TextRequest(
            prompt=self.prompt_format.render(request),
            n=request.num_samples,
            max_tokens=self.sampling.max_new_tokens,
            temperature=self.sampling.temperature,
            beam_search=self.sampling.beam_search,
            top_p=self.sampling.top_p,
            top_k=self.sampling.top_k,
            stop=self.prompt_format.stops,
            seed=request.seed,
        )

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        """Candidates per request, unique by text, best mean token log-prob first, at most `num_samples`."""
        if not requests:
            return []
        rows = await self.text.complete([self.text_request(request) for request in requests])
        if len(rows) != len(requests):
            raise GenerationError(f"the text generator returned {len(rows)} lists for {len(requests)} requests")
        return [
            finalize_candidates(row, self.prompt_format.extract, limit=request.num_samples)
            for row, request in zip(rows, requests, strict=True)
        ]

    async def close(self) -> None:
        await self.text.close()


class SeededTacticGenerator:
    """`inner` with `seed` stamped on every request that has none: one search attempt's generator.

    Every search of an attempt number shares the seed (attempt `k` of a run uses `seed + k`), so
    hf still batches the concurrent searches of one attempt together (it groups sampled requests
    by seed). `close` does nothing: `inner` belongs to whoever built it and outlives the search.
    """

    def __init__(self, inner: TacticGenerator, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"SeededTacticGenerator.seed: must be an integer >= 0, got {seed!r}")
        self.inner = inner
        self.seed = seed

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        stamped = [
            request if request.seed is not None else dataclasses.replace(request, seed=self.seed)
            for request in requests
        ]
        return await self.inner.generate(stamped)

    async def close(self) -> None:
        return None

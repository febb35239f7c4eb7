"""A best-first search over the scripted environment, driven by the real `hf` backend on a tiny trained model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lean_env.types import ProofClosed
from prover.config import ModelSettings
from prover.models import MergingGenerator, PromptedTacticGenerator, build_generator
from search import BestFirstSearch, SearchConfig, SearchStatus
from tests.models.conftest import INTRO_STATE, PROOF, ROOT_STATE
from tests.stand_ins.scripted import Effect, ScriptedEnv, make_theorem

SCRIPT: dict[str, dict[str, Effect]] = {
    ROOT_STATE: {"intro h": INTRO_STATE, "simp": "p : Prop\n⊢ True"},
    INTRO_STATE: {"exact h": ProofClosed(), "assumption": ProofClosed()},
}


@pytest.mark.parametrize("temperature", [0.0, 1.0], ids=["beam", "sampling"])
def test_tiny_model_proves_a_scripted_theorem(trained_model_dir: Path, temperature: float) -> None:
    settings = ModelSettings(
        name=str(trained_model_dir),
        prompt_format="reprover",
        temperature=temperature,
        max_new_tokens=12,
        seed=0,
    )
    generator = build_generator(settings)
    env = ScriptedEnv(SCRIPT, initial=ROOT_STATE)
    config = SearchConfig(max_expansions=6, num_samples=4, wall_clock_s=60, debug_invariants=True)

    async def main() -> object:
        try:
            return await asyncio.wait_for(BestFirstSearch(make_theorem("p_imp_p"), env, generator, config).run(), 90)
        finally:
            await generator.close()

    result = asyncio.run(main())
    assert result.status is SearchStatus.PROVED, result.failure_reason  # type: ignore[attr-defined]
    assert result.tactics == (PROOF[ROOT_STATE], PROOF[INTRO_STATE])  # type: ignore[attr-defined]
    assert result.verified  # type: ignore[attr-defined]
    assert isinstance(generator, PromptedTacticGenerator) and isinstance(generator.text, MergingGenerator)
    assert generator.text.stats.inner_calls == 2

"""Session fixtures: the tiny random Llama (built once) and a copy trained to prove a scripted theorem.

The model fixtures skip when torch or transformers is absent, so the openai, vllm-mapping and
merging tests still run on an installation without the `hf` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lean_env.types import ProofState
from prover.models.prompts import REPROVER
from search.types import GenerationRequest
from tests.stand_ins.tiny_model import build_tiny_model, train_tiny_model

# The scripted theorem the trained model learns to prove: `intro h` then `exact h`.
ROOT_STATE = "p : Prop\n⊢ p → p"
INTRO_STATE = "p : Prop\nh : p\n⊢ p"
PROOF = {ROOT_STATE: "intro h", INTRO_STATE: "exact h"}


def _need_hf() -> None:
    pytest.importorskip("torch", reason="needs torch (the `hf` extra)")
    pytest.importorskip("transformers", reason="needs transformers (the `hf` extra)")
    pytest.importorskip("tokenizers", reason="needs tokenizers (the `hf` extra)")


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a loaded CI runner OpenMP's spinning
    threads make them several times slower; restored after this package's tests."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama and its tokenizer, saved like a hub checkpoint."""
    _need_hf()
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def trained_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama overfitted to answer each state of PROOF (reprover format) with its tactic, then EOS."""
    examples = [
        (REPROVER.render(GenerationRequest(ProofState.from_pp(state), 1)), tactic) for state, tactic in PROOF.items()
    ]
    return train_tiny_model(tiny_model_dir, tmp_path_factory.mktemp("tiny-llama-trained"), examples, steps=60)

"""A tiny random Llama with its own byte-level BPE tokenizer, saved to a directory like a hub checkpoint.

`build_tiny_model(path)` writes `config.json`, the weights and the tokenizer files, so the real
loading code (`AutoTokenizer` / `AutoModelForCausalLM.from_pretrained(path)`) runs on it. The weights
are random (seeded), so what it generates is noise; `train_tiny_model` overfits it on a few
(prompt, completion) pairs when a test needs it to say something specific. Needs torch,
transformers and tokenizers; about two seconds on a CPU.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Lean-like lines for the tokenizer's training corpus: identifiers, binders, unicode and the
# separators the prompt formats use, so prompts tokenize into a realistic number of pieces.
_NAMES = ["n", "m", "k", "a", "b", "c", "x", "y", "h", "h₀", "h₁", "hx", "hab", "f", "s", "t", "p", "q"]
_TYPES = ["ℕ", "ℤ", "ℝ", "ℚ", "Prop", "Set α", "Finset ℕ", "α → β"]
_TACTICS = [
    "simp",
    "intro h",
    "exact h",
    "linarith",
    "nlinarith [sq_nonneg (a - b)]",
    "norm_num",
    "ring",
    "omega",
    "constructor",
    "rfl",
    "apply Nat.succ_le_of_lt",
    "rw [add_comm]",
    "exact ⟨hp, hq⟩",
    "induction n with\n  | zero => simp\n  | succ k ih => simp [ih]",
    "cases h with\n  | inl hp => exact hp\n  | inr hq => exact hq",
    "field_simp",
    "positivity",
    "decide",
    "aesop",
]
_RELATIONS = ["=", "≤", "<", "≠", "∣", "∈", "⊆", "↔", "∧", "∨", "→"]
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


def corpus_lines(count: int = 600, seed: int = 0) -> list[str]:
    """Deterministic Lean-flavoured text (hypotheses, goals, tactics, prompt scaffolding)."""
    rng = random.Random(seed)
    lines = [
        "Tactic state:",
        "---",
        "Next tactic:",
        "[GOAL]",
        "[PROOFSTEP]",
        "Given the Lean 4 tactic state, suggest a next tactic.",
        "theorem foo (n : ℕ) (h₀ : 0 < n) : n ≠ 0 := by",
        *_TACTICS,
    ]
    for _ in range(count):
        a, b = rng.sample(_NAMES, 2)
        kind = rng.randrange(4)
        if kind == 0:
            lines.append(f"{a} {b} : {rng.choice(_TYPES)}")
        elif kind == 1:
            lines.append(f"⊢ {a} {rng.choice(_RELATIONS)} {b} + {rng.randrange(100)}")
        elif kind == 2:
            lines.append(f"{rng.choice(_NAMES)} : {a} * {b} {rng.choice(_RELATIONS)} {a} ^ 2")
        else:
            lines.append(rng.choice(_TACTICS))
    return lines


def build_tokenizer(vocab_size: int = 512, seed: int = 0) -> Any:
    """A byte-level BPE `PreTrainedTokenizerFast` with BOS prepended, `</s>` as EOS and `<pad>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus_lines(seed=seed), trainer=trainer)
    bos_id = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos_id)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=1024,
    )


def build_tiny_model(
    path: Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    max_position_embeddings: int = 1024,
) -> Path:
    """Build the tiny Llama + tokenizer and `save_pretrained` both into `path`; returns `path`.

    Two KV heads for four query heads, so grouped-query attention is exercised too.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(seed=seed)
    config = LlamaConfig(  # type: ignore[call-arg]  # rope_theta: accepted and mapped by every 5.x
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        rope_theta=10000.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def train_tiny_model(
    source: Path,
    target: Path,
    examples: Sequence[tuple[str, str]],
    *,
    steps: int = 150,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> Path:
    """Overfit the model saved at `source` on (prompt, completion) pairs; save the result to `target`.

    The loss covers only the completion tokens, each completion followed by EOS, so the model
    learns what to say after each prompt and then to stop. Used to make the tiny model propose
    specific tactics for specific states.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    rows: list[tuple[list[int], list[int]]] = []
    for prompt, completion in examples:
        prompt_ids = tokenizer(prompt)["input_ids"]
        completion_ids = [*tokenizer(completion, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        rows.append((prompt_ids, completion_ids))
    width = max(len(p) + len(c) for p, c in rows)
    inputs = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (prompt_ids, completion_ids) in enumerate(rows):
        ids = prompt_ids + completion_ids
        inputs[row, : len(ids)] = torch.tensor(ids)
        labels[row, len(prompt_ids) : len(ids)] = torch.tensor(completion_ids)
        mask[row, : len(ids)] = 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    for _ in itertools.repeat(None, steps):
        loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target

"""Candidates per second of our `hf` backend against plain per-request `generate`, on one GPU.

    python bench/generation_gpu.py            # H100/H200: Llemma-7B's shape, random bf16 weights
    python bench/generation_gpu.py --smoke    # a tiny model on the CPU, to check the script runs

No network is needed: the model is built from Llemma-7B's config with random weights (the cost per
token is that of the trained model) and the tokenizer is synthetic (a word-level vocabulary of
the model's size; only token ids matter). Each concurrent "search" asks for `--samples` candidates
of `--new-tokens` tokens for its own prompt of about `--prompt-tokens` tokens.

- `hf`: our backend as the prover runs it: `PromptedTacticGenerator` over `MergingGenerator` over
  `HFGenerator`; the searches' requests arrive concurrently and are merged (each prompt encoded
  once, its cache shared by its samples, work chunked by `--max-batch-tokens`).
- `naive`: `model.generate(num_return_sequences=samples, do_sample=True, top_k=0)` for one request
  at a time, as the reference loop does; concurrency does not change its rate, so rows whose full
  run would overrun `--time-budget-s` measure the first requests only (the row says how many).

Rows are printed as they are measured (flushed), then the last line
`hf_candidates_per_s_8x32=<n> naive_candidates_per_s_8x32=<m>` (for the default settings).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from lean_env.types import ProofState
from prover.models.base import SamplingConfig
from prover.models.batching import MergingGenerator
from prover.models.hf import HFGenerator
from prover.models.prompts import PromptFormat
from prover.models.tactics import PromptedTacticGenerator
from search.types import GenerationRequest

# A stop string the synthetic vocabulary can never produce, so every candidate runs its full length
# in both paths (random weights would otherwise stop at random).
BENCH_FORMAT = PromptFormat("bench", "{{state}}", ("\x00never\x00",))


def say(line: str = "") -> None:
    print(line, flush=True)


def llemma_7b_config(vocab: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(  # type: ignore[call-arg]  # rope_theta: accepted and mapped by every 5.x
        vocab_size=vocab,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        rope_theta=1e6,
        max_position_embeddings=16384,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )


def tiny_config(vocab: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )


def synthetic_tokenizer(vocab: int) -> Any:
    """A word-level tokenizer with `vocab` ids: <unk> <s> </s> <pad>, then words w4 ... w{vocab-1}."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    words.update({f"w{i}": i for i in range(4, vocab)})
    backend = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def build_model(config: Any, device: torch.device, dtype: torch.dtype) -> Any:
    from transformers import LlamaForCausalLM

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def states(count: int, prompt_tokens: int, vocab: int, seed: int) -> list[ProofState]:
    """`count` distinct proof states of `prompt_tokens - 1` words each (BOS makes the prompt length)."""
    rng = random.Random(seed)
    return [
        ProofState.from_pp(" ".join(f"w{rng.randrange(4, vocab)}" for _ in range(prompt_tokens - 1)))
        for _ in range(count)
    ]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "-"
    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f}"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def run_ours(
    model: Any, tokenizer: Any, args: argparse.Namespace, concurrency: int, device: torch.device, static: bool
) -> tuple[float, str]:
    """Seconds for `concurrency` concurrent searches to get their candidates through MergingGenerator."""
    sampling = SamplingConfig(max_new_tokens=args.new_tokens, temperature=1.0, top_p=1.0, top_k=0, seed=0)
    inner = HFGenerator(
        model,
        tokenizer,
        seed=sampling.seed,
        max_batch_tokens=args.max_batch_tokens,
        static_cache=static,
        model_name="random-llemma-7b-shape",
    )
    merger = MergingGenerator(inner, window_ms=5, max_batch_cost=args.max_batch_tokens, cost=inner.request_cost)
    generator = PromptedTacticGenerator(merger, BENCH_FORMAT, sampling)
    requests = [GenerationRequest(s, args.samples) for s in states(concurrency, args.prompt_tokens, args.vocab, 1)]

    async def searches() -> list[Any]:
        try:
            return await asyncio.gather(*(generator.generate([r]) for r in requests))
        finally:
            await generator.close()

    sync(device)
    start = time.perf_counter()
    asyncio.run(searches())
    sync(device)
    seconds = time.perf_counter() - start
    note = f"{merger.stats.inner_calls} merged call(s), {inner.stats.chunks} chunk(s)"
    if static:
        note += (
            f"; {inner.stats.graph_steps} of {inner.stats.forward_calls - inner.stats.chunks} steps from CUDA graphs"
        )
        if inner.stats.graph_failures:
            note += " (capture FAILED, see the warning)"
    return seconds, note


def run_naive(model: Any, tokenizer: Any, args: argparse.Namespace, count: int, device: torch.device) -> float:
    """Seconds for `count` requests, one `generate` call each, one after another."""
    total = 0.0
    for state in states(count, args.prompt_tokens, args.vocab, 1):
        encoded = tokenizer(state.pp, return_tensors="pt").to(device)
        sync(device)
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **encoded,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                num_return_sequences=args.samples,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        sync(device)
        total += time.perf_counter() - start
    return total


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU, 8 new tokens, 48-token prompts")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated numbers of concurrent searches")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=400)
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=98304,
        help="cache slots per chunk (memory bound; 32x32 at ~400-token prompts is one chunk, ~52 GiB peak)",
    )
    parser.add_argument(
        "--static-cache", action="store_true", help="also measure hf with a static cache and CUDA-graph decode steps"
    )
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--time-budget-s", type=float, default=240.0, help="cap on the naive rows' total time")
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if args.smoke:
        args.new_tokens, args.prompt_tokens = min(args.new_tokens, 8), 48
        args.time_budget_s = min(args.time_budget_s, 15.0)
        args.levels = [1, 8, 32] if args.concurrency == "1,8,32" else args.levels
    return args


def measure_ours(
    model: Any, tokenizer: Any, args: argparse.Namespace, device: torch.device
) -> dict[tuple[str, int], float]:
    """The `hf` rows (and `hf+static` with `--static-cache`): candidates per second by (path, searches)."""
    results: dict[tuple[str, int], float] = {}
    paths = [("hf", False)] + ([("hf+static", True)] if args.static_cache else [])
    for name, static in paths:
        for level in args.levels:
            reset_peak(device)
            try:
                seconds, note = run_ours(model, tokenizer, args, level, device, static)
            except torch.cuda.OutOfMemoryError as error:
                say(f"{name:<12} {level:>8} {'-':>10} {'-':>8} {'OOM':>8} {peak_gib(device):>8}  {error}".rstrip())
                torch.cuda.empty_cache()
                continue
            candidates = level * args.samples
            rate = candidates / seconds
            results[(name, level)] = rate
            say(f"{name:<12} {level:>8} {candidates:>10} {seconds:>8.2f} {rate:>8.1f} {peak_gib(device):>8}  {note}")
    return results


def measure_naive(
    model: Any, tokenizer: Any, args: argparse.Namespace, device: torch.device
) -> dict[tuple[str, int], float]:
    """The `naive` rows, within `--time-budget-s`: candidates per second by ("naive", searches)."""
    results: dict[tuple[str, int], float] = {}
    naive_started = time.perf_counter()
    per_request: float | None = None
    for level in args.levels:
        count = level
        if per_request is not None:
            left = args.time_budget_s - (time.perf_counter() - naive_started)
            count = max(1, min(level, int(left / per_request)))
        reset_peak(device)
        try:
            seconds = run_naive(model, tokenizer, args, count, device)
        except torch.cuda.OutOfMemoryError as error:
            say(f"{'naive':<12} {level:>8} {'-':>10} {'-':>8} {'OOM':>8} {peak_gib(device):>8}  {error}")
            torch.cuda.empty_cache()
            continue
        per_request = seconds / count
        candidates = count * args.samples
        rate = candidates / seconds
        results[("naive", level)] = rate
        note = "one request at a time" + ("" if count == level else f"; measured {count} of {level} requests")
        say(f"{'naive':<12} {level:>8} {candidates:>10} {seconds:>8.2f} {rate:>8.1f} {peak_gib(device):>8}  {note}")
    return results


def summarize(results: dict[tuple[str, int], float], args: argparse.Namespace, started: float) -> None:
    """The ratios at 8 concurrent searches and the last, machine-readable line."""
    say()
    hf8 = results.get(("hf", 8), math.nan)
    naive8 = results.get(("naive", 8), math.nan)
    if not math.isnan(hf8) and not math.isnan(naive8):
        say(f"# hf / naive at 8 concurrent searches: {hf8 / naive8:.1f}x")
    static8 = results.get(("hf+static", 8), math.nan)
    if not math.isnan(static8) and not math.isnan(naive8):
        say(f"# hf+static / naive at 8 concurrent searches: {static8 / naive8:.1f}x")
    say(f"# total {time.perf_counter() - started:.1f} s")
    line = f"hf_candidates_per_s_8x{args.samples}={hf8:.1f} naive_candidates_per_s_8x{args.samples}={naive8:.1f}"
    if not math.isnan(static8):
        line += f" hf_static_candidates_per_s_8x{args.samples}={static8:.1f}"
    say(line)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    started = time.perf_counter()
    if args.smoke:
        device, dtype = torch.device("cpu"), torch.float32
        args.vocab = 512
        config = tiny_config(args.vocab)
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA GPU: run with --smoke to check the script on a CPU")
        device, dtype = torch.device("cuda"), torch.bfloat16
        args.vocab = 32016
        config = llemma_7b_config(args.vocab)
    import transformers

    torch.manual_seed(0)
    say(f"# device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}")
    say(f"# torch {torch.__version__}, transformers {transformers.__version__}")
    say(
        f"# model: {config.num_hidden_layers} layers, hidden {config.hidden_size}, vocab {config.vocab_size}, "
        f"{dtype}; prompts ~{args.prompt_tokens} tokens, {args.samples} samples x {args.new_tokens} new tokens"
    )
    tokenizer = synthetic_tokenizer(args.vocab)
    model = build_model(config, device, dtype)
    say(f"# model built in {time.perf_counter() - started:.1f} s")

    # Warm-up: kernels, allocator, cuBLAS handles (short on purpose).
    warm = argparse.Namespace(**{**vars(args), "new_tokens": 4, "samples": min(4, args.samples)})
    run_ours(model, tokenizer, warm, 2, device, static=False)
    if not args.skip_naive:
        run_naive(model, tokenizer, warm, 1, device)
    say(f"# warm-up done at {time.perf_counter() - started:.1f} s")
    say()
    say(f"{'path':<12} {'searches':>8} {'candidates':>10} {'seconds':>8} {'cand/s':>8} {'peak GiB':>8}  notes")
    results = measure_ours(model, tokenizer, args, device)
    if not args.skip_naive:
        results.update(measure_naive(model, tokenizer, args, device))
    summarize(results, args, started)


if __name__ == "__main__":
    main()

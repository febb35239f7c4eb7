"""The `hf` backend: any Hugging Face causal LM, with its own batched decode loop.

Why not `model.generate`: with `num_return_sequences` it encodes every prompt once per sample and
keeps one copy of the prompt's KV cache per sample, so 32 searches x 32 samples do not fit on one
GPU; it reports processed (temperature, top-p) scores rather than the model's log-probs; and it
cannot stop on strings cheaply. This loop instead

- encodes each distinct prompt once (left-padded batch, one prefill call),
- keeps ONE copy of each prompt's keys and values and lays the samples' tokens out after it in the
  same cache row: at step t the n samples of a prompt write slots `L + t*n + j`, and a 4-D
  attention mask lets each sample see the prompt and its own earlier tokens only (tree attention).
  Memory per prompt is `L + n*T` tokens instead of `n*(L + T)`, and the prompt's keys are read
  once per step for all its samples;
- samples (temperature, top-p, top-k, where top_k=0 means off), decodes greedily (temperature 0),
  or runs beam search (beams re-parent by gathering mask rows; the cache itself never moves),
  recording the log-softmax of the raw logits of every token, so a completion's log-prob equals
  a teacher-forced forward pass over its tokens;
- stops a sample at EOS or when its text contains one of its request's stop strings (decoding
  only a short window of its last tokens per step), and drops prompts whose samples are all done
  from the batch;
- groups the requests of one call by what a chunk must share (stop strings, max tokens, the
  sampling settings) and splits each group into chunks of at most `max_batch_tokens` cache slots
  (`sum of L + n*T`), so memory is bounded whatever the concurrency.

The per-step host work is kept small: the additive attention mask is one buffer of the chunk's
capacity, updated in place (one diagonal per step), positions advance in place, and the only
host-device sync of a sampling step is reading its new tokens back.

`static_cache=True` (CUDA) keeps every decode-step input at a fixed shape in fixed buffers (the
cache, the mask, the tokens, the positions, the write slots) and captures the model's decode step
once per chunk as a CUDA graph, replayed at each later step: one launch instead of hundreds of
kernel launches, which is what a decode step costs on a host with slow launches. No compiler is
involved, so capturing costs about two eager steps. If capture fails, a warning names the
exception and the chunk (and every later one) runs the same fixed-shape step eagerly.

All model work runs on one dedicated worker thread; `complete` only tokenizes on the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from prover.config import ModelSettings, SettingsError
from prover.models.base import GenerationError, ModelLoadError, cut_at_stop, find_stop
from prover.models.prompts import check_prompt_lengths
from prover.models.text import Completion, FinishReason, TextRequest

logger = logging.getLogger(__name__)

_TOKEN_CACHE_SIZE = 8192
_STOP_RULES_SIZE = 64
_ALIGN = 16  # cache slots are allocated in multiples of this, so mask rows stay aligned for SDPA kernels


@dataclass(frozen=True, slots=True)
class RawSample:
    """One generated sequence: the tokens the model produced and their raw log-probs.

    `token_ids` includes the EOS token or the token that completed a stop string, and
    `token_logprobs` covers exactly `token_ids`; `text` is their decoding (special tokens skipped),
    not yet cut at the stop string.
    """

    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    text: str
    finish_reason: FinishReason

    @property
    def logprob(self) -> float:
        return math.fsum(self.token_logprobs)

    def completion(self, stops: Sequence[str]) -> Completion:
        """This sample as the `TextGenerator` protocol reports it: text cut before the first stop string."""
        return Completion(cut_at_stop(self.text, stops), self.token_logprobs, self.finish_reason)


@dataclass
class HFStats:
    """Counters of the work done; read by tests and benchmarks."""

    complete_calls: int = 0
    """`complete` calls (each may hold requests of many callers)."""
    chunks: int = 0
    """Batched model runs (one prefill plus its decode loop each)."""
    prompts_encoded: int = 0
    """Distinct prompts prefilled: each prompt is encoded once per chunk, never once per sample."""
    prompt_tokens: int = 0
    forward_calls: int = 0
    sequences: int = 0
    compactions: int = 0
    """Times finished prompts were dropped from a running chunk."""
    graph_steps: int = 0
    """Decode steps replayed from a CUDA graph (`static_cache` on CUDA)."""
    graph_failures: int = 0
    """Failed CUDA graph captures (each logged; graphs then stay off for this generator)."""


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


class _TreeCache:
    """A preallocated KV store that the model's attention layers write through `update`.

    It duck-types the part of transformers' `Cache` that attention layers use. Rows are prompts;
    the slot axis holds the prompt followed by the samples' tokens. `rows` restricts writes and
    reads to a slice of the rows (a prefill split in parts).
    """

    def __init__(self, num_layers: int, capacity: int, static: bool) -> None:
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.capacity = capacity
        self.static = static
        self.length = 0
        self.rows: slice = slice(None)
        self.batch_size = 0
        self.write_positions: torch.Tensor | None = None

    def allocate_like(self, layer: int, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        _, heads, _, key_dim = key_states.shape
        shape = (self.batch_size, heads, self.capacity)
        self.keys[layer] = key_states.new_zeros((*shape, key_dim))
        self.values[layer] = value_states.new_zeros((*shape, value_states.shape[-1]))
        if self.static and key_states.is_cuda:
            torch._dynamo.mark_static_address(self.keys[layer])
            torch._dynamo.mark_static_address(self.values[layer])

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer_idx] is None:
            self.allocate_like(layer_idx, key_states, value_states)
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        assert keys is not None and values is not None
        count = key_states.shape[-2]
        if self.static and self.write_positions is not None:
            # Fixed shapes for the compiled step: write by index, return the whole buffer.
            keys.index_copy_(2, self.write_positions, key_states)
            values.index_copy_(2, self.write_positions, value_states)
            return keys, values
        end = self.length + count
        keys[self.rows, :, self.length : end] = key_states
        values[self.rows, :, self.length : end] = value_states
        return keys[self.rows, :, :end], values[self.rows, :, :end]

    def select_rows(self, index: torch.Tensor) -> None:
        for layer, keys in enumerate(self.keys):
            if keys is not None:
                self.keys[layer] = keys.index_select(0, index)
                values = self.values[layer]
                assert values is not None
                self.values[layer] = values.index_select(0, index)
        self.batch_size = int(index.numel())

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length


def _fetch_later(tokens: torch.Tensor, chosen: torch.Tensor) -> Callable[[], tuple[list[list[int]], list[list[float]]]]:
    """Start copying a step's tokens and their log-probs to the host; the returned call waits for them.

    On CUDA the copies go to pinned memory without blocking, so work queued after this call runs
    on before the host waits.
    """
    if tokens.device.type != "cuda":
        return lambda: (tokens.tolist(), chosen.tolist())
    try:
        host_tokens = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
        host_chosen = torch.empty(chosen.shape, dtype=chosen.dtype, pin_memory=True)
    except RuntimeError:  # no pinned memory on this host: read back synchronously
        return lambda: (tokens.tolist(), chosen.tolist())
    host_tokens.copy_(tokens, non_blocking=True)
    host_chosen.copy_(chosen, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record(torch.cuda.current_stream(tokens.device))

    def wait() -> tuple[list[list[int]], list[list[float]]]:
        copied.synchronize()
        return host_tokens.tolist(), host_chosen.tolist()

    return wait


def _graphs_available(device: torch.device) -> bool:
    """Whether decode steps can be captured as CUDA graphs on `device` (a seam for tests)."""
    return device.type == "cuda"


class _StaticStep:
    """The decode step over fixed input buffers: captured as a CUDA graph at its first call and
    replayed afterwards, or called eagerly when graphs are off or capture failed.

    `forward` reads only the buffers it closes over, so a replay sees whatever the caller copied
    into them; the returned logits tensor is overwritten by the next call.
    """

    def __init__(self, forward: Callable[[], torch.Tensor], device: torch.device, capture: bool) -> None:
        self.forward = forward
        self.device = device
        self.capture = capture
        self.graph: Any = None
        self.output: torch.Tensor | None = None
        self.failure: BaseException | None = None

    def __call__(self) -> torch.Tensor:
        if self.graph is not None:
            self.graph.replay()
            assert self.output is not None
            return self.output
        if self.capture:
            self.capture = False
            try:
                self._capture()
            except Exception as error:  # a capture problem must not take generation down
                self.failure = error
                self.graph = self.output = None
                logger.warning(
                    "CUDA graph capture of the decode step failed (%s: %r); running it eagerly",
                    type(error).__name__,
                    error,
                )
            else:
                return self()
        return self.forward()

    def _capture(self) -> None:
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        # Warm-up off the capturing stream, as capture requires: kernels are picked and workspaces
        # allocated. It writes the same keys and values the replay writes, so it changes nothing.
        with torch.cuda.stream(side):
            self.forward()
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA calls of other threads (the event loop's) must not void this capture.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            output = self.forward()
        self.graph, self.output = graph, output


@dataclass(frozen=True, slots=True)
class _Decoding:
    """What the requests of one chunk share (the grouping key of `complete`).

    Settings that do not change the result are normalised away: beam search and greedy decoding
    ignore temperature, top-p, top-k and the seed, so such requests share chunks whatever they say.
    """

    stop: tuple[str, ...]
    max_tokens: int
    beam: bool
    temperature: float
    top_p: float
    top_k: int
    seed: int | None

    @classmethod
    def of(cls, request: TextRequest) -> _Decoding:
        if request.beam_search or request.greedy:
            return cls(request.stop, request.max_tokens, request.beam_search, 0.0, 1.0, 0, None)
        return cls(
            request.stop, request.max_tokens, False, request.temperature, request.top_p, request.top_k, request.seed
        )

    @property
    def greedy(self) -> bool:
        return not self.beam and self.temperature == 0

    def width(self, n: int) -> int:
        """Sequences a request for `n` completions runs: one for greedy decoding (the others are copies)."""
        return 1 if self.greedy else n


@dataclass(frozen=True, slots=True)
class _StopRule:
    """How to tell that a sequence just completed one of `stops` (built once per stop set)."""

    stops: tuple[str, ...]
    window: int
    """Tokens of a sequence's tail to decode: enough to hold the longest stop string."""
    ends: list[bool]
    """For each token id, whether appending it can complete a stop string; empty: check every token."""


@dataclass
class _Row:
    """Host-side bookkeeping of one prompt in a chunk."""

    samples: list[list[int]]
    logprobs: list[list[float]]
    """The raw log-prob of each token of `samples`."""
    sums: list[float]
    """Beam search: each live beam's score as the device summed it (the ranking uses these)."""
    done: list[bool]
    finish: list[FinishReason]
    hypotheses: list[tuple[float, list[int], list[float], FinishReason]]
    """Beam search: finished (mean, tokens, token log-probs, reason), best first."""
    finished: bool = False

    @classmethod
    def empty(cls, n: int) -> _Row:
        return cls(
            samples=[[] for _ in range(n)],
            logprobs=[[] for _ in range(n)],
            sums=[0.0] * n,
            done=[False] * n,
            finish=[FinishReason.LENGTH] * n,
            hypotheses=[],
        )


@dataclass
class _Chunk:
    """One chunk's decode loop: its settings, device tensors of the live rows, and host bookkeeping.

    In a static chunk `mask`, `positions` and `step_ids` are the buffers the captured step reads,
    so they are only ever updated in place (and rows are never dropped).
    """

    decoding: _Decoding
    rule: _StopRule
    sampler: torch.Generator
    n: int
    width: int
    """Prompt slots (prompts are left-padded to this)."""
    cache: _TreeCache
    mask: torch.Tensor
    """mask[r, j, s]: the additive attention bias of sample j of row r for slot s (0 = it sees the slot)."""
    positions: torch.Tensor
    beam_sums: torch.Tensor
    host: list[_Row]
    active: list[int]
    """The host rows of the tensor rows."""
    step: _StaticStep | None = None
    step_ids: torch.Tensor | None = None


_Fetch = Callable[[], tuple[list[list[int]], list[list[float]]]]


class HFGenerator:
    """A `TextGenerator` over a Hugging Face causal LM (see the module docstring for how).

    Build it with `HFGenerator.load(settings)` or from a loaded model and tokenizer. Concurrent
    `complete` calls are each one batched run; wrap it in `MergingGenerator` to merge the calls of
    concurrent callers. `request_cost` is the number of cache slots a request occupies. Requests
    without a seed draw from one generator seeded with `seed`.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        seed: int = 0,
        max_batch_tokens: int = 65536,
        static_cache: bool = False,
        model_name: str = "",
        prefill_tokens: int = 16384,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_tokens = max_batch_tokens
        self.prefill_tokens = prefill_tokens
        self.model_name = model_name or str(getattr(model.config, "_name_or_path", "") or "model")
        self.stats = HFStats()
        self.device = next(model.parameters()).device
        self.static_cache = static_cache
        self.eos_token_id: int | None = tokenizer.eos_token_id
        self.pad_token_id: int = next(
            token for token in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if token is not None
        )
        self.context_length: int | None = getattr(model.config, "max_position_embeddings", None)
        self._stop_rules: dict[tuple[str, ...], _StopRule] = {}
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(seed)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-generate")
        self._token_cache: OrderedDict[str, list[int]] = OrderedDict()
        self._token_lock = threading.Lock()
        parameters = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
        self._keep_kwarg = "logits_to_keep" if "logits_to_keep" in parameters else None
        self._graphs_failed = False  # one failed capture turns graphs off for this generator
        if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
            # Tree attention needs a custom 4-D mask, which flash-attention kernels do not take.
            model.set_attn_implementation("sdpa")
        model.eval()

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(cls, settings: ModelSettings) -> HFGenerator:
        """Load `settings.name` (hub name or local directory); raise `ModelLoadError` naming model and cause.

        A hub name is looked up in the local Hugging Face cache first and downloaded only if it is
        not there and the hub answers, so an offline machine fails at once instead of retrying.
        """
        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        name = settings.name
        local = Path(name).expanduser()
        is_path = name.startswith((".", "/", "~")) or local.exists()
        if is_path and not local.is_dir():
            raise ModelLoadError(name, "no such directory", _DIRECTORY_HINT)
        source = str(local) if is_path else name
        try:
            try:
                tokenizer, model = _from_pretrained(source, dtype, local_files_only=True)
            except OSError as offline_error:
                if is_path:
                    raise ModelLoadError(name, _load_cause(offline_error), _DIRECTORY_HINT) from offline_error
                endpoint = _hub_endpoint()
                if not _reachable(endpoint):
                    raise ModelLoadError(
                        name,
                        f"it is not in the local Hugging Face cache and {endpoint} cannot be reached (no network)",
                        _download_hint(name),
                    ) from offline_error
                logger.info("downloading %s from %s", name, endpoint)
                tokenizer, model = _from_pretrained(source, dtype, local_files_only=False)
            model = model.to(device)  # type: ignore[arg-type]
        except ModelLoadError:
            raise
        except torch.cuda.OutOfMemoryError as error:
            raise ModelLoadError(
                name, f"out of GPU memory while loading: {error}", "Use a larger GPU, dtype=bfloat16, or device=cpu."
            ) from error
        except (OSError, ValueError, RuntimeError) as error:
            hint = _DIRECTORY_HINT if is_path else _download_hint(name)
            raise ModelLoadError(name, _load_cause(error), hint) from error
        return cls(
            model,
            tokenizer,
            seed=settings.seed,
            max_batch_tokens=settings.max_batch_tokens,
            static_cache=settings.static_cache and device.type == "cuda",
            model_name=name,
        )

    # ------------------------------------------------------------- the protocol

    def prompt_ids(self, prompt: str) -> list[int]:
        """The token ids of `prompt` (with the tokenizer's BOS), memoised."""
        with self._token_lock:
            ids = self._token_cache.get(prompt)
            if ids is not None:
                self._token_cache.move_to_end(prompt)
                return ids
        ids = list(self.tokenizer(prompt)["input_ids"])
        with self._token_lock:
            self._token_cache[prompt] = ids
            while len(self._token_cache) > _TOKEN_CACHE_SIZE:
                self._token_cache.popitem(last=False)
        return ids

    def request_cost(self, request: TextRequest) -> int:
        """Cache slots the request occupies in a batch: prompt tokens + sequences x max tokens."""
        sequences = _Decoding.of(request).width(request.n)
        return len(self.prompt_ids(request.prompt)) + sequences * request.max_tokens

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        """Completions per request, in order (see `TextRequest` for how many).

        Raises `PromptTooLong` (with the indices at fault) before any model work if a prompt plus
        its `max_tokens` does not fit the context, and `GenerationError` if the model fails.
        """
        if not requests:
            return []
        self.stats.complete_calls += 1
        ids = [self.prompt_ids(request.prompt) for request in requests]
        budgets = [request.max_tokens for request in requests]
        check_prompt_lengths([len(row) for row in ids], budgets, self.context_length, self.model_name)
        loop = asyncio.get_running_loop()
        try:
            samples = await loop.run_in_executor(self._executor, self._complete_ids, ids, list(requests))
        except torch.cuda.OutOfMemoryError as error:
            raise GenerationError(
                f"model {self.model_name!r} ran out of GPU memory on a batch of {len(requests)} requests; "
                "lower model.max_batch_tokens"
            ) from error
        except RuntimeError as error:
            raise GenerationError(f"model {self.model_name!r} failed: {error}") from error
        return [
            [sample.completion(request.stop) for sample in row] for row, request in zip(samples, requests, strict=True)
        ]

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def generate_raw(self, requests: Sequence[TextRequest]) -> list[list[RawSample]]:
        """Blocking: the raw samples for each request (token ids, text not cut). For tests and benchmarks."""
        return self._complete_ids([self.prompt_ids(request.prompt) for request in requests], list(requests))

    # ----------------------------------------------------------- batching

    def _complete_ids(self, prompts: list[list[int]], requests: list[TextRequest]) -> list[list[RawSample]]:
        # Requests that decode alike run together; two at the same prompt share one encoding and
        # one set of samples (the one asking for fewer gets the first of them).
        groups: dict[_Decoding, dict[tuple[int, ...], int]] = {}
        for ids, request in zip(prompts, requests, strict=True):
            decoding = _Decoding.of(request)
            wanted = groups.setdefault(decoding, {})
            wanted[tuple(ids)] = max(wanted.get(tuple(ids), 0), decoding.width(request.n))
        results: dict[tuple[_Decoding, tuple[int, ...]], list[RawSample]] = {}
        for decoding, distinct in groups.items():
            sampler = self._sampler(decoding)
            for chunk, count in self._plan(distinct, decoding.max_tokens):
                rows = self._run_chunk([list(key) for key in chunk], count, decoding, sampler)
                results.update(((decoding, key), row) for key, row in zip(chunk, rows, strict=True))
        out: list[list[RawSample]] = []
        for ids, request in zip(prompts, requests, strict=True):
            decoding = _Decoding.of(request)
            row = results[decoding, tuple(ids)]
            out.append(row * request.n if decoding.greedy else row[: request.n])
        return out

    def _sampler(self, decoding: _Decoding) -> torch.Generator:
        if decoding.seed is None:
            return self._generator
        sampler = torch.Generator(device=self.device)
        sampler.manual_seed(decoding.seed)
        return sampler

    def _plan(self, distinct: dict[tuple[int, ...], int], new_tokens: int) -> list[tuple[list[tuple[int, ...]], int]]:
        """Chunks of prompts with the same sample count and similar length, within the token budget."""
        chunks: list[tuple[list[tuple[int, ...]], int]] = []
        by_count: dict[int, list[tuple[int, ...]]] = {}
        for key, count in distinct.items():
            by_count.setdefault(count, []).append(key)
        for count, keys in by_count.items():
            current: list[tuple[int, ...]] = []
            for key in sorted(keys, key=len):
                width = max(len(key), max((len(k) for k in current), default=0))
                if current and (len(current) + 1) * (width + count * new_tokens) > self.max_batch_tokens:
                    chunks.append((current, count))
                    current = []
                current.append(key)
            if current:
                chunks.append((current, count))
        return chunks

    # ----------------------------------------------------------- the decode loop

    def _forward(
        self, cache: _TreeCache, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, last_only: bool
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "position_ids": positions,
            self._cache_kwarg: cache,
            "use_cache": True,
        }
        if last_only and self._keep_kwarg is not None:
            kwargs[self._keep_kwarg] = 1
        logits: torch.Tensor = self.model(**kwargs).logits
        return logits[:, -1:, :] if last_only else logits

    def _static_step(
        self, cache: _TreeCache, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor
    ) -> _StaticStep:
        """The decode step of a static chunk, bound to its buffers (the caller updates them in place)."""
        return _StaticStep(
            lambda: self._forward(cache, input_ids, mask, positions, False),
            self.device,
            capture=_graphs_available(self.device) and not self._graphs_failed,
        )

    @torch.inference_mode()
    def _run_chunk(
        self, prompts: list[list[int]], n: int, decoding: _Decoding, sampler: torch.Generator
    ) -> list[list[RawSample]]:
        """Generate `n` samples (or beams) for each prompt; one prefill, then one model call per step."""
        self.stats.chunks += 1
        self.stats.prompts_encoded += len(prompts)
        self.stats.prompt_tokens += sum(len(p) for p in prompts)
        self.stats.sequences += len(prompts) * n
        chunk, logits = self._start_chunk(prompts, n, decoding, sampler)
        steps = decoding.max_tokens
        for index in range(steps):
            tokens, fetch = self._choose(chunk, logits, index)
            sampled_rows = chunk.active
            keep = [i for i, row in enumerate(chunk.active) if not chunk.host[row].finished]
            if index == steps - 1 or not keep:
                if fetch is not None:
                    self._sample_step(chunk, sampled_rows, *fetch())
                break
            tokens = self._compact(chunk, keep, tokens)
            logits = self._decode_step(chunk, tokens, index)
            if fetch is not None:
                self._sample_step(chunk, sampled_rows, *fetch())
        if decoding.beam:
            for row in chunk.active:
                self._close_beams(chunk.host[row], n)
        return [self._finish_row(row, decoding.beam) for row in chunk.host]

    def _prefill(
        self, prompts: list[list[int]], width: int, capacity: int
    ) -> tuple[_TreeCache, torch.Tensor, torch.Tensor]:
        """Encode the left-padded prompts into a new cache: (cache, real-token mask, last logits per row)."""
        device, rows = self.device, len(prompts)
        dtype = next(self.model.parameters()).dtype
        input_ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        real = torch.zeros((rows, width), dtype=torch.bool)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            real[row, width - len(ids) :] = True
        input_ids, real = input_ids.to(device), real.to(device)
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)
        cache = _TreeCache(self.model.config.num_hidden_layers, capacity, static=self.static_cache)
        cache.batch_size = rows
        # Split by rows so activations stay bounded for big chunks.
        causal = torch.tril(torch.ones((width, width), dtype=torch.bool, device=device))
        eye = torch.eye(width, dtype=torch.bool, device=device)
        per_part = max(1, self.prefill_tokens // max(width, 1))
        last_logits = []
        for start in range(0, rows, per_part):
            part = slice(start, min(rows, start + per_part))
            allowed = (causal[None] & real[part, None, :]) | eye[None]  # padding rows attend to themselves
            mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, torch.finfo(dtype).min)
            cache.rows, cache.length = part, 0
            self.stats.forward_calls += 1
            last_logits.append(self._forward(cache, input_ids[part], mask[:, None], positions[part], True)[:, -1])
        cache.rows, cache.length = slice(None), width
        return cache, real, torch.cat(last_logits)

    def _start_chunk(
        self, prompts: list[list[int]], n: int, decoding: _Decoding, sampler: torch.Generator
    ) -> tuple[_Chunk, torch.Tensor]:
        """Prefill the prompts and set up the decode loop's buffers; returns the chunk and the first logits."""
        device, rows = self.device, len(prompts)
        dtype = next(self.model.parameters()).dtype
        width = max(len(p) for p in prompts)
        capacity = _round_up(width + n * decoding.max_tokens, _ALIGN)
        cache, real, logits = self._prefill(prompts, width, capacity)
        # One mask buffer at capacity, updated in place: a step un-masks one diagonal.
        mask = torch.full((rows, n, capacity), torch.finfo(dtype).min, dtype=dtype, device=device)
        mask[:, :, :width].masked_fill_(real[:, None, :], 0.0)
        beam_sums = torch.zeros((rows, n), dtype=torch.float32, device=device)
        if decoding.beam:
            beam_sums[:, 1:] = -math.inf  # all beams start as the same (empty) hypothesis
        chunk = _Chunk(
            decoding=decoding,
            rule=self._stop_rule(decoding.stop),
            sampler=sampler,
            n=n,
            width=width,
            cache=cache,
            mask=mask,
            positions=real.sum(dim=-1)[:, None].repeat(1, n),  # advanced in place after each step
            beam_sums=beam_sums,
            host=[_Row.empty(n) for _ in range(rows)],
            active=list(range(rows)),
        )
        if cache.static:
            chunk.step_ids = torch.full((rows, n), self.pad_token_id, dtype=torch.long, device=device)
            cache.write_positions = torch.arange(width, width + n, device=device)  # advanced in place
            chunk.step = self._static_step(cache, chunk.step_ids, mask[:, None], chunk.positions)
        return chunk, logits[:, None, :].expand(rows, n, -1)

    def _choose(self, chunk: _Chunk, logits: torch.Tensor, index: int) -> tuple[torch.Tensor, _Fetch | None]:
        """This step's tokens, and for sampling a call that reads them (with their log-probs) back later."""
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        if chunk.decoding.beam:
            parents, tokens, chunk.beam_sums = self._beam_step(chunk, log_probs, index)
            chunk.mask.copy_(chunk.mask.gather(1, parents[:, :, None].expand_as(chunk.mask)))
            return tokens, None
        tokens = self._sample(logits, chunk.decoding, chunk.sampler).view(len(chunk.active), chunk.n)
        chosen = log_probs.gather(-1, tokens[:, :, None])[:, :, 0]
        # The host reads this step's tokens only after the next step is launched, so the device
        # computes while the host books. Finishing and dropping rows therefore lag one step, which
        # changes no result: tokens of finished samples are ignored.
        return tokens, _fetch_later(tokens, chosen)

    def _compact(self, chunk: _Chunk, keep: list[int], tokens: torch.Tensor) -> torch.Tensor:
        """Drop finished rows once a quarter of them are done (it copies the cache); returns the kept tokens."""
        active = chunk.active
        if chunk.cache.static or (len(active) - len(keep)) * 4 < len(active):
            return tokens
        kept = torch.tensor(keep, device=self.device)
        chunk.cache.select_rows(kept)
        self.stats.compactions += 1
        chunk.mask, chunk.positions, tokens, chunk.beam_sums = (
            t.index_select(0, kept) for t in (chunk.mask, chunk.positions, tokens, chunk.beam_sums)
        )
        chunk.active = [active[i] for i in keep]
        return tokens

    def _decode_step(self, chunk: _Chunk, tokens: torch.Tensor, index: int) -> torch.Tensor:
        """Feed step `index`'s tokens to the model (eagerly or by the static step); the next logits."""
        cache, n = chunk.cache, chunk.n
        base = chunk.width + index * n
        if index > 0:
            chunk.positions.add_(1)
        chunk.mask[:, :, base : base + n].diagonal(dim1=1, dim2=2).fill_(0.0)
        self.stats.forward_calls += 1
        step = chunk.step
        if step is None:
            logits = self._forward(cache, tokens, chunk.mask[:, None, :, : base + n], chunk.positions, False)
        else:
            assert chunk.step_ids is not None and cache.write_positions is not None
            if index > 0:
                cache.write_positions.add_(n)
            chunk.step_ids.copy_(tokens)
            logits = step()
            if step.graph is not None:
                self.stats.graph_steps += 1
            elif step.failure is not None and not self._graphs_failed:
                self._graphs_failed = True
                self.stats.graph_failures += 1
        cache.length = base + n
        return logits

    # ---------------------------------------------------------------- sampling

    @staticmethod
    def _sample(logits: torch.Tensor, decoding: _Decoding, sampler: torch.Generator) -> torch.Tensor:
        scores = logits.reshape(-1, logits.shape[-1]).float()
        if decoding.temperature == 0:
            return scores.argmax(dim=-1)
        scores = scores / decoding.temperature
        vocab = scores.shape[-1]
        if 0 < decoding.top_k < vocab:
            kth = torch.topk(scores, decoding.top_k, dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, -math.inf)
        if decoding.top_p < 1.0:
            ordered, order = torch.sort(scores, dim=-1, descending=True)
            probabilities = torch.softmax(ordered, dim=-1)
            # Drop a token when the tokens before it already reach top_p (the first one always stays).
            drop = probabilities.cumsum(-1) - probabilities >= decoding.top_p
            ordered = ordered.masked_fill(drop, -math.inf)
            scores = torch.empty_like(scores).scatter_(-1, order, ordered)
        probabilities = torch.softmax(scores, dim=-1)
        return torch.multinomial(probabilities, 1, generator=sampler)[:, 0]

    def _decode_batch(self, sequences: list[list[int]]) -> list[str]:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # the Rust tokenizer decodes a batch without a Python loop
            return list(backend.decode_batch(sequences, skip_special_tokens=True))
        return list(
            self.tokenizer.batch_decode(sequences, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )

    def _stop_rule(self, stops: tuple[str, ...]) -> _StopRule:
        """The stop rule for `stops`, built once per stop set (it decodes the whole vocabulary)."""
        rule = self._stop_rules.get(stops)
        if rule is None:
            window = max((len(stop.encode()) for stop in stops), default=0) + 2
            rule = _StopRule(stops, window, self._stop_end_table(stops))
            if len(self._stop_rules) >= _STOP_RULES_SIZE:
                self._stop_rules.clear()
            self._stop_rules[stops] = rule
        return rule

    def _stop_end_table(self, stops: tuple[str, ...]) -> list[bool]:
        """For each token id: can appending it complete one of `stops`?

        True when the token's text holds the last character of a stop string, is empty, or is a
        partial UTF-8 sequence. Stops ending in a space disable the table (a SentencePiece word
        token carries its leading space only in context).
        """
        if not stops or any(stop[-1] in " \t" for stop in stops):
            return []
        last = {stop[-1] for stop in stops}
        pieces = self._decode_batch([[token] for token in range(len(self.tokenizer))])
        return [not piece or "\ufffd" in piece or any(ch in piece for ch in last) for piece in pieces]

    def _stopped(self, sequences: list[list[int]], rule: _StopRule) -> list[bool]:
        """Whether each token sequence's last token completed a stop string (decodes a short tail only)."""
        stopped = [False] * len(sequences)
        if not rule.stops or not sequences:
            return stopped
        table, size = rule.ends, len(rule.ends)
        todo = [i for i, seq in enumerate(sequences) if not table or seq[-1] >= size or table[seq[-1]]]
        if todo:
            texts = self._decode_batch([sequences[i][-rule.window :] for i in todo])
            for i, text in zip(todo, texts, strict=True):
                stopped[i] = find_stop(text, rule.stops) is not None
        return stopped

    def _sample_step(
        self, chunk: _Chunk, active: list[int], tokens: list[list[int]], chosen: list[list[float]]
    ) -> None:
        pending: list[tuple[_Row, int]] = []
        for tensor_row, row_index in enumerate(active):
            row = chunk.host[row_index]
            if row.finished:
                continue
            for j in range(len(row.samples)):
                if row.done[j]:
                    continue
                token = tokens[tensor_row][j]
                row.samples[j].append(token)
                row.logprobs[j].append(chosen[tensor_row][j])
                if token == self.eos_token_id:
                    row.done[j], row.finish[j] = True, FinishReason.EOS
                else:
                    pending.append((row, j))
        sequences = [row.samples[j] for row, j in pending]
        for (row, j), stopped in zip(pending, self._stopped(sequences, chunk.rule), strict=True):
            if stopped:
                row.done[j], row.finish[j] = True, FinishReason.STOP
        for row_index in active:
            row = chunk.host[row_index]
            row.finished = all(row.done)

    def _beam_step(
        self, chunk: _Chunk, log_probs: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One beam-search step: pick each row's next n live beams; finished ones become hypotheses."""
        rows, n, vocab = log_probs.shape
        scores = (chunk.beam_sums[:, :, None] + log_probs).view(rows, n * vocab)
        width = min(2 * n, n * vocab)
        top_scores, top_index = torch.topk(scores, width, dim=-1)
        own = log_probs.reshape(rows, n * vocab).gather(1, top_index).tolist()
        parents, tokens = (top_index // vocab).tolist(), (top_index % vocab).tolist()
        values = top_scores.tolist()
        # Per live row, its candidates best first: (parent, token, score, the token's own log-prob).
        ranked = [
            []
            if chunk.host[row].finished
            else [
                (parents[t][k], tokens[t][k], values[t][k], own[t][k]) for k in range(width) if values[t][k] > -math.inf
            ]
            for t, row in enumerate(chunk.active)
        ]
        extended = [
            chunk.host[row].samples[parent] + [token]
            for t, row in enumerate(chunk.active)
            for parent, token, _, _ in ranked[t]
        ]
        stopped = iter(self._stopped(extended, chunk.rule))
        new_parents = [[0] * n for _ in range(rows)]
        new_tokens = [[self.pad_token_id] * n for _ in range(rows)]
        new_sums = [[-math.inf] * n for _ in range(rows)]
        for t, row_index in enumerate(chunk.active):
            row = chunk.host[row_index]
            if row.finished:
                continue
            for j, (parent, token, value) in enumerate(self._advance_beams(row, n, ranked[t], stopped, step)):
                new_parents[t][j], new_tokens[t][j], new_sums[t][j] = parent, token, value
        device = log_probs.device
        return (
            torch.tensor(new_parents, device=device),
            torch.tensor(new_tokens, device=device),
            torch.tensor(new_sums, device=device, dtype=torch.float32),
        )

    def _advance_beams(
        self,
        row: _Row,
        n: int,
        ranked: list[tuple[int, int, float, float]],
        stopped: Iterator[bool],
        step: int,
    ) -> list[tuple[int, int, float]]:
        """Move one row's beams to its best candidates; returns the new live beams (parent, token, score)."""
        live: list[tuple[int, int, float, list[int], list[float]]] = []
        for rank, (parent, token, value, own) in enumerate(ranked):
            sequence = row.samples[parent] + [token]
            logprobs = row.logprobs[parent] + [own]
            is_stop = next(stopped)
            if token == self.eos_token_id or is_stop:
                if rank < n:  # as in standard beam search: only hypotheses ranked within the beam count
                    reason = FinishReason.EOS if token == self.eos_token_id else FinishReason.STOP
                    self._add_hypothesis(row, n, sequence, logprobs, value, reason)
            elif len(live) < n:
                live.append((parent, token, value, sequence, logprobs))
        missing = n - len(live)
        row.samples = [sequence for *_, sequence, _ in live] + [[] for _ in range(missing)]
        row.logprobs = [logprobs for *_, logprobs in live] + [[] for _ in range(missing)]
        row.sums = [value for _, _, value, _, _ in live] + [-math.inf] * missing
        best_live = max((value / (step + 1) for _, _, value, _, _ in live), default=-math.inf)
        worst_kept = row.hypotheses[-1][0] if len(row.hypotheses) >= n else -math.inf
        if not live or (len(row.hypotheses) >= n and best_live <= worst_kept):
            row.finished = True
        return [(parent, token, value) for parent, token, value, _, _ in live]

    @staticmethod
    def _add_hypothesis(
        row: _Row, n: int, tokens: list[int], logprobs: list[float], total: float, reason: FinishReason
    ) -> None:
        row.hypotheses.append((total / max(len(tokens), 1), tokens, logprobs, reason))
        row.hypotheses.sort(key=lambda h: -h[0])
        del row.hypotheses[n:]

    def _close_beams(self, row: _Row, n: int) -> None:
        if row.finished:
            return
        for tokens, logprobs, total in zip(row.samples, row.logprobs, row.sums, strict=True):
            if tokens and total > -math.inf:
                self._add_hypothesis(row, n, tokens, logprobs, total, FinishReason.LENGTH)
        row.finished = True

    def _finish_row(self, row: _Row, beam: bool) -> list[RawSample]:
        if beam:
            entries = [(tokens, logprobs, reason) for _, tokens, logprobs, reason in row.hypotheses]
        else:
            entries = list(zip(row.samples, row.logprobs, row.finish, strict=True))
        texts = self._decode_batch([tokens for tokens, _, _ in entries])
        return [
            RawSample(tuple(tokens), tuple(logprobs), text, reason)
            for (tokens, logprobs, reason), text in zip(entries, texts, strict=True)
        ]


# ---------------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    """`auto` is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto` is bfloat16 on a GPU and float32 on the CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[name.lower()]
    except KeyError:
        raise SettingsError(f"model.dtype: unknown dtype {name!r} (one of auto, {', '.join(_DTYPES)})") from None


def _from_pretrained(source: str, dtype: torch.dtype, *, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=dtype, attn_implementation="sdpa", local_files_only=local_files_only
    )
    return tokenizer, model


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT)
    except (ImportError, AttributeError):
        return "https://huggingface.co"


def _reachable(url: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to `url`'s host opens within `timeout_s` (no request is sent)."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _load_cause(error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return f"{type(error).__name__}: {first}"


_DIRECTORY_HINT = (
    "Give model.name as a directory holding config.json, the weights (*.safetensors) and the tokenizer files "
    "(as written by save_pretrained), or as a Hugging Face model name."
)


def _download_hint(name: str) -> str:
    return (
        f"Download it where there is network (`huggingface-cli download {name}`) and reuse that Hugging Face "
        "cache, or give model.name as a local directory holding the weights."
    )

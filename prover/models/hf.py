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
- samples (temperature, top-p, top-k, where top_k=0 means off) or runs beam search (temperature 0:
  beams re-parent by gathering mask rows; the cache itself never moves), summing the log-softmax of
  the raw logits, so a candidate's log-prob equals a teacher-forced forward pass over its tokens;
- stops a sample at EOS or when its text contains a stop string (decoding only a short window of
  its last tokens per step), and drops prompts whose samples are all done from the batch;
- splits the work into chunks of at most `max_batch_tokens` cache slots (`sum of L + n*T`), so
  memory is bounded whatever the concurrency.

The per-step host work is kept small: the additive attention mask is one buffer of the chunk's
capacity, updated in place (one diagonal per step), positions advance in place, and the only
host-device sync of a sampling step is reading its new tokens back.

`static_cache=True` (CUDA) keeps every decode-step input at a fixed shape in fixed buffers (the
cache, the mask, the tokens, the positions, the write slots) and captures the model's decode step
once per chunk as a CUDA graph, replayed at each later step: one launch instead of hundreds of
kernel launches, which is what a decode step costs on a host with slow launches. No compiler is
involved, so capturing costs about two eager steps. If capture fails, a warning names the
exception and the chunk (and every later one) runs the same fixed-shape step eagerly.

All model work runs on one dedicated worker thread; `generate` only tokenizes on the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from prover.config import ModelSettings, SettingsError
from prover.models.base import (
    GenerationError,
    ModelLoadError,
    RawCompletion,
    SamplingConfig,
    finalize_candidates,
    find_stop,
)
from prover.models.prompts import PromptFormat, check_prompt_lengths
from search.types import GenerationRequest, TacticCandidate

logger = logging.getLogger(__name__)

_TOKEN_CACHE_SIZE = 8192
_ALIGN = 16  # cache slots are allocated in multiples of this, so mask rows stay aligned for SDPA kernels


@dataclass(frozen=True, slots=True)
class RawSample:
    """One generated sequence: the tokens the model produced and the sum of their raw log-probs.

    `token_ids` includes the EOS token or the token that completed a stop string, and `logprob`
    covers exactly `token_ids`; `text` is their decoding (special tokens skipped), not yet cut.
    `finish_reason` is `eos`, `stop` or `length`.
    """

    token_ids: tuple[int, ...]
    logprob: float
    text: str
    finish_reason: str


@dataclass
class HFStats:
    """Counters of the work done; read by tests and benchmarks."""

    generate_calls: int = 0
    """`generate` calls (each may hold requests of many searches)."""
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


@dataclass
class _Row:
    """Host-side bookkeeping of one prompt in a chunk."""

    prompt: int
    samples: list[list[int]]
    sums: list[float]
    done: list[bool]
    finish: list[str]
    hypotheses: list[tuple[float, list[int], float, str]]
    """Beam search: finished (mean, tokens, sum, reason), best first."""
    finished: bool = False


class HFGenerator:
    """A `TacticGenerator` over a Hugging Face causal LM (see the module docstring for how).

    Build it with `HFGenerator.load(settings, prompt_format)` or from a loaded model and tokenizer.
    Concurrent `generate` calls are each one batched run; wrap it in `MergingGenerator` to merge the
    calls of concurrent searches. `request_cost` is the number of cache slots a request occupies.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        prompt_format: PromptFormat,
        sampling: SamplingConfig,
        max_batch_tokens: int = 65536,
        static_cache: bool = False,
        model_name: str = "",
        prefill_tokens: int = 16384,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.sampling = sampling
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
        self._window = max((len(stop.encode()) for stop in prompt_format.stops), default=0) + 2
        self._stop_ends = self._stop_end_table()
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(sampling.seed)
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
    def load(cls, settings: ModelSettings, prompt_format: PromptFormat) -> HFGenerator:
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
            prompt_format=prompt_format,
            sampling=SamplingConfig.from_settings(settings),
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

    def request_cost(self, request: GenerationRequest) -> int:
        """Cache slots the request occupies in a batch: prompt tokens + samples x max new tokens."""
        prompt = self.prompt_format.render(request)
        return len(self.prompt_ids(prompt)) + request.num_samples * self.sampling.max_new_tokens

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        """Candidates per request, unique by text, best mean log-prob first.

        Raises `PromptTooLong` (with the indices at fault) before any model work if a prompt does
        not fit the context, and `GenerationError` if the model fails.
        """
        if not requests:
            return []
        self.stats.generate_calls += 1
        prompts = [self.prompt_format.render(request) for request in requests]
        ids = [self.prompt_ids(prompt) for prompt in prompts]
        check_prompt_lengths(
            [len(row) for row in ids], self.sampling.max_new_tokens, self.context_length, self.model_name
        )
        counts = [request.num_samples for request in requests]
        loop = asyncio.get_running_loop()
        try:
            samples = await loop.run_in_executor(self._executor, self._generate_ids, ids, counts)
        except torch.cuda.OutOfMemoryError as error:
            raise GenerationError(
                f"model {self.model_name!r} ran out of GPU memory on a batch of {len(requests)} requests; "
                "lower model.max_batch_tokens"
            ) from error
        except RuntimeError as error:
            raise GenerationError(f"model {self.model_name!r} failed: {error}") from error
        return [
            finalize_candidates(
                (RawCompletion(s.text, s.logprob, len(s.token_ids)) for s in row),
                self.prompt_format.extract,
                limit=count,
            )
            for row, count in zip(samples, counts, strict=True)
        ]

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def generate_raw(self, prompts: Sequence[str], num_samples: Sequence[int]) -> list[list[RawSample]]:
        """Blocking: the raw samples for each prompt (no cutting, no de-duplication). For tests and benchmarks."""
        return self._generate_ids([self.prompt_ids(prompt) for prompt in prompts], list(num_samples))

    # ----------------------------------------------------------- batching

    def _generate_ids(self, prompts: list[list[int]], counts: list[int]) -> list[list[RawSample]]:
        # Two searches at the same state share one encoding and one set of samples.
        distinct: dict[tuple[int, ...], int] = {}
        for ids, count in zip(prompts, counts, strict=True):
            key = tuple(ids)
            distinct[key] = max(distinct.get(key, 0), count)
        results: dict[tuple[int, ...], list[RawSample]] = {}
        for chunk, count in self._plan(distinct):
            for key, samples in zip(chunk, self._run_chunk([list(k) for k in chunk], count), strict=True):
                results[key] = samples
        return [results[tuple(ids)] for ids in prompts]

    def _plan(self, distinct: dict[tuple[int, ...], int]) -> list[tuple[list[tuple[int, ...]], int]]:
        """Chunks of prompts with the same sample count and similar length, within the token budget."""
        new_tokens = self.sampling.max_new_tokens
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
    def _run_chunk(self, prompts: list[list[int]], n: int) -> list[list[RawSample]]:
        """Generate `n` samples (or beams) for each prompt; one prefill, then one call per step."""
        device = self.device
        dtype = next(self.model.parameters()).dtype
        beam = self.sampling.beam_search
        steps = self.sampling.max_new_tokens
        rows_total = len(prompts)
        width = max(len(p) for p in prompts)
        capacity = _round_up(width + n * steps, _ALIGN)
        self.stats.chunks += 1
        self.stats.prompts_encoded += rows_total
        self.stats.prompt_tokens += sum(len(p) for p in prompts)
        self.stats.sequences += rows_total * n
        minimum = torch.finfo(dtype).min

        input_ids = torch.full((rows_total, width), self.pad_token_id, dtype=torch.long)
        real = torch.zeros((rows_total, width), dtype=torch.bool)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            real[row, width - len(ids) :] = True
        input_ids, real = input_ids.to(device), real.to(device)
        lengths = real.sum(dim=-1)
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)

        cache = _TreeCache(self.model.config.num_hidden_layers, capacity, static=self.static_cache)
        cache.batch_size = rows_total
        # Prefill, split by rows so activations stay bounded for big chunks.
        causal = torch.tril(torch.ones((width, width), dtype=torch.bool, device=device))
        eye = torch.eye(width, dtype=torch.bool, device=device)
        per_part = max(1, self.prefill_tokens // max(width, 1))
        last_logits = []
        for start in range(0, rows_total, per_part):
            part = slice(start, min(rows_total, start + per_part))
            allowed = (causal[None] & real[part, None, :]) | eye[None]  # padding rows attend to themselves
            mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, minimum)
            cache.rows, cache.length = part, 0
            self.stats.forward_calls += 1
            last_logits.append(self._forward(cache, input_ids[part], mask[:, None], positions[part], True)[:, -1])
        cache.rows, cache.length = slice(None), width
        logits = torch.cat(last_logits)[:, None, :].expand(rows_total, n, -1)

        # mask[r, j, s]: the additive attention bias of sample j of row r for slot s (0 = it sees
        # the slot). One buffer at capacity, updated in place: a step un-masks one diagonal.
        mask = torch.full((rows_total, n, capacity), minimum, dtype=dtype, device=device)
        mask[:, :, :width].masked_fill_(real[:, None, :], 0.0)
        beam_sums = torch.zeros((rows_total, n), dtype=torch.float32, device=device)
        if beam:
            beam_sums[:, 1:] = -math.inf  # all beams start as the same (empty) hypothesis
        host = [
            _Row(
                prompt=r,
                samples=[[] for _ in range(n)],
                sums=[0.0] * n,
                done=[False] * n,
                finish=["length"] * n,
                hypotheses=[],
            )
            for r in range(rows_total)
        ]
        active = list(range(rows_total))  # host rows of the tensor rows
        step_positions = lengths[:, None].repeat(1, n)  # advanced in place after each step
        step: _StaticStep | None = None
        if cache.static:
            step_ids = torch.full((rows_total, n), self.pad_token_id, dtype=torch.long, device=device)
            cache.write_positions = torch.arange(width, width + n, device=device)  # advanced in place
            step = self._static_step(cache, step_ids, mask[:, None], step_positions)

        for index in range(steps):
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            fetch: Callable[[], tuple[list[list[int]], list[list[float]]]] | None = None
            sampled_rows = active
            if beam:
                parents, tokens, beam_sums = self._beam_step(host, active, log_probs, beam_sums, n, index)
                mask.copy_(mask.gather(1, parents[:, :, None].expand_as(mask)))
            else:
                tokens = self._sample(logits).view(len(active), n)
                chosen = log_probs.gather(-1, tokens[:, :, None])[:, :, 0]
                # The host reads this step's tokens only after the next step is launched, so the
                # device computes while the host books. Finishing and dropping rows therefore lag
                # one step, which changes no result: tokens of finished samples are ignored.
                fetch = _fetch_later(tokens, chosen)
            keep = [i for i, row in enumerate(active) if not host[row].finished]
            if index == steps - 1 or not keep:
                if fetch is not None:
                    self._sample_step(host, sampled_rows, *fetch(), index)
                break
            # Dropping finished rows copies the cache, so wait until a quarter of the rows are done.
            if (len(active) - len(keep)) * 4 >= len(active) and not cache.static:
                kept = torch.tensor(keep, device=device)
                cache.select_rows(kept)
                self.stats.compactions += 1
                mask, step_positions, tokens, beam_sums = (
                    t.index_select(0, kept) for t in (mask, step_positions, tokens, beam_sums)
                )
                active = [active[i] for i in keep]
            base = width + index * n
            if index > 0:
                step_positions.add_(1)
            mask[:, :, base : base + n].diagonal(dim1=1, dim2=2).fill_(0.0)
            self.stats.forward_calls += 1
            if step is not None:
                if index > 0:
                    cache.write_positions.add_(n)  # type: ignore[union-attr]
                step_ids.copy_(tokens)
                logits = step()
                if step.graph is not None:
                    self.stats.graph_steps += 1
                elif step.failure is not None and not self._graphs_failed:
                    self._graphs_failed = True
                    self.stats.graph_failures += 1
            else:
                logits = self._forward(cache, tokens, mask[:, None, :, : base + n], step_positions, False)
            cache.length = base + n
            if fetch is not None:
                self._sample_step(host, sampled_rows, *fetch(), index)

        if beam:
            for row in active:
                self._close_beams(host[row], n)
        return [self._finish_row(host[r], n, beam) for r in range(rows_total)]

    # ---------------------------------------------------------------- sampling

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        scores = logits.reshape(-1, logits.shape[-1]).float() / self.sampling.temperature
        vocab = scores.shape[-1]
        if 0 < self.sampling.top_k < vocab:
            kth = torch.topk(scores, self.sampling.top_k, dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, -math.inf)
        if self.sampling.top_p < 1.0:
            ordered, order = torch.sort(scores, dim=-1, descending=True)
            probabilities = torch.softmax(ordered, dim=-1)
            # Drop a token when the tokens before it already reach top_p (the first one always stays).
            drop = probabilities.cumsum(-1) - probabilities >= self.sampling.top_p
            ordered = ordered.masked_fill(drop, -math.inf)
            scores = torch.empty_like(scores).scatter_(-1, order, ordered)
        probabilities = torch.softmax(scores, dim=-1)
        return torch.multinomial(probabilities, 1, generator=self._generator)[:, 0]

    def _decode_batch(self, sequences: list[list[int]]) -> list[str]:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # the Rust tokenizer decodes a batch without a Python loop
            return list(backend.decode_batch(sequences, skip_special_tokens=True))
        return list(
            self.tokenizer.batch_decode(sequences, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )

    def _stop_end_table(self) -> list[bool]:
        """For each token id: can appending it complete a stop string? (Decided once per tokenizer.)

        True when the token's text holds the last character of a stop string, is empty, or is a
        partial UTF-8 sequence. Stops ending in a space disable the table (a SentencePiece word
        token carries its leading space only in context).
        """
        stops = self.prompt_format.stops
        if not stops or any(stop[-1] in " \t" for stop in stops):
            return []
        last = {stop[-1] for stop in stops}
        pieces = self._decode_batch([[token] for token in range(len(self.tokenizer))])
        return [not piece or "\ufffd" in piece or any(ch in piece for ch in last) for piece in pieces]

    def _stopped(self, sequences: list[list[int]]) -> list[bool]:
        """Whether each token sequence's last token completed a stop string (decodes a short tail only)."""
        stopped = [False] * len(sequences)
        if not self.prompt_format.stops or not sequences:
            return stopped
        table, size = self._stop_ends, len(self._stop_ends)
        todo = [i for i, seq in enumerate(sequences) if not table or seq[-1] >= size or table[seq[-1]]]
        if todo:
            texts = self._decode_batch([sequences[i][-self._window :] for i in todo])
            for i, text in zip(todo, texts, strict=True):
                stopped[i] = find_stop(text, self.prompt_format.stops) is not None
        return stopped

    def _sample_step(
        self, host: list[_Row], active: list[int], tokens: list[list[int]], chosen: list[list[float]], step: int
    ) -> None:
        pending: list[tuple[_Row, int]] = []
        for tensor_row, row_index in enumerate(active):
            row = host[row_index]
            if row.finished:
                continue
            for j in range(len(row.samples)):
                if row.done[j]:
                    continue
                token = tokens[tensor_row][j]
                row.samples[j].append(token)
                row.sums[j] += chosen[tensor_row][j]
                if token == self.eos_token_id:
                    row.done[j], row.finish[j] = True, "eos"
                else:
                    pending.append((row, j))
        for (row, j), stopped in zip(pending, self._stopped([row.samples[j] for row, j in pending]), strict=True):
            if stopped:
                row.done[j], row.finish[j] = True, "stop"
        for row_index in active:
            row = host[row_index]
            row.finished = all(row.done)

    def _beam_step(
        self, host: list[_Row], active: list[int], log_probs: torch.Tensor, beam_sums: torch.Tensor, n: int, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One beam-search step: pick each row's next n live beams; finished ones become hypotheses."""
        rows, _, vocab = log_probs.shape
        scores = (beam_sums[:, :, None] + log_probs).view(rows, n * vocab)
        width = min(2 * n, n * vocab)
        top_scores, top_index = torch.topk(scores, width, dim=-1)
        top_parent, top_token = (top_index // vocab).tolist(), (top_index % vocab).tolist()
        top_values = top_scores.tolist()
        candidates: list[list[int]] = []
        for tensor_row, row_index in enumerate(active):
            row = host[row_index]
            for rank in range(width):
                if row.finished or top_values[tensor_row][rank] == -math.inf:
                    continue
                candidates.append(row.samples[top_parent[tensor_row][rank]] + [top_token[tensor_row][rank]])
        stopped = iter(self._stopped(candidates))
        new_parents = [[0] * n for _ in range(rows)]
        new_tokens = [[self.pad_token_id] * n for _ in range(rows)]
        new_sums = [[-math.inf] * n for _ in range(rows)]
        for tensor_row, row_index in enumerate(active):
            row = host[row_index]
            if row.finished:
                continue
            live: list[tuple[int, int, float, list[int]]] = []
            for rank in range(width):
                value = top_values[tensor_row][rank]
                if value == -math.inf:
                    continue
                parent, token = top_parent[tensor_row][rank], top_token[tensor_row][rank]
                sequence = row.samples[parent] + [token]
                is_stop = next(stopped)
                if token == self.eos_token_id or is_stop:
                    if rank < n:  # as in standard beam search: only hypotheses ranked within the beam count
                        self._add_hypothesis(row, n, sequence, value, "eos" if token == self.eos_token_id else "stop")
                elif len(live) < n:
                    live.append((parent, token, value, sequence))
            for j, (parent, token, value, _) in enumerate(live):
                new_parents[tensor_row][j], new_tokens[tensor_row][j], new_sums[tensor_row][j] = parent, token, value
            row.samples = [sequence for *_, sequence in live] + [[] for _ in range(n - len(live))]
            row.sums = [value for _, _, value, _ in live] + [-math.inf] * (n - len(live))
            best_live = max((value / (step + 1) for _, _, value, _ in live), default=-math.inf)
            worst_kept = row.hypotheses[-1][0] if len(row.hypotheses) >= n else -math.inf
            if not live or (len(row.hypotheses) >= n and best_live <= worst_kept):
                row.finished = True
        device = log_probs.device
        return (
            torch.tensor(new_parents, device=device),
            torch.tensor(new_tokens, device=device),
            torch.tensor(new_sums, device=device, dtype=torch.float32),
        )

    @staticmethod
    def _add_hypothesis(row: _Row, n: int, tokens: list[int], total: float, reason: str) -> None:
        row.hypotheses.append((total / max(len(tokens), 1), tokens, total, reason))
        row.hypotheses.sort(key=lambda h: -h[0])
        del row.hypotheses[n:]

    def _close_beams(self, row: _Row, n: int) -> None:
        if row.finished:
            return
        for tokens, total in zip(row.samples, row.sums, strict=True):
            if tokens and total > -math.inf:
                self._add_hypothesis(row, n, tokens, total, "length")
        row.finished = True

    def _finish_row(self, row: _Row, n: int, beam: bool) -> list[RawSample]:
        if beam:
            entries = [(tokens, total, reason) for _, tokens, total, reason in row.hypotheses]
        else:
            entries = list(zip(row.samples, row.sums, row.finish, strict=True))
        texts = self._decode_batch([tokens for tokens, _, _ in entries])
        return [
            RawSample(tuple(tokens), float(total), text, reason)
            for (tokens, total, reason), text in zip(entries, texts, strict=True)
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

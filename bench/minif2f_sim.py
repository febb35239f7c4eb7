"""Simulated miniF2F-test: the project's concurrent runner against the sequential Llemma reference loop.

Both run over the same simulated world, seeds and budgets, in one process:

- 244 theorems (the test split's names when ../shared/data/minif2f_lean4.jsonl is present). Each
  theorem's search space is a lazily generated tree: every state gets 32 distinct candidates, best
  first; about a quarter lead to new states, the rest are Lean errors. A third of the theorems have a
  hidden proof path of 1-3 tactics (mostly 1, as in the Llemma logs); the others cannot be proved.
- Tactic latency is log-normal with median 0.1 s and about 3 % above 2 s, cut at the 5 s tactic
  timeout (then the tactic is a timeout error). Starting a theorem costs 0.5 s; re-checking a found
  proof (our runner only) costs 0.3 s plus its tactics.
- Lean runs on a pool of 8 workers modelled on the REPL pool: a theorem's states live in the worker
  that started it, so its tactics run there one after another; several theorems may share a worker.
  (The REPL pool also lends a search idle workers for its concurrent tactics, `spread_tactics`; with
  8 searches on 8 workers none is idle, so the default `pinned` model leaves that out.)
- The model is one GPU; calls run one at a time. Each side is costed with the generator it uses
  (the tables at the top of this file; edit them when new measurements come in):
  - the reference loop calls plain Hugging Face `generate`, one prompt per call: a call for b states
    x 32 samples takes b*32 / throughput(b), throughput interpolated from llemma-eval.md (H200:
    19.4 candidates/s for one state, 37.8 for 4, 41.2 for 8), so 1.65 s for its 1 x 32 call;
  - our runner reaches the model through `MergingGenerator` (at most 8 states per call). With
    `--our-generator hf-measured` (the default) a merged call over b states costs the reference's
    1 x 32 latency times ratio(b) = hf(b) / naive(1), from one run of bench/generation_gpu.py on an
    H200 (hf 5.39 / 5.07 / 13.98 s per call for 1 / 8 / 32 states, plain `generate` 5.04 s for one
    request; linear in between, growing linearly beyond 32): 1.76 s for 1 state, 1.66 s for 8.
    With `--our-generator generate` it pays what plain `generate` pays for b states (6.21 s for 8);
    `both` prints rows for each, and every row names its model.

The reference loop follows llemma-eval.md: one prompt per generate call, candidates run one after
another in one session, a state marked visited when popped, errors not cached, the first closing
tactic ends the search, the wall clock checked before each pop. Time is simulated: an event loop
whose clock jumps to the next timer, so 40 simulated hours take a minute or two of CPU; `--scale S`
runs in real time instead, every latency divided by S.

Two regimes: an expansion budget only (100 expansions, no clock; both must prove the same theorems)
and the Llemma budget (100 expansions and 600 s per theorem). The last line is
`speedup=<x> proved_ours=<a> proved_reference=<b>`: the speedup in total wall time under the
expansion budget, and the theorems each proved under the clock budget.

    .venv/bin/python bench/minif2f_sim.py [--concurrency 8] [--workers 8] [--seed 0] [--theorems 244]
                                          [--pool pinned|spread] [--scale S]
                                          [--our-generator hf-measured|generate|both]

Figures (simulated hours; about 100 s of CPU per run, 2 cores). Reference rows: plain `generate`.
Ours: 8 searches on 8 pinned workers, the hf backend as shipped (CUDA-graph decode, measured on an H200).

    seed  expansion budget: wall, ref vs ours  speedup  proved   clock budget: proved ref vs ours
    0     45.45 h vs 5.22 h                    8.70     76 = 76  75 vs 76
    1     44.57 h vs 5.19 h                    8.59     83 = 83  81 vs 82
    2     43.67 h vs 4.98 h                    8.78     87 = 87  85 vs 86

Where the gain under the clock comes from, and why it is small:
- The ceiling is low. With 100 expansions the clock costs the reference only 1, 2 and 2 theorems
  (seeds 0, 1, 2: 76 -> 75, 83 -> 81, 87 -> 85); the other clock time-outs are theorems without a
  proof. "More than the reference" can mean at most +1 / +2 / +2.
- A search is Lean-bound: its 32 tactics run one after another on its home worker (about 11 s an
  expansion), the model call is the rest. Our hf call over a merged batch costs 0.2-0.3x the
  reference's one-request `generate` call, so each search gets ~11 % more expansions in 600 s
  (seed 0: 32.7 vs 29.4 per theorem), enough for one more theorem on every seed.
- With the earlier eager (host-bound) hf measurements a merged call cost about what the reference's
  call costs, and the clock budget tied or lost 2 (seed 2: 85 vs 83): the gain is the model's speed.
- Going further needs a search's tactics on several Lean processes at once (`--pool spread`, which
  the REPL pool now does with idle workers) with fewer searches than workers: spread with 4
  searches reached the ceiling (87 vs 85, eager figures) at a 4.9x speedup; with 8 searches every
  worker is already busy and spreading does nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import itertools
import math
import random
import selectors
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lean_env.lean_syntax import LEAN, LeanSyntax
from lean_env.types import (
    CheckResult,
    Hole,
    Progress,
    ProofClosed,
    ProofState,
    TacticError,
    TacticErrorKind,
    TacticOutcome,
    Theorem,
    VerifyResult,
    VerifyStatus,
)
from prover.evaluation.runner import run_evaluation
from prover.models.batching import BatchMerger
from search.types import GenerationRequest, SearchConfig, TacticCandidate

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_JSONL = REPO_ROOT.parent / "shared" / "data" / "minif2f_lean4.jsonl"

SAMPLES = 32
EXPANSIONS = 100
CLOCK_S = 600.0
TACTIC_TIMEOUT_S = 5.0
START_S = 0.5
VERIFY_OVERHEAD_S = 0.3
MAX_BATCH_STATES = 8

# ----------------------------------------------------------------------------- measured generator figures
# Edit these tables when new measurements come in; every latency the simulation uses derives from them.

# Plain Hugging Face `generate` (what the reference loop calls): candidates per second for one call over
# b states x 32 samples. Source: shared/reference/llemma-eval.md, "Generation on one GPU" (H200, random
# weights with Llemma-7B's shape, 384-token prompts, 64 new tokens): 19.1-19.7 for 1 x 32, 37.8 for
# 4 x 32, 40.9-41.5 for 8 x 32.
GPU_THROUGHPUT: tuple[tuple[int, float], ...] = ((1, 19.4), (4, 37.8), (8, 41.2))
GPU_THROUGHPUT_SOURCE = "llemma-eval.md, HF generate on an H200"

# Our `hf` backend (`MergingGenerator` over `HFGenerator`: each prompt encoded once, its cache shared by
# its samples, concurrent searches merged) against plain `generate` for ONE request, measured in the
# same run so that the ratio cancels the box. Source: `python bench/generation_gpu.py --static-cache`
# on one H200 (Llemma-7B shape, random bf16 weights, ~400-token prompts, 32 samples x 64 new tokens),
# the shipped default (static cache, decode steps replayed as CUDA graphs): seconds per call for b states
# x 32 samples (bench/results/generation_gpu_h200.txt). An earlier run without CUDA graphs (eager decode,
# host-bound) gave hf 5.39 / 5.07 / 13.98 s against naive 5.04 s.
HF_MEASURED_CALL_S: tuple[tuple[int, float], ...] = ((1, 0.86), (8, 1.18), (32, 3.51))
NAIVE_MEASURED_CALL_S = 4.17
"""Plain `generate`, one request of 1 x 32, in the same run as `HF_MEASURED_CALL_S`."""
HF_MEASURED_SOURCE = (
    "bench/generation_gpu.py --static-cache on an H200: hf 1x32 0.86 s, 8x32 1.18 s, 32x32 3.51 s; naive 1x32 4.17 s"
)

OUR_GENERATORS = ("hf-measured", "generate")
"""How our runner's model calls are costed: `hf-measured` (our hf backend, `hf_ratio` x the reference's
one-request latency) or `generate` (plain `generate` over the merged states, as the reference would pay)."""

T = TypeVar("T")


# ----------------------------------------------------------------------------- the simulated clock


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Polls real I/O without blocking; when nothing is ready, advances the virtual clock instead of sleeping."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if not events:
            if timeout is None:
                raise RuntimeError("simulated clock: nothing scheduled and nothing ready (a deadlock)")
            self._clock[0] += max(timeout, 0.0)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is simulated: waiting costs no real time, computing costs no simulated time."""

    def __init__(self) -> None:
        self._virtual_now = [0.0]
        super().__init__(selector=_VirtualSelector(self._virtual_now))

    def time(self) -> float:
        return self._virtual_now[0]


def run_clocked(main: Callable[[], Coroutine[Any, Any, T]], scale: float | None) -> T:
    """Run `main()` on the simulated clock, or in real time when `scale` is given."""
    if scale is None:
        with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
            return runner.run(main())
    return asyncio.run(main())


# ----------------------------------------------------------------------------- the simulated world


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True, slots=True)
class _Edge:
    tactic: str
    mean_logprob: float
    num_tokens: int
    latency: float
    outcome: str  # "error", "timeout", "progress", "closed"
    next_state: str


@dataclass
class SimTheorem:
    """One theorem's hidden ground truth: whether and how it can be proved."""

    theorem: Theorem
    proof_ranks: tuple[int, ...]
    """For each step of the proof path, the rank of the right tactic among the 32 candidates; () = unprovable."""
    progress_rate: float
    """Chance that a candidate off the proof path makes progress; low rates make trees that die out."""

    @property
    def provable(self) -> bool:
        return bool(self.proof_ranks)


class SimWorld:
    """The state graph of every theorem, generated lazily and deterministically from the seed."""

    def __init__(self, names: Sequence[str], seed: int) -> None:
        self.seed = seed
        self.theorems: dict[str, SimTheorem] = {}
        for name in names:
            rng = random.Random(_seed(seed, "theorem", name))
            ranks: tuple[int, ...] = ()
            progress_rate = rng.uniform(0.01, 0.25)
            if rng.random() < 0.36:
                depth = rng.choices((1, 2, 3), weights=(65, 20, 15))[0]
                if depth > 1 and rng.random() < 0.5:
                    # A hard proof: its steps are tactics the model ranks low, found only after many
                    # better-looking states have been expanded.
                    ranks = tuple(rng.randint(12, SAMPLES - 1) for _ in range(depth))
                else:
                    ranks = tuple(min(SAMPLES - 1, int(rng.expovariate(1 / 7))) for _ in range(depth))
            statement = f"theorem {name} (x : ℝ) (h₀ : 0 < x) : x ≤ x ^ 2 + 1 := by"
            self.theorems[name] = SimTheorem(Theorem(name, "import Mathlib\n\n", statement), ranks, progress_rate)
        self._edges: dict[str, list[_Edge]] = {}

    @staticmethod
    def root(name: str) -> str:
        return f"{name}|"

    def edges(self, state: str) -> list[_Edge]:
        cached = self._edges.get(state)
        if cached is not None:
            return cached
        name, _, path = state.partition("|")
        depth = path.count("/") if path else 0
        truth = self.theorems[name]
        on_proof_path = truth.provable and path == "/p" * depth and depth < len(truth.proof_ranks)
        rng = random.Random(_seed(self.seed, state))
        scores = sorted((-rng.uniform(0.02, 2.5) for _ in range(SAMPLES)), reverse=True)
        edges: list[_Edge] = []
        for rank, score in enumerate(scores):
            latency = min(rng.lognormvariate(math.log(0.1), 1.6), TACTIC_TIMEOUT_S)
            tokens = rng.randint(3, 24)
            tactic = f"tac_{_seed(state, rank) % 10**12:012d}"
            if on_proof_path and rank == truth.proof_ranks[depth]:
                last = depth == len(truth.proof_ranks) - 1
                outcome, nxt = ("closed", "") if last else ("progress", f"{state}/p")
                latency = min(latency, 1.0)  # the right tactic does not time out
            elif latency >= TACTIC_TIMEOUT_S:
                outcome, nxt = "timeout", ""
            elif rng.random() < truth.progress_rate:
                outcome, nxt = "progress", f"{state}/{rank}"
            else:
                outcome, nxt = "error", ""
            edges.append(_Edge(tactic, score, tokens, latency, outcome, nxt))
        if len(self._edges) > 200_000:  # bound memory: states are regenerated identically on demand
            self._edges.clear()
        self._edges[state] = edges
        return edges

    def edge(self, state: str, tactic: str) -> _Edge | None:
        for edge in self.edges(state):
            if edge.tactic == tactic:
                return edge
        return None

    def candidates(self, state: str, num_samples: int) -> list[TacticCandidate]:
        return [
            TacticCandidate(edge.tactic, edge.mean_logprob * edge.num_tokens, edge.num_tokens)
            for edge in self.edges(state)[:num_samples]
        ]


# ----------------------------------------------------------------------------- simulated Lean and model


@dataclass
class _Worker:
    index: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sessions: int = 0
    busy_s: float = 0.0
    held: set[str] = field(default_factory=set)
    """States this worker holds (pool "spread" only): others must be replayed here first."""


class SimEnv:
    """A `LeanEnv` over the world with a pool of `workers` Lean processes.

    `pool="pinned"` models the REPL pool as built: a theorem's states live in the worker that started
    it, so its tactics run there one after another. `pool="spread"` models a pool that also sends a
    tactic to an idle worker, which first replays the state's tactic path (paying those tactics' time).
    """

    def __init__(self, world: SimWorld, workers: int, scale: float = 1.0, pool: str = "pinned") -> None:
        self.world = world
        self.scale = scale
        self.pool = pool
        self.workers = [_Worker(index) for index in range(workers)]
        self.tactics = 0
        """Tactics that reached a Lean worker (a tactic cancelled while it waits for one never does)."""
        self.replayed_tactics = 0

    async def _busy(self, worker: _Worker, seconds: float) -> None:
        """Hold `worker` for `seconds`; a cancelled tactic frees it at once and is charged only what it used."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await asyncio.sleep(seconds / self.scale)
        finally:
            worker.busy_s += min(seconds, (loop.time() - began) * self.scale)

    async def _occupy(self, worker: _Worker, seconds: float, *, tactic: bool = False) -> None:
        async with worker.lock:
            self.tactics += tactic
            await self._busy(worker, seconds)

    def replay_seconds(self, state: str) -> tuple[float, list[str]]:
        """Time to rebuild `state` from its theorem's root on a worker that lacks it, and the states passed."""
        name, _, path = state.partition("|")
        current = SimWorld.root(name)
        seconds = 0.0
        passed = [current]
        for step in path.split("/")[1:]:
            target = f"{current}/{step}"
            edge = next(edge for edge in self.world.edges(current) if edge.next_state == target)
            seconds += edge.latency
            current = target
            passed.append(current)
        return seconds, passed

    async def run_on_pool(self, home: _Worker, state: str, seconds: float, produced: str) -> None:
        if self.pool == "pinned":
            await self._occupy(home, seconds, tactic=True)
            return
        idle = [worker for worker in self.workers if not worker.lock.locked()]
        if not home.lock.locked():
            worker = home
        elif idle:
            worker = next((w for w in idle if state in w.held), idle[0])
        else:
            worker = home
        async with worker.lock:
            cost = seconds
            if state not in worker.held:
                replay, passed = self.replay_seconds(state)
                cost += replay
                worker.held.update(passed)
                self.replayed_tactics += len(passed) - 1
            if produced:
                worker.held.add(produced)
            self.tactics += 1
            await self._busy(worker, cost)

    @property
    def syntax(self) -> LeanSyntax:
        return LEAN

    async def start(self, theorem: Theorem, *, hole: Hole | None = None) -> SimSession:
        home = min(self.workers, key=lambda worker: (worker.sessions, worker.lock.locked(), worker.index))
        home.sessions += 1
        home.held.add(SimWorld.root(theorem.name))
        await self._occupy(home, START_S)
        return SimSession(self, theorem, home)

    async def check(self, text: str, timeout: float, *, header: str | None = None) -> CheckResult:
        raise NotImplementedError("the simulated world has statements and tactics, not texts with holes")

    async def verify(self, theorem: Theorem, proof: str, timeout: float) -> VerifyResult:
        tactics = [line.strip() for line in proof.splitlines()[1:] if line.strip()]
        state = SimWorld.root(theorem.name)
        seconds = VERIFY_OVERHEAD_S
        verdict = VerifyResult(VerifyStatus.LEAN_ERROR, reason="unsolved goals")
        for index, tactic in enumerate(tactics):
            edge = self.world.edge(state, tactic)
            if edge is None or edge.outcome in ("error", "timeout"):
                break
            seconds += edge.latency
            if edge.outcome == "closed":
                if index == len(tactics) - 1:
                    verdict = VerifyResult(VerifyStatus.VALID)
                break
            state = edge.next_state
        worker = min(self.workers, key=lambda w: (w.lock.locked(), w.sessions, w.index))
        await self._occupy(worker, seconds)
        return verdict

    async def close(self) -> None:
        return None


class SimSession:
    def __init__(self, env: SimEnv, theorem: Theorem, home: _Worker) -> None:
        self._env = env
        self._theorem = theorem
        self._home = home
        self._initial = ProofState.from_pp(SimWorld.root(theorem.name))
        self._closed = False

    @property
    def theorem(self) -> Theorem:
        return self._theorem

    @property
    def initial_state(self) -> ProofState:
        return self._initial

    async def run_tactic(self, state: ProofState, tactic: str, timeout: float) -> TacticOutcome:
        edge = self._env.world.edge(state.pp, tactic)
        if edge is None:
            return TacticError(TacticErrorKind.LEAN_ERROR, "unknown tactic")
        limit = timeout * self._env.scale  # callers pass timeouts in scaled time
        produced = edge.next_state if edge.outcome == "progress" else ""
        await self._env.run_on_pool(self._home, state.pp, min(edge.latency, limit), produced)
        if edge.outcome == "closed":
            return ProofClosed()
        if edge.outcome == "progress":
            return Progress(ProofState.from_pp(edge.next_state))
        if edge.outcome == "timeout":
            return TacticError(TacticErrorKind.TIMEOUT, f"tactic timed out after {timeout:g} s")
        return TacticError(TacticErrorKind.LEAN_ERROR, "linarith failed")

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._home.sessions -= 1
            if self._env.pool == "spread":
                prefix = SimWorld.root(self._theorem.name)
                for worker in self._env.workers:
                    worker.held = {state for state in worker.held if not state.startswith(prefix)}


def gpu_seconds(states: int, samples: int) -> float:
    """Seconds one model call over `states` prompts x `samples` candidates takes on the measured GPU."""
    points = GPU_THROUGHPUT
    if states <= points[0][0]:
        throughput = points[0][1]
    elif states >= points[-1][0]:
        throughput = points[-1][1]
    else:
        throughput = points[-1][1]
        for (b0, t0), (b1, t1) in itertools.pairwise(points):
            if b0 <= states <= b1:
                throughput = t0 + (t1 - t0) * (states - b0) / (b1 - b0)
                break
    return states * samples / throughput


def hf_ratio(states: int) -> float:
    """Latency of our hf backend's call over `states` x 32 samples, as a multiple of one plain `generate` request.

    Linear between the measured points of `HF_MEASURED_CALL_S`, flat below the first, and growing
    linearly beyond the last at the slope of the last segment.
    """
    points = HF_MEASURED_CALL_S
    if states <= points[0][0]:
        seconds = points[0][1]
    else:
        (b0, t0), (b1, t1) = points[-2], points[-1]  # extrapolation beyond the last point
        for (lo, lo_s), (hi, hi_s) in itertools.pairwise(points):
            if lo <= states <= hi:
                (b0, t0), (b1, t1) = (lo, lo_s), (hi, hi_s)
                break
        seconds = t0 + (t1 - t0) * (states - b0) / (b1 - b0)
    return seconds / NAIVE_MEASURED_CALL_S


def hf_seconds(states: int, samples: int) -> float:
    """Seconds our hf backend's merged call over `states` prompts x `samples` candidates takes.

    The reference's one-request latency (`gpu_seconds(1, samples)`, from llemma-eval.md) times the
    same-run ratio `hf_ratio(states)`.
    """
    return gpu_seconds(1, samples) * hf_ratio(states)


def generator_latency(model: str) -> Callable[[int, int], float]:
    """The latency model named `model`: "generate" (`gpu_seconds`) or "hf-measured" (`hf_seconds`)."""
    if model == "generate":
        return gpu_seconds
    if model == "hf-measured":
        return hf_seconds
    raise ValueError(f"unknown generator model {model!r}; choose from {', '.join(OUR_GENERATORS)}")


class SimGenerator:
    """A `TacticGenerator` over the world: one GPU, one call at a time, latency from `latency(states, samples)`."""

    def __init__(self, world: SimWorld, scale: float = 1.0, latency: Callable[[int, int], float] = gpu_seconds) -> None:
        self.world = world
        self.scale = scale
        self.latency = latency
        self.calls = 0
        self.states = 0
        self.busy_s = 0.0
        self._gpu: asyncio.Lock | None = None

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        if self._gpu is None:
            self._gpu = asyncio.Lock()
        async with self._gpu:
            seconds = self.latency(len(requests), max(r.num_samples for r in requests))
            self.calls += 1
            self.states += len(requests)
            self.busy_s += seconds
            await asyncio.sleep(seconds / self.scale)
        return [self.world.candidates(request.state.pp, request.num_samples) for request in requests]

    async def close(self) -> None:
        return None


class MergedSimGenerator:
    """`SimGenerator` behind the merger our `hf` backend uses (`BatchMerger`, as in `MergingGenerator`).

    `MergingGenerator` merges text completions in front of a text model; the simulated model answers
    tactic requests directly, so the same merger is put in front of its `generate`.
    """

    def __init__(self, inner: SimGenerator, *, window_ms: float, max_batch_cost: int) -> None:
        self._merger: BatchMerger[GenerationRequest, list[TacticCandidate]] = BatchMerger(
            inner.generate,
            inner.close,
            cost=lambda request: request.num_samples,
            window_ms=window_ms,
            max_batch_cost=max_batch_cost,
        )

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        return await self._merger.submit(requests)

    async def close(self) -> None:
        await self._merger.close()


# ----------------------------------------------------------------------------- the reference loop


async def reference_search(
    theorem: Theorem, env: SimEnv, generator: SimGenerator, max_expansions: int, clock_s: float, scale: float
) -> tuple[bool, int, bool]:
    """The Llemma loop (llemma-eval.md) on one theorem: (proved, expansions, stopped by the clock).

    As in the reference, the clock is checked only before each pop, so the last expansion may end
    after `clock_s` (by up to 32 tactics); a proof found then counts.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    session = await env.start(theorem)
    try:
        queue: list[tuple[float, list[str], ProofState]] = [(0.0, [], session.initial_state)]
        visited: set[str] = set()
        expansions = 0
        while queue and expansions < max_expansions:
            if (loop.time() - started) * scale > clock_s:
                return False, expansions, True
            neg_score, steps, state = heapq.heappop(queue)
            if state.pp in visited:
                continue
            visited.add(state.pp)
            expansions += 1
            (candidates,) = await generator.generate([GenerationRequest(state, SAMPLES, theorem)])
            scored: dict[str, float] = {}
            for candidate in candidates:
                scored.setdefault(candidate.text.strip(), candidate.mean_logprob)
            for text, score in sorted(scored.items(), key=lambda item: -item[1]):
                outcome = await session.run_tactic(state, text, TACTIC_TIMEOUT_S / scale)
                if isinstance(outcome, ProofClosed):
                    return True, expansions, False
                if isinstance(outcome, Progress) and outcome.state.pp not in visited:
                    heapq.heappush(queue, (neg_score - score, [*steps, text], outcome.state))
        return False, expansions, False
    finally:
        await session.close()


# ----------------------------------------------------------------------------- one regime


@dataclass
class Outcome:
    system: str
    regime: str
    generator: str
    """The latency model of this system's model calls ("generate" or "hf-measured")."""
    proved: set[str]
    sim_seconds: float
    cpu_seconds: float
    expansions: int
    tactics: int
    model_calls: int
    lean_busy_s: float
    gpu_busy_s: float
    timed_out: int
    """Theorems whose search the wall clock stopped."""
    proof_seconds: dict[str, float] = field(default_factory=dict)
    """For each proved theorem, simulated seconds from the start of its search to the proof."""
    tactics_cancelled: int = 0
    """Tactics our searches cancelled on Lean once a proof was found (`SearchStats.tactics_cancelled`)."""


def run_reference(
    world: SimWorld, names: Sequence[str], workers: int, clock_s: float, regime: str, scale: float | None
) -> Outcome:
    env = SimEnv(world, workers, scale or 1.0)
    generator = SimGenerator(world, scale or 1.0, gpu_seconds)
    proved: set[str] = set()
    proof_seconds: dict[str, float] = {}
    expansions = 0
    timed_out: list[bool] = []

    async def main() -> float:
        nonlocal expansions
        loop = asyncio.get_running_loop()
        began = loop.time()
        for name in names:
            started = loop.time()
            ok, used, clocked_out = await reference_search(
                world.theorems[name].theorem, env, generator, EXPANSIONS, clock_s, scale or 1.0
            )
            expansions += used
            timed_out.append(clocked_out)
            if ok:
                proved.add(name)
                proof_seconds[name] = (loop.time() - started) * (scale or 1.0)
        return (loop.time() - began) * (scale or 1.0)

    cpu = time.process_time()
    seconds = run_clocked(main, scale)
    return Outcome(
        "reference",
        regime,
        "generate",
        proved,
        seconds,
        time.process_time() - cpu,
        expansions,
        env.tactics,
        generator.calls,
        sum(w.busy_s for w in env.workers),
        generator.busy_s,
        sum(timed_out),
        proof_seconds,
    )


def run_ours(
    world: SimWorld,
    names: Sequence[str],
    workers: int,
    concurrency: int,
    clock_s: float,
    regime: str,
    scale: float | None,
    pool: str = "pinned",
    generator_model: str = "hf-measured",
    cancel_on_proof: bool = True,
) -> Outcome:
    """Our runner (`run_evaluation` over `MergingGenerator`) on the world; `generator_model` names its latency model.

    `cancel_on_proof=False` lets the tactics still running when a proof is found finish (the comparison
    row for the cancellation's saving)."""
    env = SimEnv(world, workers, scale or 1.0, pool)
    inner = SimGenerator(world, scale or 1.0, generator_latency(generator_model))
    # Scaled real time shrinks every latency, the budget and the merge window alike.
    config = SearchConfig(
        max_expansions=EXPANSIONS,
        num_samples=SAMPLES,
        wall_clock_s=clock_s / (scale or 1.0),
        tactic_timeout_s=TACTIC_TIMEOUT_S / (scale or 1.0),
        verify_timeout_s=120.0,
        cancel_on_proof=cancel_on_proof,
    )
    records: list[Any] = []

    async def main() -> float:
        generator = MergedSimGenerator(inner, window_ms=5.0 / (scale or 1.0), max_batch_cost=MAX_BATCH_STATES * SAMPLES)
        loop = asyncio.get_running_loop()
        began = loop.time()
        outcome = await run_evaluation(
            [world.theorems[name].theorem for name in names], env, generator, config, concurrency=concurrency
        )
        await generator.close()
        records.extend(outcome.records)
        return (loop.time() - began) * (scale or 1.0)

    cpu = time.process_time()
    seconds = run_clocked(main, scale)
    errors = [record for record in records if record.status == "env_error"]
    if errors:
        raise RuntimeError(f"simulation fault: {errors[0].name}: {errors[0].failure_reason}")
    return Outcome(
        "ours",
        regime,
        generator_model,
        {record.name for record in records if record.proved},
        seconds,
        time.process_time() - cpu,
        sum(record.expansions for record in records),
        env.tactics,
        inner.calls,
        sum(w.busy_s for w in env.workers),
        inner.busy_s,
        sum(record.status == "timed_out" for record in records),
        {
            record.name: float(record.stats.get("wall_seconds", 0.0)) * (scale or 1.0)
            for record in records
            if record.proved
        },
        sum(int(record.stats.get("tactics_cancelled", 0)) for record in records),
    )


# ----------------------------------------------------------------------------- main


def theorem_names(count: int) -> list[str]:
    if SHARED_JSONL.exists():
        from prover.minif2f.dataset import load_dataset

        names = load_dataset(SHARED_JSONL, splits=["test"]).names
    else:
        prefixes = ["mathd_algebra"] * 70 + ["mathd_numbertheory"] * 60 + ["amc12a"] * 45 + ["aime"] * 15
        prefixes += ["imo"] * 20 + ["induction"] * 8 + ["algebra"] * 18 + ["numbertheory"] * 8
        names = [f"{prefix}_{index}" for index, prefix in enumerate(prefixes)]
    return names[:count]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:6.2f} h"


def generator_label(model: str) -> str:
    return "hf-measured" if model == "hf-measured" else "generate"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--theorems", type=int, default=244)
    parser.add_argument("--workers", type=int, default=8, help="Lean workers in our runner's pool")
    parser.add_argument("--concurrency", type=int, default=8, help="searches our runner keeps in flight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=None, help="run in real time, latencies divided by this")
    parser.add_argument(
        "--pool",
        choices=["pinned", "spread"],
        default="pinned",
        help="our Lean pool: pinned (the REPL pool as built) or spread (idle workers replay and help)",
    )
    parser.add_argument(
        "--our-generator",
        choices=[*OUR_GENERATORS, "both"],
        default="hf-measured",
        help="latency model of our runner's model calls: hf-measured (our hf backend, same-run ratio to plain "
        "generate), generate (plain generate over the merged states), or both (rows for each; the last line "
        "uses hf-measured)",
    )
    parser.add_argument(
        "--no-cancel-comparison",
        action="store_true",
        help="skip the extra run of ours (expansion budget) that lets tactics finish after a proof is found, "
        "and the Lean-calls line comparing it with cancellation",
    )
    args = parser.parse_args(argv)
    ours_models = list(OUR_GENERATORS) if args.our_generator == "both" else [args.our_generator]
    names = theorem_names(args.theorems)
    world = SimWorld(names, args.seed)
    provable = sum(world.theorems[name].provable for name in names)
    print(
        f"simulated miniF2F-test: {len(names)} theorems ({provable} with a proof path), seed {args.seed}; "
        f"{SAMPLES} samples, {EXPANSIONS} expansions; ours: {args.concurrency} searches over {args.workers} "
        f"Lean workers ({args.pool}); {'simulated clock' if args.scale is None else f'real time / {args.scale:g}'}",
        flush=True,
    )
    print(
        f"generator models: generate = plain HF generate, {GPU_THROUGHPUT_SOURCE} "
        f"(1x32: {gpu_seconds(1, SAMPLES):.2f} s/call, 8x32: {gpu_seconds(8, SAMPLES):.2f} s/call)",
        flush=True,
    )
    print(
        f"                  hf-measured = our hf backend, generate's 1x32 latency x same-run ratio from "
        f"{HF_MEASURED_SOURCE} (1x32: {hf_seconds(1, SAMPLES):.2f} s/call, 8x32: {hf_seconds(8, SAMPLES):.2f} s, "
        f"32x32: {hf_seconds(32, SAMPLES):.2f} s)",
        flush=True,
    )
    results: list[Outcome] = []
    for regime, clock in (("expansions only", 1e9), (f"{CLOCK_S:g} s per theorem", CLOCK_S)):
        results.append(run_reference(world, names, args.workers, clock, regime, args.scale))
        for model in ours_models:
            results.append(
                run_ours(world, names, args.workers, args.concurrency, clock, regime, args.scale, args.pool, model)
            )
    header = (
        f"{'budget':<20}{'system':<11}{'generator':<13}{'proved':>8}{'wall':>10}{'expansions':>12}{'tactics':>10}"
        f"{'model calls':>13}{'GPU busy':>10}{'Lean busy':>11}{'timed out':>11}{'cpu s':>7}"
    )
    print(header)
    print("-" * len(header))
    for outcome in results:
        wall = outcome.sim_seconds
        print(
            f"{outcome.regime:<20}{outcome.system:<11}{outcome.generator:<13}{len(outcome.proved):>4}/{len(names):<3}"
            f"{hours(wall):>10}{outcome.expansions:>12}{outcome.tactics:>10}{outcome.model_calls:>13}"
            f"{100 * outcome.gpu_busy_s / wall:>9.0f}%{100 * outcome.lean_busy_s / (wall * args.workers):>10.0f}%"
            f"{outcome.timed_out:>11}{outcome.cpu_seconds:>7.1f}",
            flush=True,
        )

    def pick(system: str, regime_index: int, model: str = "generate") -> Outcome:
        regime = results[0].regime if regime_index == 0 else results[-1].regime
        return next(o for o in results if o.system == system and o.regime == regime and o.generator == model)

    headline = "hf-measured" if "hf-measured" in ours_models else ours_models[0]
    ref_exp, ref_clock = pick("reference", 0), pick("reference", 1)
    for model in ours_models:
        ours_exp, ours_clock = pick("ours", 0, model), pick("ours", 1, model)
        same = ref_exp.proved == ours_exp.proved
        print(
            f"[ours: {model}] expansion budget: same theorems proved: {'yes' if same else 'NO'} "
            f"(reference {len(ref_exp.proved)}, ours {len(ours_exp.proved)}, "
            f"only reference {len(ref_exp.proved - ours_exp.proved)}, "
            f"only ours {len(ours_exp.proved - ref_exp.proved)}); "
            f"wall time {hours(ref_exp.sim_seconds).strip()} vs {hours(ours_exp.sim_seconds).strip()} "
            f"(speedup {ref_exp.sim_seconds / ours_exp.sim_seconds:.2f})"
        )
        late = sorted(name for name, seconds in ref_clock.proof_seconds.items() if seconds > CLOCK_S)
        print(
            f"[ours: {model}] clock budget: reference proved {len(ref_clock.proved)} in "
            f"{hours(ref_clock.sim_seconds).strip()} ({len(late)} of them after {CLOCK_S:g} s: its clock is "
            f"checked only before each pop), ours {len(ours_clock.proved)} in "
            f"{hours(ours_clock.sim_seconds).strip()} "
            f"(gained {len(ours_clock.proved - ref_clock.proved)}, lost {len(ref_clock.proved - ours_clock.proved)}); "
            f"expansions per theorem {ref_clock.expansions / len(names):.1f} "
            f"vs {ours_clock.expansions / len(names):.1f}"
        )
    ours_exp, ours_clock = pick("ours", 0, headline), pick("ours", 1, headline)
    if not args.no_cancel_comparison:
        kept = run_ours(
            world, names, args.workers, args.concurrency, 1e9, ours_exp.regime, args.scale, args.pool, headline, False
        )
        print(
            f"[ours: {headline}] cancel on proof (expansion budget): Lean calls {ours_exp.tactics} with vs "
            f"{kept.tactics} without (saved {kept.tactics - ours_exp.tactics}); busy worker-seconds "
            f"{ours_exp.lean_busy_s:.0f} vs {kept.lean_busy_s:.0f} "
            f"(saved {kept.lean_busy_s - ours_exp.lean_busy_s:.0f}); "
            f"tactics cancelled {ours_exp.tactics_cancelled}; wall {hours(ours_exp.sim_seconds).strip()} vs "
            f"{hours(kept.sim_seconds).strip()}; proved {len(ours_exp.proved)} vs {len(kept.proved)}"
        )
    speedup = ref_exp.sim_seconds / ours_exp.sim_seconds
    print(f"speedup={speedup:.2f} proved_ours={len(ours_clock.proved)} proved_reference={len(ref_clock.proved)}")


if __name__ == "__main__":
    main()

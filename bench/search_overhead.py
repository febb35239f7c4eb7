"""The search's own CPU cost per expansion and its peak memory, against the sequential reference loop.

Both searches run in this process, one after the other, against the same zero-latency scripted
environment and generator over a synthetic, endless proof-state tree, so both spend the whole
expansion budget. Each expansion gets 32 distinct candidates: 4 lead to new states, 2 to states
another node also reaches (transpositions), 1 back to the parent, 1 to the same state, the rest
are tactic errors. No tactic closes the goal.

What is measured is process CPU time (not wall time, which other processes on the machine
inflate). The stand-ins' share is subtracted: their cost per call is calibrated in a tight loop
(minus the cost of calling an empty coroutine) and multiplied by the calls each search made. What
remains is what the search loop itself costs: the tree or heap, de-duplication, scheduling,
bookkeeping, and the garbage collector, which is charged to the search because its cost grows
with what the search keeps alive. Peak memory comes from a separate, shorter pass under
tracemalloc (which slows every allocation down several times).

    .venv/bin/python bench/search_overhead.py [--expansions 20000] [--candidates 32] [--concurrency 8]

The last two lines are `search_overhead_us_per_expansion=<n> reference_us_per_expansion=<m>` and
`search_overhead: ours=<n> us reference=<m> us ratio=<n/m> ours<=reference: yes|no`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.reference_loop import reference_search
from lean_env.lean_syntax import LEAN
from lean_env.types import (
    CheckResult,
    Hole,
    Progress,
    ProofState,
    TacticError,
    TacticErrorKind,
    TacticOutcome,
    Theorem,
    VerifyResult,
    VerifyStatus,
)
from search import BestFirstSearch, SearchConfig, SearchStatus
from search.types import GenerationRequest, TacticCandidate

BRANCHING = 4
_TEMPLATES = (
    "nlinarith [sq_nonneg (x - y), sq_nonneg (x + y), h₀, mul_pos hx hy, sq_nonneg ({k} * x - y)]",
    "simp only [Nat.add_comm, Nat.mul_comm, h₀, h₁] at h{k} ⊢",
    "rw [show (x : ℝ) ^ {k} = x * x ^ ({k} - 1) by ring]",
    "have h{k} : x + y ≤ {k} * z := by linarith",
)
_ERROR = TacticError(TacticErrorKind.LEAN_ERROR, "linarith failed to find a contradiction")
_TIMEOUT = TacticError(TacticErrorKind.TIMEOUT, "tactic timed out")
THEOREM = Theorem(name="synthetic", header="", formal_statement="theorem synthetic (x y z : ℝ) : True := by")


def tactic_texts(count: int) -> list[str]:
    return [_TEMPLATES[k % len(_TEMPLATES)].format(k=k) for k in range(count)]


def state_text(n: int) -> str:
    return f"x y z : ℝ\nh₀ : 0 < x ∧ 0 < y\nh₁ : x * y ≤ {n % 89}\n⊢ x ^ 2 + y ^ 2 ≥ 2 * x * y + z * {n}"


def make_state(n: int) -> ProofState:
    # One goal, built directly (what `ProofState.from_pp` would build). The node number rides in
    # `handle`, the backend's own reference to a state, which equality ignores, as a REPL's
    # proof-state id would.
    text = state_text(n)
    return ProofState(pp=text, goals=(text,), handle=n)


def state_number(state: ProofState) -> int:
    return state.handle  # type: ignore[no-any-return]


def logprob(n: int, k: int) -> tuple[float, int]:
    mixed = (n * 2654435761 + k * 40503) % 1009
    return -0.05 - mixed / 200.0, 1 + (n + 7 * k) % 23


class SyntheticSession:
    def __init__(self, env: SyntheticEnv, theorem: Theorem) -> None:
        self._env = env
        self._theorem = theorem
        self._initial = make_state(0)

    @property
    def theorem(self) -> Theorem:
        return self._theorem

    @property
    def initial_state(self) -> ProofState:
        return self._initial

    async def run_tactic(self, state: ProofState, tactic: str, timeout: float) -> TacticOutcome:
        env = self._env
        env.tactics += 1
        k = env.index[tactic]
        n = state_number(state)
        if k < BRANCHING:
            return Progress(make_state(BRANCHING * n + k + 1))
        if k < BRANCHING + 2:  # the state the next node reaches with tactic k - BRANCHING
            return Progress(make_state(BRANCHING * (n + 1) + k - BRANCHING + 1))
        if k == BRANCHING + 2:
            return Progress(make_state((n - 1) // BRANCHING)) if n else _ERROR
        if k == BRANCHING + 3:
            return Progress(state)
        return _TIMEOUT if k % 7 == 0 else _ERROR

    async def close(self) -> None:
        return None


class SyntheticEnv:
    """A zero-latency `LeanEnv` over the endless synthetic tree; counts the tactics it ran."""

    syntax = LEAN

    def __init__(self, candidates: int) -> None:
        self.texts = tactic_texts(candidates)
        self.index = {text: k for k, text in enumerate(self.texts)}
        self.tactics = 0

    async def start(self, theorem: Theorem, *, hole: Hole | None = None) -> SyntheticSession:
        return SyntheticSession(self, theorem)

    async def check(self, text: str, timeout: float, *, header: str | None = None) -> CheckResult:
        raise NotImplementedError("the synthetic environment checks no texts")

    async def verify(self, theorem: Theorem, proof: str, timeout: float) -> VerifyResult:
        return VerifyResult(VerifyStatus.LEAN_ERROR, reason="the synthetic tree has no proof")

    async def close(self) -> None:
        return None


class SyntheticGenerator:
    """A zero-latency `TacticGenerator`: every tactic of the tree, best first, with per-state scores.

    Scores repeat with the node number modulo a prime; the ranked lists are built once, so that a
    call costs next to nothing and the search's own cost is what the benchmark sees.
    """

    PERIOD = 1009

    def __init__(self, env: SyntheticEnv) -> None:
        self.texts = env.texts
        self.calls = 0
        self._ranked: list[list[TacticCandidate]] = []
        for n in range(self.PERIOD):
            rows = [TacticCandidate(text, *logprob(n, k)) for k, text in enumerate(self.texts)]
            rows.sort(key=lambda candidate: -candidate.mean_logprob)
            self._ranked.append(rows)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        self.calls += 1
        ranked = self._ranked
        return [ranked[state_number(r.state) % self.PERIOD][: r.num_samples] for r in requests]

    async def close(self) -> None:
        return None


class _GcClock:
    """CPU time spent in the cyclic garbage collector (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started


GC_CLOCK = _GcClock()


@dataclass(frozen=True)
class StandInCost:
    """CPU seconds of one call of each stand-in, beyond the cost of awaiting an empty coroutine."""

    tactic_s: float
    generate_s: float


async def _noop(*_: object) -> None:
    return None


async def _calibrate_once(candidates: int, states: int) -> StandInCost:
    env = SyntheticEnv(candidates)
    generator = SyntheticGenerator(env)
    session = await env.start(THEOREM)
    # Node numbers of the size the searches reach, so parsing and formatting cost the same.
    samples = [make_state(1_000 + 7_919 * i) for i in range(states)]
    requests = [GenerationRequest(state=state, num_samples=candidates) for state in samples]
    texts = env.texts

    started = time.process_time()
    for state in samples:
        for text in texts:
            await session.run_tactic(state, text, 5.0)
    tactics = time.process_time() - started
    started = time.process_time()
    for state in samples:
        for text in texts:
            await _noop(state, text, 5.0)
    tactics -= time.process_time() - started

    started = time.process_time()
    for request in requests:
        await generator.generate([request])
    generate = time.process_time() - started
    started = time.process_time()
    for request in requests:
        await _noop([request])
    generate -= time.process_time() - started
    return StandInCost(tactics / (states * len(texts)), generate / states)


def calibrate(candidates: int, states: int = 1_500, rounds: int = 3) -> StandInCost:
    """The stand-ins' cost per call: the cheapest of a few rounds (other load only adds time)."""
    costs = [asyncio.run(_calibrate_once(candidates, states)) for _ in range(rounds)]
    return StandInCost(min(c.tactic_s for c in costs), min(c.generate_s for c in costs))


@dataclass
class Measure:
    name: str
    expansions: int
    tactics: int
    cpu_s: float
    stand_in_s: float
    gc_s: float
    peak_mib: float = float("nan")

    @property
    def own_us_per_expansion(self) -> float:
        return (self.cpu_s - self.stand_in_s) / self.expansions * 1e6


Runner = Callable[[SyntheticEnv, SyntheticGenerator], Coroutine[Any, Any, int]]


def ours(expansions: int, candidates: int, concurrency: int) -> Runner:
    config = SearchConfig(
        max_expansions=expansions,
        num_samples=candidates,
        wall_clock_s=1e9,
        tactic_timeout_s=5.0,
        max_concurrent_tactics=concurrency,
    )

    async def run(env: SyntheticEnv, generator: SyntheticGenerator) -> int:
        result = await BestFirstSearch(THEOREM, env, generator, config).run()
        if result.status is not SearchStatus.BUDGET_EXHAUSTED:
            raise RuntimeError(f"expected the budget to run out, got {result.status}: {result.failure_reason}")
        return result.stats.expansions

    return run


def reference(expansions: int, candidates: int) -> Runner:
    async def run(env: SyntheticEnv, generator: SyntheticGenerator) -> int:
        proved, _, done = await reference_search(THEOREM, env, generator, expansions, candidates, 1e9, 5.0)
        if proved:
            raise RuntimeError("the synthetic tree has no proof")
        return done

    return run


def measure(name: str, runner: Runner, candidates: int, cost: StandInCost, *, memory: bool) -> Measure:
    env = SyntheticEnv(candidates)
    generator = SyntheticGenerator(env)
    gc.collect()  # the previous run's garbage is not this run's cost
    if memory:
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
    gc_before = GC_CLOCK.seconds
    started = time.process_time()
    expansions = asyncio.run(runner(env, generator))
    cpu = time.process_time() - started
    gc_seconds = GC_CLOCK.seconds - gc_before
    peak = float("nan")
    if memory:
        peak = (tracemalloc.get_traced_memory()[1] - baseline) / 2**20
        tracemalloc.stop()
    stand_in = env.tactics * cost.tactic_s + generator.calls * cost.generate_s
    return Measure(name, expansions, env.tactics, cpu, stand_in, gc_seconds, peak)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--expansions", type=int, default=20_000)
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=SearchConfig().max_concurrent_tactics)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; the fastest counts")
    parser.add_argument(
        "--memory-expansions",
        type=int,
        default=4_000,
        help="expansions of the tracemalloc pass (tracing every allocation is 5-10x slower); 0 skips it",
    )
    args = parser.parse_args(argv)
    if not BRANCHING + 4 <= args.candidates <= 104:
        parser.error("--candidates must be between 8 and 104")

    # (name, runner for n expansions, headline row): the sequential variant of ours is shown for
    # comparison, timed once and not traced (it builds the same tree as the default).
    variants: list[tuple[str, Callable[[int], Runner], bool]] = [
        (
            f"best-first (ours, {args.concurrency} concurrent)",
            lambda n: ours(n, args.candidates, args.concurrency),
            True,
        ),
        ("best-first (ours, sequential)", lambda n: ours(n, args.candidates, 1), False),
        ("reference loop (Llemma)", lambda n: reference(n, args.candidates), True),
    ]
    cost = calibrate(args.candidates)
    results: list[Measure] = []
    gc.callbacks.append(GC_CLOCK)
    try:
        # Rounds interleave the variants, so that a slow spell of the machine hits all of them.
        timed: list[list[Measure]] = [[] for _ in variants]
        for round_number in range(args.repeat):
            for index, (name, make, headline) in enumerate(variants):
                if headline or round_number == 0:
                    timed[index].append(measure(name, make(args.expansions), args.candidates, cost, memory=False))
        for (name, make, headline), runs in zip(variants, timed, strict=True):
            best = min(runs, key=lambda m: m.own_us_per_expansion)
            if headline and args.memory_expansions > 0:
                traced = measure(name, make(args.memory_expansions), args.candidates, cost, memory=True)
                best.peak_mib = traced.peak_mib
            results.append(best)
    finally:
        gc.callbacks.remove(GC_CLOCK)

    python = sys.version.split()[0]
    print(f"{args.expansions} expansions x {args.candidates} candidates, zero-latency stand-ins, Python {python}")
    print(
        f"stand-in cost subtracted: {cost.tactic_s * 1e6:.2f} us per tactic, "
        f"{cost.generate_s * 1e6:.1f} us per generate call"
    )
    peak = f"MiB@{args.memory_expansions}"
    columns = ("us/expansion", "of which GC", "incl. stand-ins", peak, "expansions", "tactics run")
    header = f"{'search (CPU time)':<36}" + "".join(f"{column:>16}" for column in columns)
    print(header)
    print("-" * len(header))
    for m in results:
        per = 1e6 / m.expansions
        values = (m.own_us_per_expansion, m.gc_s * per, m.cpu_s * per, m.peak_mib)
        print(f"{m.name:<36}" + "".join(f"{value:>16.1f}" for value in values) + f"{m.expansions:>16}{m.tactics:>16}")
    ours_default, reference_result = results[0], results[-1]
    ours_us, reference_us = ours_default.own_us_per_expansion, reference_result.own_us_per_expansion
    print(f"search_overhead_us_per_expansion={ours_us:.1f} reference_us_per_expansion={reference_us:.1f}")
    ratio = ours_us / reference_us if reference_us > 0 else float("inf")
    print(
        f"search_overhead: ours={ours_us:.1f} us reference={reference_us:.1f} us ratio={ratio:.2f} "
        f"ours<=reference: {'yes' if ours_us <= reference_us else 'no'}"
    )


if __name__ == "__main__":
    main()

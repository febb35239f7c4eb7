"""`/metrics`: the service's figures in the Prometheus text format, one registry per app.

Each app gets its own `CollectorRegistry` (never the process-wide default one), so several apps in
one process (tests, an embedding program) do not clash. The figures are read when scraped from the
job store (`counts()`), the runner's stats and, when the env is a REPL pool, the pool's own stats;
nothing is counted twice. Counters are cumulative `_total`s (rates are PromQL's job); `RateWindow`
also keeps the rate over the last `window_s` seconds as a gauge, for the live page and a quick look.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RateWindow:
    """Per-second rates of cumulative counters over the last `window_s` seconds, from samples taken by `sample`."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[str, float]]] = deque()

    def sample(self, values: dict[str, float], now: float | None = None) -> None:
        """Record the counters' current values (call about once a second)."""
        now = time.monotonic() if now is None else now
        self._samples.append((now, dict(values)))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def rate(self, name: str) -> float:
        """The increase of counter `name` per second across the window (0 with fewer than two samples)."""
        if len(self._samples) < 2:
            return 0.0
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        elapsed = last_at - first_at
        if elapsed <= 0:
            return 0.0
        return max(0.0, last.get(name, 0.0) - first.get(name, 0.0)) / elapsed


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the collector reads from; each callable may return None when its part is absent."""

    counts: Callable[[], dict[Any, int]]
    """The store's jobs by state (`JobStore.counts`)."""
    runner_stats: Callable[[], Any | None]
    """The runner's `RunnerStats` (busy, free, expansions_total, candidates_total, verdicts_by_judge)."""
    pool_stats: Callable[[], Any | None]
    """The Lean pool's `PoolStats` (workers, busy), or None when the env has no pool."""
    rates: RateWindow


def runner_counters(stats: Any | None) -> dict[str, float]:
    """The cumulative counters of a `RunnerStats` the rate window follows."""
    if stats is None:
        return {}
    return {
        "expansions": float(getattr(stats, "expansions_total", 0) or 0),
        "candidates": float(getattr(stats, "candidates_total", 0) or 0),
    }


class ServiceCollector(Collector):
    """Builds every metric family at scrape time from `Sources`."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Any]:
        jobs = GaugeMetricFamily("prover_jobs", "Jobs in the store by state.", labels=["state"])
        counts = {str(getattr(state, "value", state)): count for state, count in self.sources.counts().items()}
        for state in ("queued", "running", "completed", "failed", "cancelled"):
            jobs.add_metric([state], counts.get(state, 0))
        yield jobs
        yield GaugeMetricFamily("prover_queue_depth", "Jobs waiting to be claimed.", value=counts.get("queued", 0))

        stats = self.sources.runner_stats()
        counters = runner_counters(stats)
        yield CounterMetricFamily(
            "prover_expansions", "Search expansions run by this server's workers.", value=counters.get("expansions", 0)
        )
        yield CounterMetricFamily(
            "prover_candidates",
            "Tactic candidates generated for this server's jobs.",
            value=counters.get("candidates", 0),
        )
        rates = self.sources.rates
        window = f"{rates.window_s:g}"
        yield GaugeMetricFamily(
            "prover_expansions_per_second",
            f"Expansions per second over the last {window} s.",
            value=rates.rate("expansions"),
        )
        yield GaugeMetricFamily(
            "prover_candidates_per_second",
            f"Candidates per second over the last {window} s.",
            value=rates.rate("candidates"),
        )
        slots = GaugeMetricFamily("prover_runner_slots", "This server's job slots by state.", labels=["state"])
        slots.add_metric(["busy"], float(getattr(stats, "busy", 0) or 0))
        slots.add_metric(["free"], float(getattr(stats, "free", 0) or 0))
        yield slots
        verdicts = CounterMetricFamily(
            "prover_verdicts", "Verdicts on proofs by the judge that gave them.", labels=["judge"]
        )
        for judge, count in sorted((getattr(stats, "verdicts_by_judge", None) or {}).items()):
            verdicts.add_metric([str(judge)], float(count))
        yield verdicts

        lean = GaugeMetricFamily(
            "prover_lean_workers",
            "Lean REPL workers by state (the pool's when the env has one, else this server's job slots).",
            labels=["state"],
        )
        pool = self.sources.pool_stats()
        if pool is not None:
            busy = float(getattr(pool, "busy", 0))
            lean.add_metric(["busy"], busy)
            lean.add_metric(["free"], max(0.0, float(getattr(pool, "workers", 0)) - busy))
        else:
            lean.add_metric(["busy"], float(getattr(stats, "busy", 0) or 0))
            lean.add_metric(["free"], float(getattr(stats, "free", 0) or 0))
        yield lean


def build_registry(sources: Sources) -> CollectorRegistry:
    """A fresh registry holding one `ServiceCollector` (no process, platform or GC collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(sources))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (blocking: it reads the store; call it in a thread)."""
    return generate_latest(registry)


def pool_stats_of(env: Any) -> Any | None:
    """The REPL pool's stats of `env` (a `ReplLeanEnv`, or a `JudgedEnv` around one), else None."""
    seen = 0
    while env is not None and seen < 4:
        pool = getattr(env, "pool", None)
        stats = getattr(pool, "stats", None)
        if callable(stats):
            return stats()
        env = getattr(env, "inner", None)
        seen += 1
    return None

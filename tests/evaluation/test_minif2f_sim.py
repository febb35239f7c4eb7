"""The miniF2F simulation benchmark runs end to end on a few theorems and prints its contract line."""

from __future__ import annotations

import asyncio
import re

import pytest

from bench import minif2f_sim


def test_simulated_clock_jumps_to_the_next_timer_without_waiting() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.gather(asyncio.sleep(3600), asyncio.sleep(10))
        return loop.time()

    assert minif2f_sim.run_clocked(main, scale=None) == pytest.approx(3600)


def test_gpu_latency_follows_the_measured_throughput() -> None:
    assert minif2f_sim.gpu_seconds(1, 32) == pytest.approx(32 / 19.4)
    assert minif2f_sim.gpu_seconds(8, 32) == pytest.approx(256 / 41.2)
    assert minif2f_sim.gpu_seconds(1, 32) < minif2f_sim.gpu_seconds(4, 32) / 2  # batching trades latency


def test_benchmark_prints_both_budgets_and_the_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    minif2f_sim.main(["--theorems", "6", "--seed", "3"])
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup=\d+\.\d\d proved_ours=\d+ proved_reference=\d+", out[-1])
    assert any("same theorems proved: yes" in line for line in out)
    assert sum(("expansions only" in line) for line in out) == 2
    assert sum(("600 s per theorem" in line) for line in out) == 2

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


def test_hf_measured_latency_is_the_reference_call_times_the_same_run_ratio() -> None:
    one = minif2f_sim.gpu_seconds(1, 32)
    naive = minif2f_sim.NAIVE_MEASURED_CALL_S
    _, (b2, s2), (b3, s3) = minif2f_sim.HF_MEASURED_CALL_S
    for states, seconds in minif2f_sim.HF_MEASURED_CALL_S:
        assert minif2f_sim.hf_seconds(states, 32) == pytest.approx(one * seconds / naive)
    # Linear between the measured points, and on at the last segment's slope beyond them.
    middle = (b2 + b3) // 2
    assert minif2f_sim.hf_ratio(middle) == pytest.approx((s2 + (middle - b2) * (s3 - s2) / (b3 - b2)) / naive)
    beyond = b3 + 24
    assert minif2f_sim.hf_ratio(beyond) == pytest.approx((s3 + 24 * (s3 - s2) / (b3 - b2)) / naive)
    assert minif2f_sim.hf_seconds(16, 32) == pytest.approx(2 * minif2f_sim.hf_seconds(16, 16))
    # Merging 8 searches costs our backend less than one plain call; plain generate pays ~3.8x for it.
    assert minif2f_sim.hf_seconds(8, 32) < 1.1 * one < minif2f_sim.gpu_seconds(8, 32) / 3


def test_the_generator_model_is_chosen_by_name() -> None:
    assert minif2f_sim.generator_latency("generate") is minif2f_sim.gpu_seconds
    assert minif2f_sim.generator_latency("hf-measured") is minif2f_sim.hf_seconds
    with pytest.raises(ValueError, match="unknown generator model"):
        minif2f_sim.generator_latency("vllm")


def table_rows(out: list[str]) -> list[str]:
    return [line for line in out if line.startswith(("expansions only", "600 s per theorem"))]


def test_benchmark_prints_both_budgets_and_the_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    minif2f_sim.main(["--theorems", "6", "--seed", "3"])
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup=\d+\.\d\d proved_ours=\d+ proved_reference=\d+", out[-1])
    assert any("same theorems proved: yes" in line for line in out)
    assert [row[20:44].split() for row in table_rows(out)] == [["reference", "generate"], ["ours", "hf-measured"]] * 2
    assert any("generation_gpu.py" in line for line in out)  # where the hf-measured figures come from


def test_both_generator_models_can_be_printed(capsys: pytest.CaptureFixture[str]) -> None:
    minif2f_sim.main(["--theorems", "3", "--seed", "1", "--our-generator", "both"])
    out = capsys.readouterr().out.strip().splitlines()
    models = [row[31:44].strip() for row in table_rows(out)]
    assert models == ["generate", "hf-measured", "generate"] * 2
    assert sum(line.startswith("[ours: generate]") for line in out) == 2
    assert re.fullmatch(r"speedup=\d+\.\d\d proved_ours=\d+ proved_reference=\d+", out[-1])


def test_cancelling_on_proof_saves_lean_calls_and_worker_time(capsys: pytest.CaptureFixture[str]) -> None:
    minif2f_sim.main(["--theorems", "6", "--seed", "3"])
    out = capsys.readouterr().out
    match = re.search(
        r"cancel on proof \(expansion budget\): Lean calls (\d+) with vs (\d+) without \(saved (-?\d+)\); "
        r"busy worker-seconds (\d+) vs (\d+) \(saved (-?\d+)\); tactics cancelled (\d+)",
        out,
    )
    assert match is not None
    with_calls, without_calls, saved_calls, _, _, _, cancelled = (int(group) for group in match.groups())
    assert saved_calls == without_calls - with_calls > 0 and cancelled > 0
    world = minif2f_sim.SimWorld(minif2f_sim.theorem_names(6), 3)
    names = minif2f_sim.theorem_names(6)
    kept = minif2f_sim.run_ours(world, names, 8, 8, 1e9, "x", None, cancel_on_proof=False)
    cancelled_run = minif2f_sim.run_ours(world, names, 8, 8, 1e9, "x", None)
    assert cancelled_run.lean_busy_s < kept.lean_busy_s and cancelled_run.tactics < kept.tactics
    assert kept.tactics_cancelled == 0 < cancelled_run.tactics_cancelled
    assert cancelled_run.proved == kept.proved

"""Verification cost per proof for each judge, on the stand-ins (no Lean here).

    .venv/bin/python bench/judge_cost.py [--proofs 40] [--concurrency 4]

Prints one line: milliseconds per proof for the REPL re-check (the pool over the REPL stand-in),
comparator alone (`ComparatorJudge` over the comparator stand-in: a work project written, one
subprocess, its report read) and both in turn (`JudgedEnv`, what `prove`/`eval` do with comparator
installed). With the stand-ins this measures our own overhead only; real comparator adds two
sandboxed `lake build`s, two exports and a kernel replay per proof (tens of seconds with Mathlib).
"""

from __future__ import annotations

import argparse
import asyncio
import stat
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lean_env.comparator import ComparatorJudge, ComparatorSettings, ComparatorTools
from lean_env.judged import JudgedEnv
from lean_env.repl import ReplConfig, ReplLeanEnv
from lean_env.types import Problem, VerifyResult
from tests.stand_ins.fake_repl import linear_theorem, stand_in_command, write_script

STAND_IN = Path(__file__).resolve().parents[1] / "tests" / "stand_ins" / "comparator_stand_in.py"
HEADER = "import Mathlib\n\n"


def _executable(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


Check = Callable[[Problem, str], Awaitable[VerifyResult]]


async def _per_proof(check: Check, problems: list[Problem], proof: str, concurrency: int) -> float:
    slots = asyncio.Semaphore(concurrency)

    async def one(problem: Problem) -> None:
        async with slots:
            verdict = await check(problem, proof)
            if not verdict.ok:
                raise RuntimeError(f"{problem.name}: {verdict.reason}")

    started = time.perf_counter()
    await asyncio.gather(*(one(problem) for problem in problems))
    return 1000 * (time.perf_counter() - started) / len(problems)


async def main(proofs: int, concurrency: int) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        problems = [Problem(f"t{i}", HEADER, f"theorem t{i} (n : Nat) : n + 0 = n := by") for i in range(proofs)]
        script = write_script(root / "script.json", [linear_theorem(p.formal_statement, ["simp"]) for p in problems])
        project = root / "project"
        (project / ".lake" / "packages").mkdir(parents=True)
        (project / "lakefile.toml").write_text('name = "P"\n\n[[lean_lib]]\nname = "P"\n')
        tools = ComparatorTools(
            comparator=_executable(root / "comparator", f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" "$@"\n'),
            lean4export=_executable(root / "lean4export", "#!/bin/sh\nexit 0\n"),
            landrun=_executable(root / "landrun", "#!/bin/sh\nexit 0\n"),
        )
        judge = ComparatorJudge(ComparatorSettings(concurrency=concurrency), project, tools)
        repl = ReplLeanEnv(ReplConfig(command=stand_in_command(script=script), workers=concurrency))
        judged = JudgedEnv(repl, judge)
        try:
            await _per_proof(lambda p, proof: repl.verify(p, proof, 30), problems[:2], "by\n  simp", 2)  # warm up
            repl_ms = await _per_proof(lambda p, proof: repl.verify(p, proof, 30), problems, "by\n  simp", concurrency)
            comparator_ms = await _per_proof(judge.judge, problems, "by\n  simp", concurrency)
            both_ms = await _per_proof(
                lambda p, proof: judged.verify(p, proof, 30), problems, "by\n  simp", concurrency
            )
        finally:
            await judged.close()
    return (
        f"judge cost per proof (stand-ins, {proofs} proofs, {concurrency} at once): repl {repl_ms:.1f} ms, "
        f"comparator {comparator_ms:.1f} ms, repl then comparator {both_ms:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proofs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    arguments = parser.parse_args()
    print(asyncio.run(main(arguments.proofs, arguments.concurrency)))

"""Simulated informal-to-formal on Isabelle: our pipeline against Llemma's sequential checker.

Both sides run in one process against the Isabelle server stand-in (`tests/stand_ins/isabelle_server.py`,
the real wire protocol, verdicts from one shared script) and the same scripted model:

- 244 simulated problems (seeded). Each sketch has 2-4 `sledgehammer` gaps, one `have` each, then a
  closing `show ?thesis by (simp add: ...)` step. Every gap is closable by an early heuristic (`by auto`,
  `by simp`, `by blast`), by a late one (`by fastforce` ... `by (auto simp: field_simps)`), only by the
  method Sledgehammer suggests, or by nothing (half of those get a suggestion that does not check, as
  when Sledgehammer's proof fails reconstruction). A gap closable by a heuristic may also be closable by
  a later one, so "the earliest-listed that works" is tested. About a third of the problems have every
  gap closable; a few of those are rejected by the final check of the whole proof although every gap
  closed on its own (the stand-in's `verdict` hook), so both sides must run the final check.
- Latencies, in real seconds before scaling (each is divided by `--scale`): Isabelle start-up (the
  server process) 5 s; `session_start` (loading the HOL / Complex_Main heap) 10 s; each theory check
  0.5 s plus 0.4 s per proof step up to the first failing one; Sledgehammer 20 s; the model 8 s per
  `complete` call (a call is one batch, whatever its size). The default `--scale 100` makes the
  reference's ~4 simulated hours take about 2.5 minutes; the ratio of the two wall times is the figure.
  Scaling further down makes our side CPU-bound on a 2-core box (about 1.5 ms of client work a check
  against a few ms of simulated latency) and the ratio then measures Python, not the pipeline: at
  `--scale 250` it read 2.57x, at 100 6.86x (2026-12-01, 244 problems, same 72 proved on both sides).

Reference ("Llemma's checker", re-implemented from the Llemma / DSP harness): all sketches are generated
first in one batch (the harness generated offline with vLLM), then problems are checked one at a time.
For each problem it starts Isabelle (a fresh stand-in server: start-up, then `session_start`), replaces
each `sledgehammer` in text order by trying the heuristics in their order and then Sledgehammer, each
try one theory check after another (earlier gaps filled with what closed them, later gaps `sorry`: the
theory-check equivalent of the harness stepping through the proof with PISA), stops at the first gap
nothing closes, checks the whole proof, and kills Isabelle (the server is closed) before the next problem.

Ours: one stand-in server, `IsabelleChecker` with `--sessions` sessions, `formalize_many` over
`IsabelleSketchBackend` with problems, gaps and heuristic checks concurrent.

Both sides must prove the same problems with the same closing of every gap (else: a mismatch is printed
and the exit status is 1). Prints per-side wall times; the last line is
`informal_speedup=<x> proved_ours=<n> proved_reference=<m>`.

    .venv/bin/python bench/informal_sim.py [--problems 244] [--sessions 8] [--scale 250] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lean_env.isabelle.checker import SERVER_LINE, IsabelleChecker, IsabelleConfig, ServerInfo
from lean_env.isabelle.client import IsabelleClient
from lean_env.types import Language, Problem
from prover.informal.isabelle_backend import GAP, TRY_THIS, IsabelleSketchBackend
from prover.informal.pipeline import DEFAULT_HEURISTICS, InformalConfig, formalize_many
from prover.models.text import Completion, FinishReason, TextRequest
from tests.stand_ins.isabelle_server import (
    IsabelleStandIn,
    Latency,
    ProblemScript,
    Script,
    Step,
    Verdict,
    proof_steps,
)

# --- the simulated world (real seconds; divided by --scale) ------------------------------------------

STARTUP_S = 5.0
"""Starting Isabelle (the server process)."""
SESSION_START_S = 10.0
"""`session_start`: loading the HOL / Complex_Main heap."""
BASE_S = 0.5
"""Every theory check: reading and processing the theory header and statement."""
PER_STEP_S = 0.4
"""Every proof method run (up to the first that fails)."""
SLEDGEHAMMER_S = 20.0
"""One Sledgehammer run."""
MODEL_S = 8.0
"""One `complete` call of the model (a batch, whatever its size)."""

EARLY = 3
"""The first EARLY heuristics (`by auto`, `by simp`, `by blast`) are the early ones."""
GAP_KINDS = ("early", "late", "sledgehammer", "none")
NAME_WIDTH = 4
NAME = re.compile(r"informal_sim_\d{" + str(NAME_WIDTH) + "}")


@dataclass(frozen=True)
class SimProblem:
    problem: Problem
    sketch: str
    gap_kinds: tuple[str, ...]
    script: ProblemScript
    final_rejected: bool
    """Every gap closes on its own but the whole proof is rejected."""


def _method(heuristic: str) -> str:
    return heuristic.removeprefix("by ").strip()


def make_world(count: int, seed: int) -> list[SimProblem]:
    """`count` problems; the same seed gives the same problems, sketches and facts."""
    rng = random.Random(seed)
    heuristics = DEFAULT_HEURISTICS
    world: list[SimProblem] = []
    for number in range(count):
        name = f"informal_sim_{number:0{NAME_WIDTH}d}"
        gaps = rng.randint(2, 4)
        closable = rng.random() < 0.36
        kinds = [rng.choices(GAP_KINDS[:3], weights=(5, 3, 2))[0] for _ in range(gaps)]
        if not closable:  # one or two gaps that nothing closes
            for index in rng.sample(range(gaps), k=min(gaps, rng.choice((1, 1, 2)))):
                kinds[index] = "none"
        steps: list[Step] = []
        sledgehammer: dict[str, str] = {}
        lines = ["", "proof -"]
        for index, kind in enumerate(kinds):
            claim = f"{name}_claim_{index} x = {index}"
            lines.append(f'  have h{index}: "{claim}" sledgehammer')
            if kind in ("early", "late"):
                first = rng.randrange(EARLY) if kind == "early" else rng.randrange(EARLY, len(heuristics))
                steps.append(Step(_method(heuristics[first]), claim))
                if first + 1 < len(heuristics) and rng.random() < 0.5:  # a later heuristic works too
                    steps.append(Step(_method(heuristics[rng.randrange(first + 1, len(heuristics))]), claim))
            elif kind == "sledgehammer":
                found = f"(metis {name}_lemma_{index})"
                sledgehammer[claim] = found
                steps.append(Step(found, claim))
            elif rng.random() < 0.5:  # a suggestion that fails to reconstruct
                sledgehammer[claim] = f"(smt (verit) {name}_bogus_{index})"
        final = f"(simp add: {' '.join(f'h{i}' for i in range(gaps))})"
        steps.append(Step(final, None))
        lines += [f"  show ?thesis by {final}", "qed"]
        problem = Problem(
            name=name,
            header=f"theory {name} imports Complex_Main\nbegin\n\n",
            formal_statement=f'theorem {name}: "{name}_goal x"',
            language=Language.ISABELLE,
            informal_statement=f"Show the simulated fact number {number}.",
            informal_proof=f"It follows from {gaps} simulated facts.",
        )
        final_rejected = closable and rng.random() < 0.08
        world.append(
            SimProblem(
                problem, "\n".join(lines), tuple(kinds), ProblemScript(name, steps, sledgehammer), final_rejected
            )
        )
    return world


def make_script(world: Sequence[SimProblem], scale: float) -> Script:
    latency = Latency(
        startup_s=0.0,  # paid by the client side: see `start_isabelle`
        session_start_s=SESSION_START_S / scale,
        per_step_s=PER_STEP_S / scale,
        sledgehammer_s=SLEDGEHAMMER_S / scale,
        base_s=BASE_S / scale,
    )
    rejected = {sim.problem.name for sim in world if sim.final_rejected}

    def verdict(text: str) -> Verdict | None:
        # The whole proof (no gap, no sorry) of a `final_rejected` problem fails at its last step.
        found = NAME.search(text[text.find("theorem") :])
        if found is None or found[0] not in rejected or "sorry" in text or "sledgehammer" in text:
            return None
        steps = proof_steps(text)
        delay = latency.base_s + latency.per_step_s * len(steps)
        line = steps[-1][2] if steps else 0
        return Verdict("error", (f"Failed to finish proof (line {line})",), delay_s=delay, line=line)

    return Script(problems=[sim.script for sim in world], unknown="error", latency=latency, verdict=verdict)


class ScriptedGenerator:
    """Returns each problem's sketch for its prompt (found by the problem's name); each call takes `latency_s`."""

    def __init__(self, sketches: dict[str, str], latency_s: float) -> None:
        self.sketches = sketches
        self.latency_s = latency_s
        self.calls = 0

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        self.calls += 1
        await asyncio.sleep(self.latency_s)
        out: list[list[Completion]] = []
        for request in requests:
            names = NAME.findall(request.prompt)
            text = self.sketches[names[-1]] if names else "\nproof -\n  show ?thesis sorry\nqed"
            out.append([Completion(text, (-0.1,) * 64, FinishReason.STOP)] * request.n)
        return out

    async def close(self) -> None:
        return None


# --- the server: one stand-in in its own process per side ------------------------------------------


async def spawn_server(args: argparse.Namespace) -> tuple[asyncio.subprocess.Process, ServerInfo]:
    """A stand-in server process (this file with `--serve`) holding the same script; its address."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    argv += ["--problems", str(args.problems), "--seed", str(args.seed), "--scale", repr(args.scale)]
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60.0)).decode()
    match = SERVER_LINE.search(line)
    if match is None:
        process.kill()
        raise RuntimeError(f"the stand-in server printed no address line: {line!r}")
    return process, ServerInfo(match["name"], match["host"], int(match["port"]), match["password"])


async def stop_server(process: asyncio.subprocess.Process, server: ServerInfo) -> None:
    client = await IsabelleClient.connect(server.host, server.port, server.password)
    try:
        await client.command("shutdown", timeout=10.0)
    finally:
        await client.close()
    try:
        await asyncio.wait_for(process.wait(), 10.0)
    except TimeoutError:
        process.kill()
        await process.wait()


async def serve(args: argparse.Namespace) -> int:
    server = IsabelleStandIn(make_script(make_world(args.problems, args.seed), args.scale))
    await server.start()
    print(server.info_line, flush=True)
    await server.stopped.wait()
    return 0


async def start_isabelle(scale: float) -> None:
    """Starting Isabelle's process (the stand-in server already runs; its start-up is paid here)."""
    await asyncio.sleep(STARTUP_S / scale)


def checker_for(server: ServerInfo, sessions: int) -> IsabelleChecker:
    return IsabelleChecker(
        IsabelleConfig(host=server.host, port=server.port, password=server.password, pool_size=sessions)
    )


# --- the reference: Llemma's sequential checker --------------------------------------------------------


def _theory(problem: Problem, sketch: str) -> str:
    """Header, statement, the model's proof, `end`: the theory the harness checks."""
    body = sketch.rstrip()
    if body and not body[0].isspace():
        body = "\n" + body
    return f"{problem.header}{problem.formal_statement}{body}\n\nend\n"


def _fill(text: str, spans: Sequence[tuple[int, int]], fills: Sequence[str]) -> str:
    for (start, end), fill in sorted(zip(spans, fills, strict=True), reverse=True):
        text = text[:start] + fill + text[end:]
    return text


@dataclass
class ReferenceOutcome:
    proved: bool
    closings: tuple[str | None, ...]
    checks: int


async def reference_one(
    server: ServerInfo, scale: float, problem: Problem, sketch: str, heuristics: Sequence[str], config: InformalConfig
) -> ReferenceOutcome:
    """One problem as the Llemma harness checks it: start Isabelle, fill the gaps in order, check, kill."""
    text = _theory(problem, sketch)
    header = len(problem.header)
    spans = [(m.start(), m.end()) for m in GAP.finditer(text) if m.start() >= header]
    # (the sketches here hold no comments or strings with the word in them; the harness did not mask either)
    closings: list[str | None] = [None] * len(spans)
    checks = 0
    await start_isabelle(scale)  # start-up, paid per problem
    checker = checker_for(server, 1)
    await checker.start()  # session_start, paid per problem
    try:

        async def works(index: int, candidate: str, timeout: float) -> tuple[bool, tuple[str, ...]]:
            nonlocal checks
            fills = [closings[i] if i < index else candidate if i == index else "sorry" for i in range(len(spans))]
            checks += 1
            result = await checker.check_theory(
                _fill(text, spans, fills),
                name_hint=problem.name,
                timeout=timeout,  # type: ignore[arg-type]
            )
            return result.ok and not result.errors and not result.timed_out, tuple(result.messages)

        for index in range(len(spans)):
            for heuristic in heuristics:
                if (await works(index, heuristic, config.heuristic_timeout_s))[0]:
                    closings[index] = heuristic
                    break
            if closings[index] is None and config.sledgehammer:
                _, messages = await works(index, "sledgehammer sorry", config.sledgehammer_timeout_s)
                suggestions = dict.fromkeys(f[1].strip() for m in messages for f in TRY_THIS.finditer(m))
                for suggestion in suggestions:
                    if (await works(index, suggestion, config.heuristic_timeout_s))[0]:
                        closings[index] = suggestion
                        break
            if closings[index] is None:
                return ReferenceOutcome(False, tuple(closings), checks)
        checks += 1
        verdict = await checker.verify_theory(_fill(text, spans, closings), config.verify_timeout_s)  # type: ignore[arg-type]
        return ReferenceOutcome(verdict.ok, tuple(closings), checks)
    finally:
        await checker.close()  # kill every Isabelle process after each proof (its session ends)


async def run_reference(
    world: Sequence[SimProblem], server: ServerInfo, config: InformalConfig, scale: float
) -> tuple[dict[str, ReferenceOutcome], float]:
    started = time.monotonic()
    generator = ScriptedGenerator({sim.problem.name: sim.sketch for sim in world}, MODEL_S / scale)
    # The harness generates every sketch first, offline, in one batch.
    requests = [
        TextRequest(prompt=f"... {sim.problem.formal_statement}", max_tokens=config.max_tokens, stop=config.stop)
        for sim in world
    ]
    sketches = [c[0].text for c in await generator.complete(requests)]
    outcomes: dict[str, ReferenceOutcome] = {}
    for sim, sketch in zip(world, sketches, strict=True):
        outcomes[sim.problem.name] = await reference_one(server, scale, sim.problem, sketch, config.heuristics, config)
    return outcomes, time.monotonic() - started


# --- ours ----------------------------------------------------------------------------------------------


async def run_ours(
    world: Sequence[SimProblem], server: ServerInfo, config: InformalConfig, sessions: int, scale: float
) -> tuple[dict[str, tuple[bool, tuple[str | None, ...]]], float, int]:
    started = time.monotonic()
    generator = ScriptedGenerator({sim.problem.name: sim.sketch for sim in world}, MODEL_S / scale)
    await start_isabelle(scale)  # start-up, once
    async with checker_for(server, sessions) as checker:  # `sessions` session_starts, concurrently, once
        backend = IsabelleSketchBackend(checker, config)
        results = await formalize_many([sim.problem for sim in world], generator, backend, config)
        checks = checker.checks
    outcomes: dict[str, tuple[bool, tuple[str | None, ...]]] = {}
    for result in results:
        if result.error is not None:
            raise RuntimeError(f"{result.problem_name}: {result.error}")
        attempt = result.attempts[0]
        outcomes[result.problem_name] = (result.proved, tuple(gap.closing for gap in attempt.gaps))
    return outcomes, time.monotonic() - started, checks


async def main_async(args: argparse.Namespace) -> int:
    if args.serve:
        return await serve(args)
    world = make_world(args.problems, args.seed)
    config = InformalConfig(
        attempts=1,
        max_concurrent_problems=args.problem_concurrency or 4 * args.sessions,
        max_concurrent_gaps=8,
    )
    kinds = [kind for sim in world for kind in sim.gap_kinds]
    print(
        f"{len(world)} problems, {len(kinds)} gaps "
        + ", ".join(f"{kind} {kinds.count(kind)}" for kind in GAP_KINDS)
        + f"; {sum(sim.final_rejected for sim in world)} rejected by the final check; scale 1/{args.scale:g}",
        flush=True,
    )
    process, server = await spawn_server(args)
    try:
        ours, ours_s, ours_checks = await run_ours(world, server, config, args.sessions, args.scale)
    finally:
        await stop_server(process, server)
    print(
        f"ours:      {ours_s:7.2f} s wall ({ours_s * args.scale / 3600:5.2f} h simulated), "
        f"{args.sessions} sessions, {ours_checks} theory checks, proved {sum(p for p, _ in ours.values())}",
        flush=True,
    )
    process, server = await spawn_server(args)
    try:
        reference, reference_s = await run_reference(world, server, config, args.scale)
    finally:
        await stop_server(process, server)
    print(
        f"reference: {reference_s:7.2f} s wall ({reference_s * args.scale / 3600:5.2f} h simulated), "
        f"1 process per problem, {sum(r.checks for r in reference.values())} theory checks, "
        f"proved {sum(r.proved for r in reference.values())}",
        flush=True,
    )
    mismatches = []
    for sim in world:
        name = sim.problem.name
        proved, closings = ours[name]
        ref = reference[name]
        if proved != ref.proved:
            mismatches.append(f"{name}: ours proved={proved}, reference proved={ref.proved} (gaps {sim.gap_kinds})")
        elif ref.proved and closings != ref.closings:
            mismatches.append(f"{name}: closings differ: ours {closings}, reference {ref.closings}")
    expected = sum(all(k != "none" for k in sim.gap_kinds) and not sim.final_rejected for sim in world)
    proved_ours = sum(p for p, _ in ours.values())
    proved_reference = sum(r.proved for r in reference.values())
    if proved_reference != expected:
        mismatches.append(f"the reference proved {proved_reference}, the world allows {expected}")
    for line in mismatches:
        print(f"MISMATCH {line}")
    speedup = reference_s / ours_s
    print(f"informal_speedup={speedup:.2f} proved_ours={proved_ours} proved_reference={proved_reference}")
    return 1 if mismatches else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--problems", type=int, default=244, help="simulated problems (default 244)")
    parser.add_argument("--sessions", type=int, default=8, help="our checker's Isabelle sessions (default 8)")
    parser.add_argument("--scale", type=float, default=100.0, help="every latency is divided by this (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated problems (default 0)")
    parser.add_argument(
        "--problem-concurrency", type=int, default=0, help="our problems in flight (default: 4 x sessions)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the stand-in server process
    args = parser.parse_args(argv)
    if args.problems < 1 or args.sessions < 1 or args.scale <= 0 or args.seed < 0 or args.problem_concurrency < 0:
        parser.error("--problems and --sessions must be >= 1, --scale > 0, --seed and --problem-concurrency >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())

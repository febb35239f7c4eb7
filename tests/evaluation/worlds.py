"""A small scripted miniF2F: theorems with real miniF2F-style names, some provable, over one env and generator."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from lean_env.types import Problem, ProofClosed, TacticError, TacticErrorKind
from prover.minif2f.dataset import category_of
from tests.stand_ins.scripted import Crash, Script, ScriptedEnv, ScriptedGenerator, Slow

HEADER = "import Mathlib\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"

NAMES = (
    "mathd_algebra_10",
    "mathd_algebra_11",
    "mathd_numbertheory_3",
    "amc12a_2019_p21",
    "aime_1983_p1",
    "imo_1959_p1",
    "induction_sum_odd",
    "algebra_sqineq_at2malt1",
    "numbertheory_2dvd4expn",
    "mathd_numbertheory_5",
)


def statement(name: str) -> str:
    return f"theorem {name} (n : ℕ) (h₀ : n = 1) : n + 0 = 1 := by"


def problem(name: str, split: str = "") -> Problem:
    return Problem(
        name=name, header=HEADER, formal_statement=statement(name), split=split, category=category_of(name).value
    )


def problems(names: Iterable[str], split: str = "test") -> list[Problem]:
    return [problem(name, split) for name in names]


def script_for(name: str, provable: bool, crash: bool = False, tactic_latency: float = 0.0) -> tuple[str, Script]:
    """Provable: `simp` then `linarith` (two expansions); unprovable: every tactic fails."""
    root = f"{name}: n : ℕ ⊢ n + 0 = 1"
    step = f"{name}: ⊢ 1 = 1"
    error = TacticError(TacticErrorKind.LEAN_ERROR, "linarith failed")

    def slow(effect: str | ProofClosed | TacticError) -> str | ProofClosed | TacticError | Slow:
        return Slow(tactic_latency, effect) if tactic_latency > 0 else effect

    if crash:
        return root, {root: {"simp": Crash("REPL died")}}
    if provable:
        return root, {root: {"simp": slow(step), "ring": slow(error)}, step: {"linarith": slow(ProofClosed())}}
    return root, {root: {"simp": slow(error), "ring": slow(error)}}


def build_scripts(
    provable: Iterable[str],
    names: Iterable[str] = NAMES,
    *,
    crash: Iterable[str] = (),
    tactic_latency: float = 0.0,
) -> dict[str, tuple[str, Script]]:
    proved = set(provable)
    crashing = set(crash)
    return {name: script_for(name, name in proved, name in crashing, tactic_latency) for name in names}


def scripted_env(
    scripts: dict[str, tuple[str, Script]], cls: type[ScriptedEnv] = ScriptedEnv, **kw: object
) -> ScriptedEnv:
    first = next(iter(scripts))
    return cls(scripts[first][1], scripts[first][0], scripts=scripts, **kw)  # type: ignore[arg-type]


def scripted_generator(scripts: dict[str, tuple[str, Script]], latency: float = 0.0) -> ScriptedGenerator:
    table: dict[str, list[tuple[str, float, int]]] = {}
    for _, script in scripts.values():
        for state, tactics in script.items():
            table[state] = [(tactic, -1.0 - index, 1) for index, tactic in enumerate(tactics)]
    return ScriptedGenerator(table, latency=latency)


def world(
    provable: Iterable[str],
    names: Iterable[str] = NAMES,
    *,
    crash: Iterable[str] = (),
    generator_latency: float = 0.0,
    tactic_latency: float = 0.0,
) -> tuple[ScriptedEnv, ScriptedGenerator]:
    """A scripted env and generator over `names`; `provable` ones have a two-tactic proof."""
    scripts = build_scripts(provable, names, crash=crash, tactic_latency=tactic_latency)
    return scripted_env(scripts), scripted_generator(scripts, generator_latency)


def write_jsonl(path: Path, names: Iterable[str], split: str = "test") -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for name in names:
            record = {"name": name, "split": split, "header": HEADER, "formal_statement": statement(name)}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path

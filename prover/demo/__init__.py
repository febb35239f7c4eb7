"""A small world to run the whole product in without Lean or a model: `prover demo`.

Four miniF2F-style problems, the REPL stand-in (`prover/demo/fake_repl.py`, run as a real REPL
process by the real client and pool, speaking the real wire format) driven by a script written here,
and `ScriptedText`, an in-process `TextGenerator` that answers the real tactic prompt from a table,
as a model would. Everything else is the product itself: settings, the evaluation runner, the
search, the whole-file re-check with its axiom probe, the results file and the report.

The world: one problem is proved in two steps, one in one step, one has no proof (every tactic
fails), and one "proof" closes every goal step by step but leans on `Lean.ofReduceBool`, a
non-standard axiom, so the re-check rejects it. The model always proposes a failing tactic first.
"""

from __future__ import annotations

import itertools
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prover.demo import fake_repl
from prover.models.text import Completion, FinishReason, TextRequest

HEADER = "import Mathlib\n\nset_option maxHeartbeats 0\n\nopen BigOperators Real Nat Topology Rat\n\n"

STATEMENTS: dict[str, str] = {
    "mathd_algebra_1": "theorem mathd_algebra_1 (x : ℝ) (h₀ : 2 * x = 4) : x = 2 := by",
    "mathd_numbertheory_2": "theorem mathd_numbertheory_2 : (29 * 79 + 31 * 81) % 10 = 2 := by",
    "amc12a_2000_p3": "theorem amc12a_2000_p3 (a b : ℕ) (h : a < b) : a ≠ b := by",
    "imo_1959_p1": "theorem imo_1959_p1 (n : ℕ) (h₀ : 0 < n) : Nat.gcd (21 * n + 4) (14 * n + 3) = 1 := by",
}
PROOFS: dict[str, list[str] | None] = {
    "mathd_algebra_1": ["field_simp at h₀", "linarith"],
    "mathd_numbertheory_2": ["norm_num"],
    "amc12a_2000_p3": None,  # no proof in the script: every tactic fails
    "imo_1959_p1": ["exact Nat.gcd_rec _ _ ▸ by simp"],  # closes the goal, but with a non-standard axiom
}
CHEAT = "imo_1959_p1"
"""The problem whose step-by-step proof the whole-file re-check must reject."""
FAILING_TACTIC = "nlinarith"

Row = Sequence[tuple[str, float]]
"""One scripted completion: (token text, log-prob) pairs; the last token completes the stop string."""


@dataclass(frozen=True)
class World:
    """Where `write_world` put the demo's inputs."""

    dataset: Path
    """The problems, one JSON object a line (`prover eval jsonl` reads it)."""
    script: Path
    """The REPL stand-in's script."""
    table: Path
    """The model stand-in's table (prompt key -> completions)."""

    def repl_argv(self) -> list[str]:
        """The argv that starts one REPL stand-in process (`lean.repl.command`)."""
        return [sys.executable, "-S", str(Path(fake_repl.__file__).resolve()), "--script", str(self.script)]

    def repl_command(self) -> str:
        """The same as one `--repl-command` (quoted like a shell line)."""
        return shlex.join(self.repl_argv())


def _query_key(state: str) -> str:
    # The query block of the Llemma prompt; unique to the state being asked about.
    return f"---\n{state}\n---\nNext tactic:"


def build_world() -> tuple[list[fake_repl.ScriptTheorem], dict[str, list[list[tuple[str, float]]]]]:
    """The scripted theorems of the REPL stand-in and the model's completion table."""
    theorems = []
    table: dict[str, list[list[tuple[str, float]]]] = {}
    for name, statement in STATEMENTS.items():
        closing = {"goals": [], "axioms": ["propext", "Lean.ofReduceBool"]} if name == CHEAT else None
        theorem = fake_repl.linear_theorem(
            statement, PROOFS[name], dead_ends={FAILING_TACTIC: {"error": "linarith failed"}}, closing=closing
        )
        theorems.append(theorem)
        for state, tactics in theorem.states.items():
            # The model proposes the failing tactic first (higher score), then the scripted ones.
            completions = [[(FAILING_TACTIC, -0.05), ("\n---", -0.01)]]
            completions += [[(tactic, -0.5), ("\n---", -0.01)] for tactic in tactics if tactic != FAILING_TACTIC]
            table[_query_key(state)] = completions
    # Deeper states first: the first key found in the prompt answers, and a deeper state's prompt
    # contains the shallower state's text.
    return theorems, dict(sorted(table.items(), key=lambda item: -item[0].count("step")))


def write_world(directory: Path) -> World:
    """Write the dataset, the REPL script and the model table under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    theorems, table = build_world()
    script = fake_repl.write_script(directory / "repl_script.json", theorems)
    dataset = directory / "problems.jsonl"
    with dataset.open("w", encoding="utf-8") as out:
        for name, statement in STATEMENTS.items():
            record = {"name": name, "split": "demo", "header": HEADER, "formal_statement": statement}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    table_path = directory / "model_table.json"
    table_path.write_text(json.dumps(table, ensure_ascii=False, indent=1), encoding="utf-8")
    return World(dataset=dataset, script=script, table=table_path)


class ScriptedText:
    """A `TextGenerator` answering from a table: the first key found in a prompt gives its completions.

    A sampling request gets exactly `n` completions (the table's, cycled); beam search at most `n`;
    a prompt matching no key gets `n` empty completions that ended by EOS.
    """

    def __init__(self, table: Mapping[str, Sequence[Row]]) -> None:
        self.table = table
        self.requests = 0

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        self.requests += len(requests)
        return [self._complete(request) for request in requests]

    def _complete(self, request: TextRequest) -> list[Completion]:
        rows = next((rows for key, rows in self.table.items() if key in request.prompt), ())
        if not rows:
            return [Completion("", (-1.0,), FinishReason.EOS)] * (1 if request.beam_search else request.n)
        chosen = rows[: request.n] if request.beam_search else list(itertools.islice(itertools.cycle(rows), request.n))
        return [_completion(row, request.stop) for row in chosen]

    async def close(self) -> None:
        return None


def _completion(row: Row, stops: Sequence[str]) -> Completion:
    text = "".join(token for token, _ in row)
    cut = min((text.find(stop) for stop in stops if stop in text), default=-1)
    if cut >= 0:
        return Completion(text[:cut], tuple(logprob for _, logprob in row), FinishReason.STOP)
    return Completion(text, tuple(logprob for _, logprob in row), FinishReason.EOS)


def build_demo_generator(table_path: str, model: Any) -> Any:
    """`Backends.build_generator` for the demo: the real tactic prompt over `ScriptedText`."""
    from prover.models import build_generator

    table = json.loads(Path(table_path).read_text(encoding="utf-8"))
    return build_generator(model, text=ScriptedText(table))

"""Hypothesis strategies: random scripted state graphs with a known answer.

A graph has states `s0` (the root) .. `s{n-1}`; each state has a few tactics, each with one effect:
progress to any state (cycles and self-loops included), close the proof, a tactic error, or an
`Unsound` close that the whole-file re-check rejects. `has_proof` is the ground truth the search
must agree with: some sound closing tactic is reachable from the root through progress edges.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hypothesis import strategies as st

from lean_env.types import ProofClosed, TacticError, TacticErrorKind
from tests.stand_ins.scripted import Effect, Hang, Slow, Unsound

ROOT = "s0"
_ERROR_KINDS = (TacticErrorKind.LEAN_ERROR, TacticErrorKind.TIMEOUT, TacticErrorKind.USED_SORRY)


@dataclass(frozen=True)
class RandomGraph:
    script: dict[str, dict[str, Effect]]
    table: dict[str, list[tuple[str, float, int]]]
    """The generator's candidates per state: every scripted tactic, with a random log-prob and length."""

    @property
    def max_tactics(self) -> int:
        return max((len(tactics) for tactics in self.script.values()), default=1)

    def has_proof(self) -> bool:
        seen = {ROOT}
        queue = deque([ROOT])
        while queue:
            state = queue.popleft()
            for effect in self.script.get(state, {}).values():
                while isinstance(effect, Slow):
                    effect = effect.then
                if isinstance(effect, ProofClosed):
                    return True
                if isinstance(effect, str) and effect not in seen:
                    seen.add(effect)
                    queue.append(effect)
        return False


def _effect(draw: st.DrawFn, num_states: int, slow: bool) -> Effect:
    choice = draw(
        st.sampled_from(["progress"] * 5 + ["close", "error", "error", "unsound"] + (["hang"] if slow else []))
    )
    effect: Effect
    if choice == "progress":
        effect = f"s{draw(st.integers(0, num_states - 1))}"
    elif choice == "close":
        effect = ProofClosed()
    elif choice == "error":
        effect = TacticError(draw(st.sampled_from(_ERROR_KINDS)), "scripted error")
    elif choice == "hang":
        effect = Hang()
    else:
        effect = Unsound()
    if slow and draw(st.booleans()):
        # Later candidates often finish first: application order must not depend on it.
        effect = Slow(draw(st.sampled_from([0.0005, 0.001, 0.003])), effect)
    return effect


@st.composite
def random_graphs(draw: st.DrawFn, max_states: int = 8, max_tactics: int = 4, slow: bool = False) -> RandomGraph:
    """A random graph. With `slow`, some tactics take a few milliseconds and some hang until the tactic timeout."""
    num_states = draw(st.integers(1, max_states))
    script: dict[str, dict[str, Effect]] = {}
    table: dict[str, list[tuple[str, float, int]]] = {}
    for index in range(num_states):
        state = f"s{index}"
        count = draw(st.integers(0, max_tactics))
        script[state] = {}
        table[state] = []
        for number in range(count):
            tactic = f"tac{number}_{index}"
            script[state][tactic] = _effect(draw, num_states, slow)
            logprob = draw(st.floats(min_value=-8.0, max_value=0.0, allow_nan=False))
            tokens = draw(st.integers(1, 6))
            table[state].append((tactic, logprob, tokens))
    return RandomGraph(script=script, table=table)

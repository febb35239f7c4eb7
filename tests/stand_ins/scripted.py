"""Scripted stand-ins for Lean and for the model, to drive the search without either.

`ScriptedEnv` is a finite state graph: a dict from state text to {tactic: effect}. Effects are
the real outcome types (`ProofClosed()`, `TacticError(...)`), a state text (progress to that
state), or one of the injected failures below (`Crash`, `Hang`, `Slow`, `Unsound`). Its `verify`
replays the rendered proof through the same graph, the way Lean re-checks a whole file, so a
tactic marked `Unsound` closes goals step by step but is rejected by verification.

A problem named in `invalid` starts as an `InvalidStatement` (a statement Lean rejects, a value);
`start_error` makes every start raise `BackendStartError` (the backend itself is broken). `check`
reports each `sorry` of a text as a hole whose goal is the script's initial state, and a session
can be opened on any of those holes.

`ScriptedGenerator` maps state text to ranked candidates. Both count what they were asked.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lean_env.errors import BackendCrashed, BackendStartError, HoleUnavailable
from lean_env.lean_syntax import LEAN, LeanSyntax, mask
from lean_env.types import (
    CheckResult,
    Hole,
    InvalidStatement,
    LeanMessage,
    Position,
    Progress,
    ProofClosed,
    ProofState,
    Severity,
    TacticError,
    TacticErrorKind,
    TacticOutcome,
    Theorem,
    VerifyResult,
    VerifyStatus,
)
from search.types import GenerationRequest, TacticCandidate


@dataclass(frozen=True)
class Crash:
    """The backend process dies on this tactic (raises `BackendCrashed`)."""

    message: str = "scripted crash"


@dataclass(frozen=True)
class Hang:
    """The tactic never finishes: the env waits out the tactic timeout and reports TIMEOUT."""


@dataclass(frozen=True)
class Slow:
    """The tactic takes `seconds`, then has `then` as its effect."""

    seconds: float
    then: Effect


@dataclass(frozen=True)
class Unsound:
    """Closes every goal step by step, but the whole-file re-check rejects it."""

    reason: str = "declaration uses 'sorry'"


Effect = str | ProofClosed | TacticError | Crash | Hang | Slow | Unsound
Script = Mapping[str, Mapping[str, Effect]]


@dataclass
class _Counters:
    tactics: int = 0
    verifies: int = 0
    checks: int = 0
    starts: int = 0
    closes: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


class ScriptedSession:
    def __init__(self, env: ScriptedEnv, theorem: Theorem, initial: str) -> None:
        self._env = env
        self._theorem = theorem
        self._initial = ProofState.from_pp(initial)
        self.closed = False

    @property
    def theorem(self) -> Theorem:
        return self._theorem

    @property
    def initial_state(self) -> ProofState:
        return self._initial

    async def run_tactic(self, state: ProofState, tactic: str, timeout: float) -> TacticOutcome:
        if self.closed:
            raise BackendCrashed("run_tactic on a closed session")
        counters = self._env.counters
        counters.tactics += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            delay = self._env.latency(state.pp, tactic)
            if delay > 0:
                await asyncio.sleep(delay)
            effect = self._env.effect(state.pp, tactic)
            return await self._env.realise(effect, timeout)
        finally:
            counters.in_flight -= 1

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._env.counters.closes += 1


class ScriptedEnv:
    """A `LeanEnv` over a scripted state graph. `scripts` maps theorem name to (initial state, script)."""

    def __init__(
        self,
        script: Script,
        initial: str = "root",
        *,
        scripts: Mapping[str, tuple[str, Script]] | None = None,
        latency: Callable[[str, str], float] | None = None,
        start_error: str | None = None,
        invalid: Mapping[str, str] | None = None,
    ) -> None:
        self._default = (initial, script)
        self._scripts = dict(scripts or {})
        self._latency = latency
        self._start_error = start_error
        self._invalid = dict(invalid or {})
        self.counters = _Counters()
        self.sessions: list[ScriptedSession] = []

    @property
    def syntax(self) -> LeanSyntax:
        return LEAN

    def _script_for(self, theorem_name: str) -> tuple[str, Script]:
        return self._scripts.get(theorem_name, self._default)

    def latency(self, state: str, tactic: str) -> float:
        return self._latency(state, tactic) if self._latency else 0.0

    def effect(self, state: str, tactic: str) -> Effect:
        # Sessions share one env; the graph for a state is looked up across all scripts.
        for _, script in (self._default, *self._scripts.values()):
            tactics = script.get(state)
            if tactics is not None and tactic in tactics:
                return tactics[tactic]
        return TacticError(TacticErrorKind.LEAN_ERROR, f"unknown tactic {tactic!r} (scripted)")

    async def realise(self, effect: Effect, timeout: float) -> TacticOutcome:
        if isinstance(effect, str):
            return Progress(ProofState.from_pp(effect))
        if isinstance(effect, ProofClosed | TacticError):
            return effect
        if isinstance(effect, Unsound):
            return ProofClosed()
        if isinstance(effect, Crash):
            raise BackendCrashed(effect.message, stderr="scripted stderr: process exited with 137")
        if isinstance(effect, Hang):
            await asyncio.sleep(timeout)
            return TacticError(TacticErrorKind.TIMEOUT, f"tactic timed out after {timeout:g} s")
        if isinstance(effect, Slow):
            if effect.seconds >= timeout:
                await asyncio.sleep(timeout)
                return TacticError(TacticErrorKind.TIMEOUT, f"tactic timed out after {timeout:g} s")
            await asyncio.sleep(effect.seconds)
            return await self.realise(effect.then, timeout)
        raise TypeError(f"unknown scripted effect {effect!r}")

    async def start(self, theorem: Theorem, *, hole: Hole | None = None) -> ScriptedSession | InvalidStatement:
        """A session on the problem's initial state (or on `hole`'s goal); see the module docstring."""
        self.counters.starts += 1
        if self._start_error is not None:
            raise BackendStartError(self._start_error, stderr="scripted: header failed to elaborate")
        if hole is not None:
            if hole.state.handle != _SCRIPTED_HOLE:
                raise HoleUnavailable(f"hole {hole.index} does not come from ScriptedEnv.check")
            initial = hole.goal
        else:
            message = self._invalid.get(theorem.name)
            if message is not None:
                return InvalidStatement(theorem.name, message)
            initial, _ = self._script_for(theorem.name)
        session = ScriptedSession(self, theorem, initial)
        self.sessions.append(session)
        return session

    async def check(self, text: str, timeout: float, *, header: str | None = None) -> CheckResult:
        """Each `sorry` of `text` (outside comments and strings) is a hole on the default initial state."""
        self.counters.checks += 1
        goal = ProofState.from_pp(self._default[0])
        holes: list[Hole] = []
        messages: list[LeanMessage] = []
        for index, found in enumerate(_SORRY.finditer(mask(text))):
            start, end = _position(text, found.start()), _position(text, found.end())
            state = ProofState(goal.pp, goal.goals, handle=_SCRIPTED_HOLE)
            holes.append(Hole(index=index, goal=goal.pp, state=state, start=start, end=end))
            messages.append(LeanMessage(Severity.WARNING, "declaration uses 'sorry'", start.line, start.column))
        return CheckResult(text, tuple(messages), tuple(holes))

    async def verify(self, theorem: Theorem, proof: str, timeout: float) -> VerifyResult:
        """Replay the rendered `by` block through the graph; valid only if it ends with every goal closed."""
        self.counters.verifies += 1
        text = LEAN.proof_file(theorem, proof)
        initial, _ = self._script_for(theorem.name)
        state = ProofState.from_pp(initial).pp
        tactics = split_rendered_proof(proof)
        for index, tactic in enumerate(tactics):
            effect = self.effect(state, tactic)
            while isinstance(effect, Slow):
                effect = effect.then
            if isinstance(effect, Unsound):
                return VerifyResult(VerifyStatus.SORRY, reason=effect.reason, checked_text=text)
            if isinstance(effect, str):
                state = ProofState.from_pp(effect).pp
                continue
            if isinstance(effect, ProofClosed) and index == len(tactics) - 1:
                return VerifyResult(VerifyStatus.VALID, checked_text=text)
            return VerifyResult(
                VerifyStatus.LEAN_ERROR, reason=f"tactic {index + 1} ({tactic!r}) fails on replay", checked_text=text
            )
        return VerifyResult(VerifyStatus.LEAN_ERROR, reason="unsolved goals", checked_text=text)

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()


_SCRIPTED_HOLE = "scripted-hole"
_SORRY = re.compile(r"(?<![\w.'!?])sorry(?![\w'!?])")


def _position(text: str, index: int) -> Position:
    return Position(text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1))


def split_rendered_proof(proof: str) -> list[str]:
    """Split a `by` block rendered by `search.render_proof` back into its tactics.

    A line indented by exactly one level starts a tactic; deeper lines continue the previous one.
    """
    lines = proof.splitlines()
    if not lines or lines[0].strip() != "by":
        raise ValueError(f"not a rendered by-block: {proof!r}")
    tactics: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("  ") and not line.startswith("   "):
            tactics.append([line[2:]])
        elif tactics:
            tactics[-1].append(line[2:] if line.startswith("  ") else line)
    return ["\n".join(parts) for parts in tactics]


@dataclass
class ScriptedGenerator:
    """A `TacticGenerator` over a table: state text -> [(tactic, summed logprob, num_tokens)].

    States not in the table get no candidates. `latency` is awaited once per `generate` call;
    `fail_with` makes every call raise it.
    """

    table: Mapping[str, Sequence[tuple[str, float, int]]]
    latency: float = 0.0
    fail_with: Exception | None = None
    calls: int = 0
    requests: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]:
        self.calls += 1
        self.requests += len(requests)
        self.batch_sizes.append(len(requests))
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self.fail_with is not None:
            raise self.fail_with
        out: list[list[TacticCandidate]] = []
        for request in requests:
            rows = self.table.get(request.state.pp, ())
            ranked = sorted(rows, key=lambda row: -row[1] / max(row[2], 1))
            out.append(
                [TacticCandidate(text, logprob, tokens) for text, logprob, tokens in ranked[: request.num_samples]]
            )
        return out

    async def close(self) -> None:
        return None


def uniform_candidates(script: Script, logprob: float = -1.0) -> dict[str, list[tuple[str, float, int]]]:
    """A generator table proposing every scripted tactic of every state with the same score."""
    return {state: [(tactic, logprob, 1) for tactic in tactics] for state, tactics in script.items()}


def make_theorem(name: str = "t") -> Theorem:
    return Theorem(name=name, header="", formal_statement=f"theorem {name} : True := by")

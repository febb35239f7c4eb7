"""The pipeline over a scripted model and a scripted backend: order, concurrency, stopping, seeds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from lean_env.types import Language, Problem, VerifyResult, VerifyStatus
from prover.informal.events import AttemptFinished, AttemptStarted, DraftWritten, GapClosed
from prover.informal.pipeline import InformalConfig, formalize, formalize_many
from prover.informal.types import Gap, GapMethod, GapOutcome, SketchRejected
from prover.models.base import GenerationError
from prover.models.text import Completion, FinishReason, TextRequest

SECRET = "REFERENCE-PROOF-MUST-NOT-LEAK"


@dataclass
class ScriptedText:
    """Answers sketch prompts with `sketches[k]` for the k-th sketch request, drafts with `draft`."""

    sketches: Sequence[str]
    draft: str = "the model's draft"
    latency: float = 0.0
    requests: list[TextRequest] = field(default_factory=list)
    sketch_calls: int = 0

    async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
        out = []
        for request in requests:
            self.requests.append(request)
            await asyncio.sleep(self.latency)
            if request.prompt.endswith("### Solution\n\n"):
                text = self.draft
            else:
                # The attempt number is recoverable from the seed: greedy is attempt 0.
                number = 0 if request.seed is None else request.seed
                text = self.sketches[number % len(self.sketches)]
                self.sketch_calls += 1
            out.append([Completion(text, (-0.1,), FinishReason.STOP)])
        return out

    async def close(self) -> None:
        return None


@dataclass
class ScriptedBackend:
    """A sketch `gaps:N:verdict` has N gaps; `bad` is rejected; gap delays measure concurrency."""

    gap_delay: float = 0.05
    open_gaps: frozenset[str] = frozenset()
    in_flight: int = 0
    max_in_flight: int = 0
    cancelled: int = 0
    final_checks: list[str] = field(default_factory=list)

    @property
    def language(self) -> str:
        return "lean4"

    def full_text(self, problem: Problem, sketch: str) -> str:
        return sketch

    async def gaps(self, problem: Problem, sketch: str) -> Sequence[Gap]:
        if sketch.startswith("bad"):
            raise SketchRejected("scripted: Lean error")
        count = int(sketch.split(":")[1])
        return [Gap(index=i, start=i, end=i + 1) for i in range(count)]

    async def close_gap(self, problem: Problem, sketch: str, gap: Gap) -> GapOutcome:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            key = f"{sketch}#{gap.index}"
            await asyncio.sleep(self.gap_delay * (3 if key in self.open_gaps else 1))
            if key in self.open_gaps:
                return GapOutcome(gap.index, GapMethod.OPEN, None)
            return GapOutcome(gap.index, GapMethod.AUTOMATION, f"tac{gap.index}")
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    def assemble(self, problem: Problem, sketch: str, gaps: Sequence[Gap], outcomes: Sequence[GapOutcome]) -> str:
        return sketch + "|" + ",".join(o.closing or "sorry" for o in outcomes)

    async def final_check(self, problem: Problem, text: str) -> VerifyResult:
        self.final_checks.append(text)
        if text.split("|")[0].endswith(":ok"):
            return VerifyResult(VerifyStatus.VALID, checked_text=text)
        return VerifyResult(VerifyStatus.LEAN_ERROR, reason="scripted rejection", checked_text=text)

    async def close(self) -> None:
        return None


def problem(name: str = "p", informal_proof: str | None = "the given proof") -> Problem:
    return Problem(
        name=name,
        header="import Mathlib\n",
        formal_statement=f"theorem {name} : 1 + 1 = 2 := by",
        language=Language.LEAN4,
        informal_statement="Show that 1 + 1 = 2.",
        informal_proof=informal_proof,
    )


async def test_gaps_of_a_sketch_are_worked_on_concurrently_and_the_proof_verifies() -> None:
    text, backend = ScriptedText(["gaps:4:ok"]), ScriptedBackend()
    events: list[object] = []
    result = await formalize(problem(), text, backend, InformalConfig(attempts=1), events=events.append)
    assert result.proved and result.proof == "gaps:4:ok|tac0,tac1,tac2,tac3"
    assert backend.max_in_flight == 4
    assert [type(e) for e in events].count(GapClosed) == 4
    (attempt,) = result.attempts
    assert attempt.number == 0 and attempt.verdict is not None and attempt.verdict.ok
    assert isinstance(events[-2], AttemptFinished)


async def test_gap_concurrency_is_bounded() -> None:
    backend = ScriptedBackend()
    await formalize(problem(), ScriptedText(["gaps:6:ok"]), backend, InformalConfig(max_concurrent_gaps=2))
    assert backend.max_in_flight == 2


async def test_attempt_zero_is_greedy_and_later_attempts_sample_with_their_seeds() -> None:
    text = ScriptedText(["gaps:1:no"])
    config = InformalConfig(attempts=4, temperature=0.7, seed=100, max_concurrent_sketches=1)
    result = await formalize(problem(), text, ScriptedBackend(), config)
    assert not result.proved and [a.number for a in result.attempts] == [0, 1, 2, 3]
    greedy, *sampled = text.requests
    assert greedy.temperature == 0 and greedy.seed is None
    assert [(r.temperature, r.seed) for r in sampled] == [(0.7, 101), (0.7, 102), (0.7, 103)]
    assert all(r.max_tokens == 1024 and r.stop == ("\n\n\n",) for r in text.requests)
    assert all("final check rejected" in (a.failure or "") for a in result.attempts)


async def test_sketches_run_concurrently_and_the_first_verified_one_wins() -> None:
    # Attempt 0 is slow to fail (an open gap that takes 3x as long); attempt 1 verifies fast.
    text = ScriptedText(["gaps:2:no", "gaps:1:ok", "gaps:1:ok"])  # attempt k gets sketch k
    backend = ScriptedBackend(open_gaps=frozenset({"gaps:2:no#0"}))
    config = InformalConfig(attempts=3, seed=0, max_concurrent_sketches=3)
    result = await formalize(problem(), text, backend, config)
    assert result.proved
    winner = next(a for a in result.attempts if a.verified)
    assert winner.number in (1, 2)
    # Attempt 0 was still working on its gaps when a later one verified: it was cancelled, and says so.
    first = result.attempts[0]
    assert first.number == 0 and not first.verified and (first.failure or "").startswith("cancelled")
    assert backend.cancelled >= 1
    assert 1 <= len(backend.final_checks) <= 2


async def test_stops_at_the_first_verified_attempt_without_starting_more() -> None:
    text = ScriptedText(["gaps:1:ok"])
    config = InformalConfig(attempts=8, max_concurrent_sketches=1)
    result = await formalize(problem(), text, ScriptedBackend(), config)
    assert result.proved and [a.number for a in result.attempts] == [0]
    assert text.sketch_calls == 1


async def test_an_open_gap_cancels_the_rest_of_its_sketch() -> None:
    backend = ScriptedBackend(gap_delay=0.05, open_gaps=frozenset({"gaps:3:ok#0"}))
    backend.gap_delay = 0.01  # gap 0 stays open after 0.03 s; the others close at 0.01 s
    result = await formalize(problem(), ScriptedText(["gaps:3:ok"]), backend, InformalConfig())
    (attempt,) = result.attempts
    assert not attempt.verified and attempt.failure == "gaps left open: [0]"
    assert backend.final_checks == []


async def test_a_rejected_sketch_is_the_attempts_failure() -> None:
    result = await formalize(problem(), ScriptedText(["bad sketch"]), ScriptedBackend(), InformalConfig())
    (attempt,) = result.attempts
    assert attempt.failure == "sketch rejected: scripted: Lean error" and attempt.gaps == ()


async def test_a_draft_is_written_only_when_the_informal_proof_is_missing() -> None:
    text = ScriptedText(["gaps:0:ok"], draft="  a drafted proof  ")
    events: list[object] = []
    result = await formalize(
        problem(informal_proof=None), text, ScriptedBackend(), InformalConfig(), events=events.append
    )
    draft_request, sketch_request = text.requests
    assert draft_request.prompt.endswith("### Problem\n\nShow that 1 + 1 = 2.\n\n### Solution\n\n")
    assert "a drafted proof *)" in sketch_request.prompt or "a drafted proof -/" in sketch_request.prompt
    assert result.attempts[0].draft == "a drafted proof"
    assert any(isinstance(e, DraftWritten) for e in events)

    given = ScriptedText(["gaps:0:ok"])
    result = await formalize(problem(), given, ScriptedBackend(), InformalConfig())
    assert len(given.requests) == 1 and "the given proof" in given.requests[0].prompt
    assert result.attempts[0].draft is None

    off = ScriptedText(["gaps:0:ok"])
    await formalize(problem(informal_proof=None), off, ScriptedBackend(), InformalConfig(draft_when_missing=False))
    assert len(off.requests) == 1


async def test_reference_proofs_never_reach_a_prompt() -> None:
    # A Problem has no field for a reference proof; a loader that put it in the name would still be caught.
    text = ScriptedText(["gaps:0:no"])
    await formalize(problem(informal_proof=None), text, ScriptedBackend(), InformalConfig(attempts=2))
    assert text.requests and all(SECRET not in r.prompt for r in text.requests)


async def test_problems_run_concurrently_and_errors_are_recorded_per_problem() -> None:
    class Failing(ScriptedText):
        async def complete(self, requests: Sequence[TextRequest]) -> list[list[Completion]]:
            if "theorem broken" in requests[0].prompt:
                raise GenerationError("server down")
            return await super().complete(requests)

    backend = ScriptedBackend(gap_delay=0.05)
    text = Failing(["gaps:2:ok"])
    problems = [problem(f"p{i}") for i in range(4)] + [problem("broken")]
    seen: list[str] = []
    results = await formalize_many(
        problems,
        text,
        backend,
        InformalConfig(max_concurrent_problems=4),
        on_result=lambda r: seen.append(r.problem_name),
    )
    assert [r.problem_name for r in results] == [p.name for p in problems]
    assert all(r.proved for r in results[:4])
    assert results[4].error == "GenerationError: server down" and results[4].attempts == ()
    assert backend.max_in_flight == 8  # 4 problems x 2 gaps at once
    assert sorted(seen) == sorted(p.name for p in problems)


async def test_events_start_with_the_attempt_and_carry_the_seed() -> None:
    events: list[object] = []
    await formalize(
        problem(),
        ScriptedText(["gaps:0:no"]),
        ScriptedBackend(),
        InformalConfig(attempts=2, max_concurrent_sketches=1),
        events=events.append,
    )
    starts = [e for e in events if isinstance(e, AttemptStarted)]
    assert [(s.number, s.sampled, s.seed) for s in starts] == [(0, False, None), (1, True, 1)]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"InformalConfig\.attempts"):
        InformalConfig(attempts=0)
    with pytest.raises(ValueError, match=r"InformalConfig\.automation"):
        InformalConfig(automation=("omega", ""))

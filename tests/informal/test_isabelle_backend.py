"""`IsabelleSketchBackend` against a fake checker with `IsabelleChecker`'s API."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from lean_env.types import Language, Problem, VerifyResult, VerifyStatus
from prover.informal.isabelle_backend import IsabelleSketchBackend, mask
from prover.informal.pipeline import DEFAULT_HEURISTICS, InformalConfig, formalize
from prover.informal.types import GapMethod
from prover.models.text import Completion, FinishReason

HEADER = "theory t imports Complex_Main begin\n\n"
STATEMENT = 'theorem t:\n  fixes x :: nat\n  shows "x + 0 = x"'
PROBLEM = Problem(name="t", header=HEADER, formal_statement=STATEMENT, language=Language.ISABELLE)
SKETCH = (
    "\nproof -\n"
    "  (* a comment mentioning sledgehammer is no gap *)\n"
    '  have c0: "x = x" sledgehammer\n'
    '  have c1: "x + 0 = x" using c0 sledgehammer\n'
    "  then show ?thesis sledgehammer\n"
    "qed\n\nend"
)


@dataclass
class Check:
    ok: bool
    errors: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    timed_out: bool = False
    seconds: float = 0.0


@dataclass
class FakeChecker:
    """Judges a variant by which method sits at each `have`/`show` line: `accepts[line_key]` is the set of
    methods that prove it (`sorry` always does). Methods later in `slow` take longer, to exercise ordering."""

    accepts: dict[str, set[str]]
    delays: dict[str, float] = field(default_factory=dict)
    suggestions: dict[str, str] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    cancelled: int = 0

    def _judge(self, text: str) -> Check:
        messages: list[str] = []
        for key, methods in self.accepts.items():
            line = next(line for line in text.splitlines() if key in line)
            method = line.split(key, 1)[1].strip()
            if method.startswith("sledgehammer sorry"):
                if key in self.suggestions:
                    messages.append(f"Try this: {self.suggestions[key]} (12 ms)")
                continue
            if method != "sorry" and method not in methods:
                return Check(False, (f"failed: {method}",))
        return Check(True, (), tuple(messages))

    async def check_theory(self, theory_text: str, *, name_hint: str, timeout: float) -> Check:
        self.texts.append(theory_text)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            delay = max((d for m, d in self.delays.items() if m in theory_text), default=0.0)
            await asyncio.sleep(delay)
            return self._judge(theory_text)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    async def verify_theory(self, theory_text: str, timeout: float) -> VerifyResult:
        if re.search(r"\b(sorry|oops|sledgehammer)\b", mask(theory_text)):
            return VerifyResult(VerifyStatus.SORRY, reason="uses sorry", checked_text=theory_text)
        judged = self._judge(theory_text)
        if judged.ok:
            return VerifyResult(VerifyStatus.VALID, checked_text=theory_text)
        return VerifyResult(VerifyStatus.LEAN_ERROR, reason=judged.errors[0], checked_text=theory_text)

    async def close(self) -> None:
        return None


KEYS = ('have c0: "x = x"', 'have c1: "x + 0 = x" using c0', "then show ?thesis")


def test_gaps_are_the_sledgehammer_steps_outside_comments_and_strings() -> None:
    backend = IsabelleSketchBackend(FakeChecker({}), InformalConfig())
    gaps = asyncio.run(backend.gaps(PROBLEM, SKETCH))
    text = backend.full_text(PROBLEM, SKETCH)
    assert len(gaps) == 3 and all(text[g.start : g.end] == "sledgehammer" for g in gaps)
    assert text.endswith("qed\n\nend\n") and text.count("\nend") == 1, "the model's own `end` is not doubled"
    assert mask('a "sledgehammer" (* (* sledgehammer *) *) \\<open>sledgehammer\\<close> b').strip().startswith("a")
    assert "sledgehammer" not in mask('"sledgehammer" (* (* x *) sledgehammer *) \\<open>sledgehammer\\<close>')


async def test_the_earliest_listed_successful_heuristic_wins_even_when_a_later_one_finishes_first() -> None:
    # `by auto` is slow but succeeds; `by simp` (listed second) succeeds at once: the harness would pick auto.
    checker = FakeChecker(
        {KEYS[0]: {"by auto", "by simp"}, KEYS[1]: {"by arith"}, KEYS[2]: {"by simp"}},
        delays={'c0: "x = x" by auto': 0.1},
    )
    backend = IsabelleSketchBackend(checker, InformalConfig())
    gaps = await backend.gaps(PROBLEM, SKETCH)
    outcome = await backend.close_gap(PROBLEM, SKETCH, gaps[0])
    assert (outcome.method, outcome.closing, outcome.tried) == (GapMethod.HEURISTIC, "by auto", ("by auto",))
    assert checker.max_in_flight == len(DEFAULT_HEURISTICS), "all heuristics are checked at once"
    # Other gaps are `sorry` in every variant.
    assert all(text.count("sorry") == 2 for text in checker.texts)
    later = await backend.close_gap(PROBLEM, SKETCH, gaps[1])
    assert later.closing == "by arith" and later.tried == DEFAULT_HEURISTICS[: DEFAULT_HEURISTICS.index("by arith") + 1]


async def test_sledgehammer_runs_when_no_heuristic_works_and_its_suggestion_is_checked() -> None:
    checker = FakeChecker(
        {KEYS[0]: {"by auto"}, KEYS[1]: {"by (metis add_0_right)"}, KEYS[2]: {"by simp"}},
        suggestions={KEYS[1]: "by (metis add_0_right)"},
    )
    backend = IsabelleSketchBackend(checker, InformalConfig())
    gaps = await backend.gaps(PROBLEM, SKETCH)
    outcome = await backend.close_gap(PROBLEM, SKETCH, gaps[1])
    assert (outcome.method, outcome.closing) == (GapMethod.SLEDGEHAMMER, "by (metis add_0_right)")
    off = await IsabelleSketchBackend(checker, InformalConfig(sledgehammer=False)).close_gap(PROBLEM, SKETCH, gaps[1])
    assert off.method is GapMethod.OPEN and off.tried == DEFAULT_HEURISTICS


async def test_the_pipeline_assembles_and_the_checker_verifies() -> None:
    checker = FakeChecker({KEYS[0]: {"by simp"}, KEYS[1]: {"by presburger"}, KEYS[2]: {"by blast"}})
    backend = IsabelleSketchBackend(checker, InformalConfig())

    class Text:
        async def complete(self, requests):  # type: ignore[no-untyped-def]
            return [[Completion(SKETCH, (-0.1,), FinishReason.STOP)] for _ in requests]

        async def close(self) -> None:
            return None

    result = await formalize(PROBLEM, Text(), backend, InformalConfig())
    assert result.proved and result.language == "isabelle"
    proof = result.proof or ""
    assert '"x = x" by simp' in proof and "using c0 by presburger" in proof and "?thesis by blast" in proof
    assert "mentioning sledgehammer" in proof, "comments are left alone"

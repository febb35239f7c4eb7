"""Draft, sketch, prove: one pipeline for Isabelle and Lean 4 over a `SketchBackend`.

For each attempt: when the problem has no informal proof, the model drafts one from the informal
statement; then it writes a sketch (a formal proof with gaps); the backend lists the gaps, every gap is
worked on concurrently, the closings are assembled into the sketch and the whole proof goes to the
backend's strongest judge. Attempt 0 decodes greedily, later ones sample with seed `config.seed + number`.
Attempts of a problem run concurrently (`max_concurrent_sketches`); the first verified one wins and the
others are cancelled. `formalize_many` runs problems concurrently over the same model and backend.

Failures of the model (`GenerationError`) or of the checker (`LeanEnvError`) raise from `formalize`;
`formalize_many` records them as the problem's `error` and goes on with the other problems.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from lean_env.errors import LeanEnvError
from lean_env.types import Problem
from prover.informal.concurrency import cancel_and_wait
from prover.informal.events import (
    AttemptFinished,
    AttemptStarted,
    DraftWritten,
    FormalizationFinished,
    FormalizationStarted,
    GapClosed,
    SketchWritten,
)
from prover.informal.prompts import PromptSet
from prover.informal.types import (
    Attempt,
    FormalizeResult,
    Gap,
    GapMethod,
    GapOutcome,
    SketchBackend,
    SketchRejected,
    Timings,
)
from prover.models.base import GenerationError
from prover.models.text import TextGenerator, TextRequest

logger = logging.getLogger(__name__)

EventListener = Callable[[object], None]

DEFAULT_AUTOMATION: tuple[str, ...] = (
    "omega",
    "linarith",
    "nlinarith",
    "positivity",
    "norm_num",
    "simp",
    "field_simp",
    "ring_nf",
    "decide",
    "aesop",
)
"""The Lean automation battery tried on every hole before the search."""

DEFAULT_HEURISTICS: tuple[str, ...] = (
    "by auto",
    "by simp",
    "by blast",
    "by fastforce",
    "by force",
    "by eval",
    "by presburger",
    "by sos",
    "by arith",
    "by linarith",
    "by (auto simp: field_simps)",
)
"""The Llemma harness's replacements for a `sledgehammer` step, in its order."""


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"InformalConfig.{name}: must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class InformalConfig:
    """Settings of the informal-to-formal pipeline and its backends. Invalid values raise `ValueError`."""

    attempts: int = 1
    """Sketches per problem: attempt 0 is greedy, later ones sample; stop at the first verified one."""
    draft_when_missing: bool = True
    """When a problem has no informal proof, the model writes one from the informal statement first."""
    max_tokens: int = 1024
    """At most this many new tokens per sketch (Llemma: 1024)."""
    draft_max_tokens: int = 1024
    """At most this many new tokens per draft."""
    stop: tuple[str, ...] = ("\n\n\n",)
    """A sketch ends at any of these (Llemma: three newlines)."""
    draft_stop: tuple[str, ...] = ("\n\n\n", "### Problem")
    """A draft ends at any of these."""
    temperature: float = 0.6
    """Temperature of the sampled attempts (attempt 0 is always greedy)."""
    top_p: float = 0.95
    """Nucleus sampling of the sampled attempts."""
    seed: int = 0
    """Attempt k > 0 samples with seed `seed + k`, so a run is reproducible."""
    max_concurrent_gaps: int = 8
    """Gaps of one sketch worked on at once."""
    max_concurrent_sketches: int = 4
    """Attempts of one problem in flight at once."""
    max_concurrent_problems: int = 8
    """Problems in flight at once in `formalize_many`."""
    hole_search_expansions: int = 32
    """Lean: expansion budget of the best-first search on one hole."""
    hole_search_wall_clock_s: float = 60.0
    """Lean: wall-clock budget of the best-first search on one hole."""
    automation: tuple[str, ...] = DEFAULT_AUTOMATION
    """Lean: the tactics tried in parallel on every hole before the search."""
    automation_timeout_s: float = 10.0
    """Lean: timeout of one automation tactic."""
    heuristics: tuple[str, ...] = DEFAULT_HEURISTICS
    """Isabelle: the replacements tried for every `sledgehammer`, preferred in this order."""
    heuristic_timeout_s: float = 30.0
    """Isabelle: timeout of checking the theory with one replacement."""
    sledgehammer: bool = True
    """Isabelle: run Sledgehammer on a gap no heuristic closes."""
    sledgehammer_timeout_s: float = 120.0
    """Isabelle: timeout of the theory check that runs Sledgehammer on one gap."""
    check_timeout_s: float = 120.0
    """Timeout of checking a sketch (Lean: to learn its holes) or a spliced variant."""
    verify_timeout_s: float = 300.0
    """Timeout of the final check of an assembled proof."""

    def __post_init__(self) -> None:
        for name in (
            "attempts",
            "max_tokens",
            "draft_max_tokens",
            "max_concurrent_gaps",
            "max_concurrent_sketches",
            "max_concurrent_problems",
            "hole_search_expansions",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"InformalConfig.{name}: must be an integer >= 1, got {value!r}")
        for name in (
            "hole_search_wall_clock_s",
            "automation_timeout_s",
            "heuristic_timeout_s",
            "sledgehammer_timeout_s",
            "check_timeout_s",
            "verify_timeout_s",
        ):
            _positive(name, getattr(self, name))
        if not isinstance(self.temperature, int | float) or self.temperature < 0:
            raise ValueError(f"InformalConfig.temperature: must be >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"InformalConfig.top_p: must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"InformalConfig.seed: must be an integer >= 0, got {self.seed!r}")
        for name in ("stop", "draft_stop", "automation", "heuristics"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
                raise ValueError(f"InformalConfig.{name}: must be a sequence of non-empty strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))


def _publish(events: EventListener | None, event: object) -> None:
    if events is None:
        return
    try:
        events(event)
    except Exception:
        logger.exception("event listener %r failed on %s", events, type(event).__name__)


class _Run:
    """One problem's attempts; holds nothing beyond this call of `formalize`."""

    def __init__(
        self,
        problem: Problem,
        text: TextGenerator,
        backend: SketchBackend,
        config: InformalConfig,
        prompts: PromptSet,
        events: EventListener | None,
    ) -> None:
        self.problem = problem
        self.text = text
        self.backend = backend
        self.config = config
        self.prompts = prompts
        self.events = events

    def _request(self, prompt: str, number: int, *, max_tokens: int, stop: tuple[str, ...]) -> TextRequest:
        if number == 0:
            return TextRequest(prompt=prompt, n=1, max_tokens=max_tokens, temperature=0.0, stop=stop)
        return TextRequest(
            prompt=prompt,
            n=1,
            max_tokens=max_tokens,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            stop=stop,
            seed=self.config.seed + number,
        )

    async def _complete(self, request: TextRequest) -> str:
        completions = await self.text.complete([request])
        if not completions or not completions[0]:
            raise GenerationError("the model returned no completion")
        return completions[0][0].text

    async def attempt(self, number: int) -> Attempt:
        problem, config = self.problem, self.config
        seed = None if number == 0 else config.seed + number
        _publish(self.events, AttemptStarted(problem.name, number, sampled=number > 0, seed=seed))
        draft_s = sketch_s = prove_s = check_s = 0.0
        draft: str | None = None
        informal_proof = problem.informal_proof or ""
        if not informal_proof.strip() and config.draft_when_missing and problem.informal_statement:
            started = time.monotonic()
            request = self._request(
                self.prompts.draft_prompt(problem), number, max_tokens=config.draft_max_tokens, stop=config.draft_stop
            )
            draft = (await self._complete(request)).strip()
            draft_s = time.monotonic() - started
            informal_proof = draft
            _publish(self.events, DraftWritten(problem.name, number, draft))
        started = time.monotonic()
        request = self._request(
            self.prompts.sketch_prompt(problem, informal_proof), number, max_tokens=config.max_tokens, stop=config.stop
        )
        sketch = await self._complete(request)
        sketch_s = time.monotonic() - started
        _publish(self.events, SketchWritten(problem.name, number, sketch))

        def finish(gaps: tuple[GapOutcome, ...], proof: str | None, verdict: object, failure: str | None) -> Attempt:
            attempt = Attempt(
                number=number,
                draft=draft,
                sketch=sketch,
                gaps=gaps,
                proof=proof,
                verdict=verdict,  # type: ignore[arg-type]
                timings=Timings(draft=draft_s, sketch=sketch_s, prove=prove_s, check=check_s),
                failure=failure,
            )
            _publish(self.events, AttemptFinished(problem.name, attempt))
            return attempt

        started = time.monotonic()
        try:
            gaps = tuple(await self.backend.gaps(problem, sketch))
        except SketchRejected as rejected:
            check_s = time.monotonic() - started
            return finish((), None, None, f"sketch rejected: {rejected.reason}")
        outcomes = await self._close_all(number, sketch, gaps)
        prove_s = time.monotonic() - started
        still_open = [outcome.index for outcome in outcomes if not outcome.closed]
        if still_open:
            return finish(outcomes, None, None, f"gaps left open: {still_open}")
        text = self.backend.assemble(problem, sketch, gaps, outcomes)
        started = time.monotonic()
        verdict = await self.backend.final_check(problem, text)
        check_s = time.monotonic() - started
        if verdict.ok:
            return finish(outcomes, text, verdict, None)
        return finish(
            outcomes, None, verdict, f"final check rejected the proof: {verdict.status.value}: {verdict.reason}"
        )

    async def _close_all(self, number: int, sketch: str, gaps: Sequence[Gap]) -> tuple[GapOutcome, ...]:
        """Work on every gap concurrently; when one stays open the others are cancelled (the sketch is lost)."""
        if not gaps:
            return ()
        limit = asyncio.Semaphore(self.config.max_concurrent_gaps)
        done: dict[int, GapOutcome] = {}

        async def one(gap: Gap) -> GapOutcome:
            async with limit:
                outcome = await self.backend.close_gap(self.problem, sketch, gap)
            done[gap.index] = outcome
            _publish(self.events, GapClosed(self.problem.name, number, outcome))
            return outcome

        tasks = [asyncio.create_task(one(gap)) for gap in gaps]
        try:
            for next_done in asyncio.as_completed(tasks):
                if not (await next_done).closed:
                    break
        finally:
            await cancel_and_wait(tasks)
        return tuple(
            done.get(
                gap.index, GapOutcome(gap.index, GapMethod.OPEN, None, tried=("cancelled: another gap stayed open",))
            )
            for gap in gaps
        )

    async def run(self) -> FormalizeResult:
        problem, config = self.problem, self.config
        started = time.monotonic()
        _publish(self.events, FormalizationStarted(problem.name, self.backend.language, config.attempts))
        limit = asyncio.Semaphore(config.max_concurrent_sketches)
        finished: dict[int, Attempt] = {}
        won = asyncio.Event()

        async def one(number: int) -> Attempt | None:
            async with limit:
                if won.is_set():
                    return None
                attempt = await self.attempt(number)
            finished[number] = attempt
            if attempt.verified:
                won.set()
            return attempt

        tasks = {number: asyncio.create_task(one(number)) for number in range(config.attempts)}
        winner: int | None = None
        try:
            for next_done in asyncio.as_completed(tasks.values()):
                attempt = await next_done
                if attempt is not None and attempt.verified:
                    winner = attempt.number
                    break
        finally:
            await cancel_and_wait(list(tasks.values()))
        attempts: list[Attempt] = []
        for number in sorted(tasks):
            if number in finished:
                attempts.append(finished[number])
            elif winner is not None and number < winner:
                attempts.append(_cancelled(number, winner))
        result = FormalizeResult(problem.name, self.backend.language, tuple(attempts), time.monotonic() - started)
        _publish(self.events, FormalizationFinished(result))
        return result


def _cancelled(number: int, winner: int) -> Attempt:
    return Attempt(
        number=number,
        draft=None,
        sketch="",
        gaps=(),
        proof=None,
        verdict=None,
        timings=Timings(),
        failure=f"cancelled: attempt {winner} verified first",
    )


async def formalize(
    problem: Problem,
    text: TextGenerator,
    backend: SketchBackend,
    config: InformalConfig,
    *,
    prompts: PromptSet | None = None,
    events: EventListener | None = None,
) -> FormalizeResult:
    """Draft (when needed), sketch, prove and check `problem` up to `config.attempts` times.

    Returns every finished attempt by number; the result is proved when one verified. Raises
    `GenerationError` or `LeanEnvError` when the model or the checker fails (infrastructure, not a fact
    about the problem).
    """
    run = _Run(problem, text, backend, config, prompts or PromptSet.default(), events)
    return await run.run()


async def formalize_many(
    problems: Sequence[Problem],
    text: TextGenerator,
    backend: SketchBackend,
    config: InformalConfig,
    *,
    prompts: PromptSet | None = None,
    events: EventListener | None = None,
    on_result: Callable[[FormalizeResult], Awaitable[None] | None] | None = None,
) -> list[FormalizeResult]:
    """`formalize` every problem, `config.max_concurrent_problems` at a time, over one model and backend.

    Results come back in the order of `problems`. A problem whose model or checker failed gets a
    result without attempts and with `error` set; the others go on. `on_result` (sync or async) is
    called with each result as it finishes, e.g. to append it to a JSONL file.
    """
    shared = prompts or PromptSet.default()
    limit = asyncio.Semaphore(config.max_concurrent_problems)

    async def one(problem: Problem) -> FormalizeResult:
        async with limit:
            started = time.monotonic()
            try:
                result = await formalize(problem, text, backend, config, prompts=shared, events=events)
            except (GenerationError, LeanEnvError) as error:
                logger.warning("formalizing %s failed: %s", problem.name, error)
                result = FormalizeResult(
                    problem.name,
                    backend.language,
                    (),
                    time.monotonic() - started,
                    error=f"{type(error).__name__}: {error}",
                )
        if on_result is not None:
            maybe = on_result(result)
            if maybe is not None:
                await maybe
        return result

    return list(await asyncio.gather(*(one(problem) for problem in problems)))

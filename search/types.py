"""Search-side vocabulary: tactic candidates, the generator protocol, search settings and results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from lean_env.types import ProofState, Theorem, VerifyResult


@dataclass(frozen=True, slots=True)
class TacticCandidate:
    """One tactic proposed by a model.

    `logprob` is the sum of the model's log-probabilities of the tactic's tokens (from the raw
    logits, not after temperature), `num_tokens` how many tokens that sum covers.
    """

    text: str
    logprob: float
    num_tokens: int

    @property
    def mean_logprob(self) -> float:
        """Llemma's candidate score: the mean token log-probability."""
        return self.logprob / max(self.num_tokens, 1)


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Ask for `num_samples` next-tactic candidates for `state` of `theorem`.

    The theorem is given so prompt formats that show the statement can use it.
    """

    state: ProofState
    num_samples: int
    theorem: Theorem | None = None
    seed: int | None = None
    """Seed for this request's sampling (a search attempt's seed); None leaves it to the generator."""

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"GenerationRequest.num_samples: must be >= 1, got {self.num_samples}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"GenerationRequest.seed: must be None or an integer >= 0, got {self.seed!r}")


@runtime_checkable
class TacticGenerator(Protocol):
    """Proposes tactics. Batched: many requests in, one candidate list per request out, same order.

    Concurrent searches share one generator; implementations may merge concurrent calls into one
    model call. Candidates within a list are unique by text and ordered best first. A failure of the
    model raises; it is never reported as an empty list.
    """

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[TacticCandidate]]: ...

    async def close(self) -> None: ...


class PriorityScheme(StrEnum):
    """How a node's priority is computed from the tactics on its path (higher is explored first)."""

    LLEMMA = "llemma"
    """Sum over the path of each tactic's mean token log-prob (wellecks/llemma_formal2formal)."""
    REPROVER = "reprover"
    """Sum over the path of each tactic's summed log-prob (lean-dojo/ReProver)."""

    def score(self, candidate: TacticCandidate) -> float:
        """What `candidate` adds to the priority of the path it extends."""
        return self.scorer()(candidate)

    def scorer(self) -> Callable[[TacticCandidate], float]:
        """`score` as a plain function of the candidate, for a caller that scores one at a time.

        The search scores only the candidates that make progress (most fail) and keeps the
        function to score the failed ones if their edges are ever built.
        """
        return _mean_logprob if self is PriorityScheme.LLEMMA else _summed_logprob

    def scores(self, candidates: Sequence[TacticCandidate]) -> list[float]:
        """`score` of each of `candidates`, in order; the search scores an expansion's candidates at once.

        One call per expansion rather than one per candidate: the rule is written once, here, and
        the search pays one method call per expansion instead of 32.
        """
        if self is PriorityScheme.LLEMMA:
            # `mean_logprob`, written out: a division by one is exact, so skipping it changes nothing.
            return [c.logprob / n if (n := c.num_tokens) > 1 else c.logprob for c in candidates]
        return [c.logprob for c in candidates]


def _mean_logprob(candidate: TacticCandidate) -> float:
    # `mean_logprob`, written out: a division by one is exact, so skipping it changes nothing.
    n = candidate.num_tokens
    return candidate.logprob / n if n > 1 else candidate.logprob


def _summed_logprob(candidate: TacticCandidate) -> float:
    return candidate.logprob


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"SearchConfig.{name}: must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Budgets and knobs of one best-first search. Defaults follow the Llemma reference runs.

    A search stops at its first verified proof, as the references do.
    """

    max_expansions: int = 100
    """Stop after this many node expansions (one generator call each)."""
    num_samples: int = 32
    """Candidates requested per expansion."""
    wall_clock_s: float = 600.0
    """Wall-clock budget of the whole search, excluding the final verification."""
    tactic_timeout_s: float = 5.0
    """Timeout of one tactic, separate from the wall-clock budget."""
    verify_timeout_s: float = 120.0
    """Timeout of the default whole-file re-check of a found proof (`LeanEnv.verify`)."""
    priority: PriorityScheme = PriorityScheme.LLEMMA
    max_concurrent_tactics: int = 8
    """How many candidates of one expansion run in Lean at once."""
    debug_invariants: bool = False
    """Check the tree's invariants after every expansion (slow; for tests and debugging)."""
    cancel_on_proof: bool = True
    """Cancel the tactics still running on Lean once a proof is found (counted in
    `SearchStats.tactics_cancelled`); False lets them finish first (for comparisons)."""
    freeze_gc: bool = True
    """Keep the garbage collector off the trees of running searches (`search.gc_freeze`); turn it
    off in a process that uses `gc.freeze()` for its own ends."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_expansions, int) or self.max_expansions < 1:
            raise ValueError(f"SearchConfig.max_expansions: must be an integer >= 1, got {self.max_expansions!r}")
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(f"SearchConfig.num_samples: must be an integer >= 1, got {self.num_samples!r}")
        if not isinstance(self.max_concurrent_tactics, int) or self.max_concurrent_tactics < 1:
            raise ValueError(
                f"SearchConfig.max_concurrent_tactics: must be an integer >= 1, got {self.max_concurrent_tactics!r}"
            )
        _positive("wall_clock_s", self.wall_clock_s)
        _positive("tactic_timeout_s", self.tactic_timeout_s)
        _positive("verify_timeout_s", self.verify_timeout_s)
        try:
            object.__setattr__(self, "priority", PriorityScheme(self.priority))
        except ValueError:
            choices = ", ".join(scheme.value for scheme in PriorityScheme)
            raise ValueError(f"SearchConfig.priority: must be one of {choices}, got {self.priority!r}") from None


class SearchStatus(StrEnum):
    PROVED = "proved"
    """A proof was found and the whole-file re-check accepted it."""
    FAILED = "failed"
    """Every reachable state was explored (or failed) without a proof."""
    BUDGET_EXHAUSTED = "budget_exhausted"
    """The expansion budget ran out."""
    TIMED_OUT = "timed_out"
    """The wall-clock budget ran out."""
    ENV_ERROR = "env_error"
    """The Lean backend or the model failed; `failure_reason` says which and why."""
    INVALID_STATEMENT = "invalid_statement"
    """The statement (or its header) does not elaborate; `failure_reason` carries Lean's message.
    A fact about the problem, not a failure of the infrastructure: recorded, never retried."""


@dataclass(frozen=True, slots=True)
class SearchStats:
    """A snapshot of one search's counters, taken at one moment; never changes afterwards.

    The search counts in private mutable counters and takes a snapshot for each `ExpansionDone`
    event, for `SearchResult.stats` and for `BestFirstSearch.stats`. Each snapshot has its own
    `errors_by_kind` dict (a fresh copy, never shared with the live counters or another snapshot),
    so a snapshot taken at expansion 3 still says 3 after the search has moved on. Do not mutate
    that dict: the dataclass is frozen, its contents are only frozen by convention.
    """

    expansions: int = 0
    nodes: int = 0
    edges: int = 0
    tactics_tried: int = 0
    duplicate_candidates: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    """Tactic errors by `TacticErrorKind` value (`unverified` counts rejected closing proofs)."""
    model_seconds: float = 0.0
    env_seconds: float = 0.0
    verify_seconds: float = 0.0
    wall_seconds: float = 0.0
    distinct_candidates: int = 0
    """Distinct tactics the generator returned (after the search's de-duplication), summed over
    expansions; with `duplicate_candidates`, every candidate it returned."""
    tactics_cancelled: int = 0
    """Tactics cancelled while running on Lean because the search ended (a proof was found) or
    its expansion failed before their outcome was needed."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProofCheck = Callable[[tuple[str, ...]], Awaitable[VerifyResult]]
"""Checks a tactic sequence that closed the search's goal step by step; the search reports a proof
only when it answers `VerifyResult.ok`. It must not raise for a bad proof (a rejection is a value);
a `LeanEnvError` it raises ends the search with `ENV_ERROR`."""


@dataclass(frozen=True, slots=True)
class RejectedProof:
    """A tactic sequence that closed every goal step by step but failed the whole-file re-check."""

    proof: str
    verify: VerifyResult


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a search reports. `proof` is set only when `status` is PROVED, which implies `verified`.

    `proof` is the backend's rendering of `tactics` (`env.syntax.render_tactics`: for Lean, a `by`
    block); for a search on a hole it is the text that closes that hole, and `tactics` is what a
    caller splices in. `stats` is the final snapshot of the counters.
    """

    theorem_name: str
    status: SearchStatus
    proof: str | None
    tactics: tuple[str, ...]
    verified: bool
    failure_reason: str | None
    stats: SearchStats
    rejected_proofs: tuple[RejectedProof, ...] = ()
    judge: str | None = None
    """The judge whose verdict accepted the proof (`lean_env.types.Judge`: `comparator` or `repl`);
    None when nothing was proved."""

    def __post_init__(self) -> None:
        if self.status is SearchStatus.PROVED and not (self.verified and self.proof):
            raise ValueError("SearchResult: status PROVED requires a verified proof")
        if self.status is not SearchStatus.PROVED and self.proof is not None:
            raise ValueError("SearchResult.proof: only a PROVED result carries a proof")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (the shape of one line of an evaluation's results file)."""
        return {
            "name": self.theorem_name,
            "status": self.status.value,
            "proved": self.status is SearchStatus.PROVED,
            "verified": self.verified,
            "proof": self.proof,
            "tactics": list(self.tactics),
            "failure_reason": self.failure_reason,
            "stats": self.stats.to_dict(),
            "rejected_proofs": [
                {"proof": r.proof, "status": r.verify.status.value, "reason": r.verify.reason, "judge": r.verify.judge}
                for r in self.rejected_proofs
            ],
            "judge": self.judge,
        }

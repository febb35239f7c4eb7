"""Best-first tactic search over any `LeanEnv`, asking any `TacticGenerator`.

One `BestFirstSearch` object is one search: build it, `await run()`, read `tree` afterwards. It
holds no state between searches, does no blocking work, and can be cancelled like any task, so
hundreds can run concurrently in one event loop over a shared generator and Lean pool.

What it adds over the Llemma reference loop: a node table keyed by state (transpositions merge),
error edges and PROVED/FAILED propagation (the search stops when the root fails), candidates of
one expansion de-duplicated and run concurrently but applied in candidate order (deterministic),
and every proof re-checked as a whole file before it is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from lean_env.errors import LeanEnvError
from lean_env.protocol import LeanEnv, ProofSession
from lean_env.types import (
    Progress,
    ProofClosed,
    TacticError,
    TacticErrorKind,
    TacticOutcome,
    Theorem,
)

from search.render import clean_tactic, normalize_tactic, render_proof
from search.tree import Node, NodeStatus, SearchTree
from search.types import (
    ExpansionEvent,
    GenerationRequest,
    RejectedProof,
    SearchConfig,
    SearchObserver,
    SearchResult,
    SearchStats,
    SearchStatus,
    TacticCandidate,
    TacticGenerator,
)

logger = logging.getLogger(__name__)


class _SearchEnded(Exception):
    """Internal: unwinds the loop with a final status."""

    def __init__(self, status: SearchStatus, reason: str | None) -> None:
        self.status = status
        self.reason = reason


class BestFirstSearch:
    """One best-first search of one theorem. Use once: `result = await BestFirstSearch(...).run()`."""

    def __init__(
        self,
        theorem: Theorem,
        env: LeanEnv,
        generator: TacticGenerator,
        config: SearchConfig,
        observer: SearchObserver | None = None,
    ) -> None:
        self.theorem = theorem
        self.env = env
        self.generator = generator
        self.config = config
        self.observer = observer
        self.stats = SearchStats()
        self.tree: SearchTree | None = None
        self._rejected: list[RejectedProof] = []
        self._proof: str | None = None
        self._proof_tactics: tuple[str, ...] = ()
        self._started = False
        self._deadline = 0.0
        self._timeout_scope: asyncio.Timeout = asyncio.timeout(None)

    async def run(self) -> SearchResult:
        """Search until the root is proved (and verified), fails, or a budget runs out.

        Tactic failures are recorded, never raised. Failures of Lean or of the model end the
        search with `ENV_ERROR` and their message. Cancelling the task closes the session and
        propagates `CancelledError`.
        """
        if self._started:
            raise RuntimeError("BestFirstSearch.run: a search object runs once; build a new one")
        self._started = True
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        try:
            status, reason = await self._run_with_session(started_at)
        finally:
            self.stats.wall_seconds = loop.time() - started_at
        return SearchResult(
            theorem_name=self.theorem.name,
            status=status,
            proof=self._proof if status is SearchStatus.PROVED else None,
            tactics=self._proof_tactics if status is SearchStatus.PROVED else (),
            verified=status is SearchStatus.PROVED,
            failure_reason=reason,
            stats=self.stats,
            rejected_proofs=tuple(self._rejected),
        )

    async def _run_with_session(self, started_at: float) -> tuple[SearchStatus, str | None]:
        loop = asyncio.get_running_loop()
        env_started = loop.time()
        try:
            session = await self.env.start(self.theorem)
        except LeanEnvError as error:
            return SearchStatus.ENV_ERROR, f"Lean backend could not start the theorem: {error}"
        finally:
            self.stats.env_seconds += loop.time() - env_started
        try:
            self.tree = SearchTree(session.initial_state)
            self.stats.nodes = 1
            return await self._loop(session, started_at)
        except _SearchEnded as ended:
            return ended.status, ended.reason
        finally:
            await asyncio.shield(session.close())

    async def _loop(self, session: ProofSession, started_at: float) -> tuple[SearchStatus, str | None]:
        assert self.tree is not None
        tree = self.tree
        loop = asyncio.get_running_loop()
        self._deadline = started_at + self.config.wall_clock_s
        while True:
            if tree.root.status is NodeStatus.PROVED:
                return SearchStatus.PROVED, None
            if tree.root.status is NodeStatus.FAILED:
                return SearchStatus.FAILED, self._failure_reason("every tactic from the root failed")
            if self.stats.expansions >= self.config.max_expansions:
                return SearchStatus.BUDGET_EXHAUSTED, self._failure_reason(
                    f"expansion budget of {self.config.max_expansions} used up"
                )
            remaining = self._deadline - loop.time()
            if remaining <= 0:
                return SearchStatus.TIMED_OUT, self._timeout_reason()
            node = tree.pop_best()
            if node is None:
                return SearchStatus.FAILED, self._failure_reason("no open state left to expand")
            self._timeout_scope = asyncio.timeout_at(self._deadline)
            try:
                async with self._timeout_scope:
                    await self._expand(session, node)
            except TimeoutError:
                if self._timeout_scope.expired():
                    return SearchStatus.TIMED_OUT, self._timeout_reason()
                raise
            if self.config.debug_invariants:
                tree.check_invariants()

    async def _expand(self, session: ProofSession, node: Node) -> None:
        assert self.tree is not None
        loop = asyncio.get_running_loop()
        self.stats.expansions += 1
        candidates = await self._generate(node)
        tasks: list[asyncio.Task[TacticOutcome]] = []
        limit = asyncio.Semaphore(self.config.max_concurrent_tactics)
        env_started = loop.time()
        try:
            for candidate in candidates:
                tasks.append(asyncio.ensure_future(self._run_limited(limit, session, node, candidate.text)))
            for candidate, task in zip(candidates, tasks, strict=True):
                outcome = await task
                self.stats.tactics_tried += 1
                await self._apply(node, candidate, outcome)
                if self.tree.root.status is NodeStatus.PROVED:
                    break
        except LeanEnvError as error:
            raise _SearchEnded(SearchStatus.ENV_ERROR, f"Lean backend failed: {error}") from error
        finally:
            for task in tasks:
                task.cancel()
            # Let cancelled tactics unwind before the next expansion reuses the session.
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            self.stats.env_seconds += loop.time() - env_started
        self.tree.mark_explored(node)
        if self.observer is not None:
            self.observer.on_expansion(
                ExpansionEvent(
                    theorem_name=self.theorem.name,
                    expansion=self.stats.expansions,
                    state=node.state,
                    candidates=len(candidates),
                    stats=self.stats,
                )
            )

    async def _generate(self, node: Node) -> list[TacticCandidate]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        request = GenerationRequest(state=node.state, num_samples=self.config.num_samples, theorem=self.theorem)
        try:
            (candidates,) = await self.generator.generate([request])
        except asyncio.CancelledError:
            # The search's own deadline arrives here as a cancellation (the scope turns it into
            # TimeoutError only on exit), so a TimeoutError raised by the generator is its failure.
            raise
        except Exception as error:
            logger.exception("tactic generator failed on %s", self.theorem.name)
            raise _SearchEnded(
                SearchStatus.ENV_ERROR, f"tactic generator failed: {type(error).__name__}: {error}"
            ) from error
        finally:
            self.stats.model_seconds += loop.time() - started
        return self._deduplicate(candidates)

    def _deduplicate(self, candidates: Sequence[TacticCandidate]) -> list[TacticCandidate]:
        seen: set[str] = set()
        unique: list[TacticCandidate] = []
        for candidate in candidates:
            text = clean_tactic(candidate.text)
            key = normalize_tactic(text)
            if not key or key in seen:
                self.stats.duplicate_candidates += 1
                continue
            seen.add(key)
            if text != candidate.text:
                candidate = TacticCandidate(text=text, logprob=candidate.logprob, num_tokens=candidate.num_tokens)
            unique.append(candidate)
        return unique

    async def _run_limited(
        self, limit: asyncio.Semaphore, session: ProofSession, node: Node, tactic: str
    ) -> TacticOutcome:
        async with limit:
            return await session.run_tactic(node.state, tactic, self.config.tactic_timeout_s)

    async def _apply(self, node: Node, candidate: TacticCandidate, outcome: TacticOutcome) -> None:
        assert self.tree is not None
        score = self.config.priority.score(candidate)
        if isinstance(outcome, Progress):
            known = len(self.tree.nodes)
            self.tree.add_progress(node, candidate, score, outcome.state)
            self.stats.nodes += len(self.tree.nodes) - known
        elif isinstance(outcome, ProofClosed):
            await self._verify_closing(node, candidate, score)
        elif isinstance(outcome, TacticError):
            self.tree.add_error(node, candidate, score, outcome)
            self._count_error(outcome.kind)
        else:  # pragma: no cover - a backend returned something outside the protocol
            raise TypeError(f"run_tactic returned {type(outcome).__name__}, not a TacticOutcome")
        self.stats.edges = self.tree.num_edges

    async def _verify_closing(self, node: Node, candidate: TacticCandidate, score: float) -> None:
        """A tactic closed every goal: re-check the whole proof before the tree may call it proved."""
        assert self.tree is not None
        tactics = [edge.tactic for edge in self.tree.path_to(node)] + [candidate.text]
        verdict_ok = await self._verify(tactics)
        if verdict_ok:
            self.tree.add_proof(node, candidate, score)
        else:
            error = TacticError(TacticErrorKind.UNVERIFIED, self._rejected[-1].verify.reason)
            self.tree.add_error(node, candidate, score, error)
            self._count_error(TacticErrorKind.UNVERIFIED)

    async def _verify(self, tactics: list[str]) -> bool:
        """Run `LeanEnv.verify` on the rendered proof; its time does not count against the wall clock."""
        loop = asyncio.get_running_loop()
        proof = render_proof(tactics)
        started = loop.time()
        scope = self._timeout_scope
        scope.reschedule(None)  # verification has its own timeout, outside the search's clock
        try:
            verdict = await self.env.verify(self.theorem, proof, self.config.verify_timeout_s)
        finally:
            elapsed = loop.time() - started
            self.stats.verify_seconds += elapsed
            self._deadline += elapsed
            with contextlib.suppress(RuntimeError):
                scope.reschedule(self._deadline)
        if verdict.ok:
            self._proof = proof
            self._proof_tactics = tuple(tactics)
            return True
        logger.warning("proof of %s rejected by verification: %s", self.theorem.name, verdict.reason)
        self._rejected.append(RejectedProof(proof=proof, verify=verdict))
        return False

    def _count_error(self, kind: TacticErrorKind) -> None:
        self.stats.errors_by_kind[kind.value] = self.stats.errors_by_kind.get(kind.value, 0) + 1

    def _failure_reason(self, base: str) -> str:
        if self._rejected:
            return f"{base}; {len(self._rejected)} proof(s) rejected by verification, last: " + (
                self._rejected[-1].verify.reason
            )
        return base

    def _timeout_reason(self) -> str:
        return self._failure_reason(f"wall-clock budget of {self.config.wall_clock_s:g} s used up")


async def best_first_search(
    theorem: Theorem,
    env: LeanEnv,
    generator: TacticGenerator,
    config: SearchConfig,
    observer: SearchObserver | None = None,
) -> SearchResult:
    """Run one best-first search; see `BestFirstSearch` for what a caller may rely on."""
    return await BestFirstSearch(theorem, env, generator, config, observer).run()

"""Best-first tactic search over any `LeanEnv`, asking any `TacticGenerator`.

One `BestFirstSearch` object is one search: build it, `await run()`, read `tree` afterwards. It
holds no state between searches, does no blocking work, and can be cancelled like any task, so
hundreds can run concurrently in one event loop over a shared generator and Lean pool.

What it adds over the Llemma reference loop: a node table keyed by state (transpositions merge),
error edges and PROVED/FAILED propagation (the search stops when the root fails), candidates of
one expansion de-duplicated and run concurrently but applied in candidate order (deterministic),
and every proof re-checked before it is reported.

The search never builds proof-assistant text: the proof it reports and the text it re-checks are
`env.syntax.render_tactics(tactics)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from lean_env.errors import LeanEnvError
from lean_env.lean_syntax import clean_tactic
from lean_env.protocol import LeanEnv, ProofSession
from lean_env.types import (
    Hole,
    InvalidStatement,
    Problem,
    Progress,
    ProofClosed,
    ProofState,
    TacticError,
    TacticErrorKind,
    TacticOutcome,
    VerifyResult,
)
from search import gc_freeze
from search.events import (
    EventListener,
    ExpansionDone,
    ProofFound,
    ProofRejected,
    SearchFinished,
    SearchStarted,
    publish,
)
from search.render import normalize_tactic
from search.tree import Node, NodeStatus, SearchTree
from search.types import (
    GenerationRequest,
    ProofCheck,
    RejectedProof,
    SearchConfig,
    SearchResult,
    SearchStats,
    SearchStatus,
    TacticCandidate,
    TacticGenerator,
)

logger = logging.getLogger(__name__)

_CANCEL_GRACE_S = 5.0
"""How long a search waits for cancelled tactics to unwind before it leaves them to finish alone."""

_SEPARATOR = "\u00a6"
"""Joins an expansion's candidate texts for the one-pass cleanliness check of `_deduplicate`: a
printable character (so a clean batch stays printable) that tactics practically never contain."""


class _SearchEnded(Exception):
    """Internal: unwinds the loop with a final status."""

    def __init__(self, status: SearchStatus, reason: str | None) -> None:
        self.status = status
        self.reason = reason


class _Counters:
    """The live, mutable counters of one search; only ever read through `snapshot`."""

    __slots__ = (
        "distinct_candidates",
        "duplicate_candidates",
        "edges",
        "env_seconds",
        "error_kinds",
        "errors",
        "expansions",
        "model_seconds",
        "nodes",
        "started",
        "tactics_cancelled",
        "tactics_tried",
        "verify_seconds",
        "wall_seconds",
    )

    def __init__(self) -> None:
        self.expansions = 0
        self.nodes = 0
        self.edges = 0
        self.tactics_tried = 0
        self.duplicate_candidates = 0
        self.distinct_candidates = 0
        self.tactics_cancelled = 0
        self.errors: Counter[TacticErrorKind] = Counter()
        """Tactic errors by kind; keyed by the enum, turned into its values only in a snapshot."""
        self.error_kinds: list[TacticErrorKind] = []
        """Kinds of errors not yet in `errors`: an expansion's are appended in one C call, and
        counted in bulk by `count_errors` (the enum's `__hash__` is Python code)."""
        self.model_seconds = 0.0
        self.env_seconds = 0.0
        self.verify_seconds = 0.0
        self.started: float | None = None
        """`time.monotonic()` when the search started; None before."""
        self.wall_seconds: float | None = None
        """Set when the search ends; until then the wall time is measured from `started`."""

    def count_errors(self) -> None:
        """Move `error_kinds` into `errors`."""
        kinds = self.error_kinds
        if kinds:
            errors = self.errors
            for kind in _ERROR_KINDS:
                found = kinds.count(kind)  # compares by identity first, in C
                if found:
                    errors[kind] += found
            kinds.clear()

    def snapshot(self) -> SearchStats:
        self.count_errors()
        wall = self.wall_seconds
        if wall is None:
            wall = 0.0 if self.started is None else time.monotonic() - self.started
        return SearchStats(
            expansions=self.expansions,
            nodes=self.nodes,
            edges=self.edges,
            tactics_tried=self.tactics_tried,
            duplicate_candidates=self.duplicate_candidates,
            errors_by_kind={kind.value: count for kind, count in self.errors.items()},
            model_seconds=self.model_seconds,
            env_seconds=self.env_seconds,
            verify_seconds=self.verify_seconds,
            wall_seconds=wall,
            distinct_candidates=self.distinct_candidates,
            tactics_cancelled=self.tactics_cancelled,
        )


class BestFirstSearch:
    """One best-first search of one goal. Use once: `result = await BestFirstSearch(...).run()`.

    The goal is `problem`'s statement, or, with `hole`, one hole of a checked text that
    `env.check` reported (`env.start(problem, hole=hole)` opens it).

    `verify` decides whether a tactic sequence that closed the goal step by step is a proof. By
    default it is `env.verify(problem, env.syntax.render_tactics(tactics), config.verify_timeout_s)`,
    the whole-file re-check of the statement. A hole search must pass its own (the informal
    pipeline's splices the tactics into the sketch and checks the whole file): the statement's
    check would judge the wrong goal, so `hole` without `verify` raises `ValueError`. Its time
    does not count against the wall clock; its timeout is its own business.

    `events` receives, in order: `SearchStarted`, one `ExpansionDone` per completed expansion,
    `ProofFound`/`ProofRejected` as closing sequences are checked (before their expansion's
    `ExpansionDone`), and `SearchFinished` with the result. A search that is cancelled, or that
    raises, publishes no `SearchFinished`; an expansion interrupted by a backend failure publishes
    no `ExpansionDone`. A listener that raises is logged and never breaks the search.
    """

    def __init__(
        self,
        problem: Problem,
        env: LeanEnv,
        generator: TacticGenerator,
        config: SearchConfig,
        *,
        hole: Hole | None = None,
        verify: ProofCheck | None = None,
        events: EventListener | None = None,
    ) -> None:
        if hole is not None and verify is None:
            raise ValueError(
                "BestFirstSearch.verify: a search on a hole needs its own check; "
                "the statement's whole-file check would judge the wrong goal"
            )
        self.problem = problem
        self.env = env
        self.generator = generator
        self.config = config
        self.hole = hole
        self.events = events
        self.tree: SearchTree | None = None
        self._check: ProofCheck = verify if verify is not None else self._verify_statement
        self._counters = _Counters()
        self._rejected: list[RejectedProof] = []
        self._proof: str | None = None
        self._proof_tactics: tuple[str, ...] = ()
        self._judge: str | None = None  # the judge of the accepting verdict
        self._started = False
        self._deadline = 0.0
        # Created when the search starts: on Python 3.11 a Timeout needs a running loop.
        self._timeout_scope: asyncio.Timeout | None = None
        self._runner: _CandidateRunner | None = None
        """The candidates of the expansion in progress."""
        self._helper_check: asyncio.Handle | None = None
        self._idle_runner: _CandidateRunner | None = None
        """A runner no helper task ever used, kept for the next expansion."""
        self._clean_texts: set[str] = set()
        """Candidate texts `_deduplicate` found clean (their own clean text and key)."""
        self._score_of = config.priority.scorer()

    @property
    def stats(self) -> SearchStats:
        """A snapshot of the counters now: while the search runs, after it raised or was cancelled."""
        return self._counters.snapshot()

    async def run(self) -> SearchResult:
        """Search until the root is proved (and verified), fails, or a budget runs out.

        Tactic failures are recorded, never raised. Failures of Lean or of the model end the
        search with `ENV_ERROR` and their message; a statement that does not elaborate ends it with
        `INVALID_STATEMENT` and Lean's message, before any expansion. Cancelling the task closes
        the session and propagates `CancelledError`.
        """
        if self._started:
            raise RuntimeError("BestFirstSearch.run: a search object runs once; build a new one")
        self._started = True
        counters = self._counters
        counters.started = time.monotonic()
        self._publish(SearchStarted(problem_name=self.problem.name, at=time.time()))
        started_at = asyncio.get_running_loop().time()
        freeze = self.config.freeze_gc
        if freeze:
            gc_freeze.enter()
        try:
            status, reason = await self._run_with_session(started_at)
        finally:
            counters.wall_seconds = time.monotonic() - counters.started
            if freeze:
                gc_freeze.leave()
        result = SearchResult(
            theorem_name=self.problem.name,
            status=status,
            proof=self._proof if status is SearchStatus.PROVED else None,
            tactics=self._proof_tactics if status is SearchStatus.PROVED else (),
            verified=status is SearchStatus.PROVED,
            failure_reason=reason,
            stats=counters.snapshot(),
            rejected_proofs=tuple(self._rejected),
            judge=self._judge if status is SearchStatus.PROVED else None,
        )
        self._publish(SearchFinished(problem_name=self.problem.name, result=result))
        return result

    def best_open(self, k: int) -> list[tuple[str, float]]:
        """The `k` best open (unexplored) states now, best first: `(pretty-printed state, priority)`.

        Higher priority is explored first. Empty before the search has opened its goal. One pass
        over the frontier: fine a few times a second (a live view), not once per expansion.
        """
        tree = self.tree
        if tree is None:
            return []
        return [(node.state.pp, priority) for node, priority in tree.best_open(k)]

    def _publish(self, event: object) -> None:
        publish(self.events, event)

    async def _open_session(self) -> ProofSession | InvalidStatement:
        loop = asyncio.get_running_loop()
        env_started = loop.time()
        try:
            if self.hole is None:
                return await self.env.start(self.problem)
            return await self.env.start(self.problem, hole=self.hole)
        finally:
            self._counters.env_seconds += loop.time() - env_started

    async def _run_with_session(self, started_at: float) -> tuple[SearchStatus, str | None]:
        try:
            opened = await self._open_session()
        except LeanEnvError as error:
            return SearchStatus.ENV_ERROR, f"Lean backend could not start the theorem: {error}"
        if isinstance(opened, InvalidStatement):
            return SearchStatus.INVALID_STATEMENT, opened.message
        session = opened
        try:
            self.tree = SearchTree(session.initial_state)
            self._counters.nodes = 1
            return await self._loop(session, started_at)
        except _SearchEnded as ended:
            return ended.status, ended.reason
        finally:
            if self._helper_check is not None:
                self._helper_check.cancel()
            await asyncio.shield(session.close())

    async def _loop(self, session: ProofSession, started_at: float) -> tuple[SearchStatus, str | None]:
        assert self.tree is not None
        tree = self.tree
        config = self.config
        counters = self._counters
        loop = asyncio.get_running_loop()
        freeze = config.freeze_gc
        self._deadline = started_at + config.wall_clock_s
        # One deadline scope for the whole loop (not one per expansion); `_run_check` moves it while
        # a proof is re-checked, since verification does not count against the wall clock.
        scope = self._timeout_scope = asyncio.timeout_at(self._deadline)
        try:
            async with scope:
                while True:
                    if tree.root.status is NodeStatus.PROVED:
                        return SearchStatus.PROVED, None
                    if tree.root.status is NodeStatus.FAILED:
                        return SearchStatus.FAILED, self._failure_reason("every tactic from the root failed")
                    if counters.expansions >= config.max_expansions:
                        return SearchStatus.BUDGET_EXHAUSTED, self._failure_reason(
                            f"expansion budget of {config.max_expansions} used up"
                        )
                    if self._deadline <= loop.time():
                        return SearchStatus.TIMED_OUT, self._timeout_reason()
                    node = tree.pop_best()
                    if node is None:
                        return SearchStatus.FAILED, self._failure_reason("no open state left to expand")
                    await self._expand(session, node)
                    if freeze:
                        gc_freeze.checkpoint(counters.expansions)
                    if config.debug_invariants:
                        tree.check_invariants()
        except TimeoutError:
            if scope.expired():
                return SearchStatus.TIMED_OUT, self._timeout_reason()
            raise

    async def _expand(self, session: ProofSession, node: Node) -> None:
        """Ask for candidates of `node`, apply them, mark it explored and publish `ExpansionDone`."""
        assert self.tree is not None
        tree = self.tree
        counters = self._counters
        counters.expansions += 1
        # The generator call is written out here, not in a coroutine of its own: one coroutine
        # fewer per expansion. Durations come from `time.monotonic`, what asyncio's loop clock
        # reads, without the method call.
        request = GenerationRequest(state=node.state, num_samples=self.config.num_samples, theorem=self.problem)
        started = time.monotonic()
        try:
            (generated,) = await self.generator.generate([request])
        except asyncio.CancelledError:
            # The search's own deadline arrives here as a cancellation (the scope turns it into
            # TimeoutError only on exit), so a TimeoutError raised by the generator is its failure.
            raise
        except Exception as error:
            # One line at the default level; the traceback with `prover -v`.
            logger.error(
                "tactic generator failed on %s: %s: %s",
                self.problem.name,
                type(error).__name__,
                error,
                exc_info=logger.isEnabledFor(logging.INFO),
            )
            raise _SearchEnded(
                SearchStatus.ENV_ERROR, f"tactic generator failed: {type(error).__name__}: {error}"
            ) from error
        finally:
            counters.model_seconds += time.monotonic() - started
        candidates = self._deduplicate(generated)
        env_started = time.monotonic()
        try:
            await self._apply_candidates(session, node, candidates)
        finally:
            counters.nodes = len(tree.nodes)
            counters.edges = tree.num_edges
            counters.env_seconds += time.monotonic() - env_started
        tree.mark_explored(node)
        if self.events is not None:  # the snapshot and the event only for someone who listens
            parent = node.parent_edge
            self._publish(
                ExpansionDone(
                    problem_name=self.problem.name,
                    expansion=counters.expansions,
                    state=node.state.pp,
                    candidates=len(candidates),
                    frontier=tree.frontier_size,
                    stats=counters.snapshot(),
                    node=node.id,
                    parent=None if parent is None else parent.src.id,
                )
            )

    async def _apply_candidates(self, session: ProofSession, node: Node, candidates: list[TacticCandidate]) -> None:
        """Run `candidates` on `node`'s state (concurrently, up to the limit) and apply the outcomes in order.

        Stops early once the root is proved; tactics still running then are cancelled and counted
        in `tactics_cancelled`. A backend failure ends the search with `ENV_ERROR`.
        """
        assert self.tree is not None
        tree = self.tree
        counters = self._counters
        config = self.config
        state = node.state
        timeout = config.tactic_timeout_s
        run_tactic = session.run_tactic
        score_of = self._score_of
        # Only the candidates that make progress are scored now; the failed ones' scores (read only
        # if their error edges are ever built, by an export) are computed then.
        scores = _LazyScores(candidates, score_of)
        root = tree.root
        proved = NodeStatus.PROVED
        # Every outcome in candidate order. The errors go to the tree in one call when the expansion
        # ends, as this list (no Edge object each), and are counted by kind then.
        outcomes: list[TacticOutcome | None] = []
        keep = outcomes.append
        counted = 0
        """Outcomes already in `tactics_tried`."""
        runner: _CandidateRunner | None = None
        if config.max_concurrent_tactics > 1 and len(candidates) > 1:
            runner = self._idle_runner
            if runner is None:
                runner = _CandidateRunner(session, state, candidates, timeout, config.max_concurrent_tactics)
            else:  # re-armed rather than built again: one object per search, not one per expansion
                self._idle_runner = None
                runner.rearm(state, candidates)
            self._runner = runner
            if self._helper_check is None:
                # Helpers for the following candidates start only if Lean makes us wait (see
                # _check_helpers), so tactics that answer at once cost no task at all.
                self._helper_check = asyncio.get_running_loop().call_soon(self._check_helpers)
        try:
            for index, candidate in enumerate(candidates):
                if runner is None:
                    outcome = await run_tactic(state, candidate.text, timeout)
                elif index == runner.next:  # nobody has started this one: run it here, in our own task
                    runner.next = index + 1
                    outcome = await run_tactic(state, candidate.text, timeout)
                else:
                    outcome = await runner.wait(index)
                keep(outcome)
                if outcome.__class__ is TacticError:
                    continue  # its edge is recorded with the others when the expansion ends
                # Each other outcome gets its edge now, and its entry becomes None once the edge is
                # in the tree (only errors are read back: keep nothing else alive).
                score = score_of(candidate)
                if outcome.__class__ is Progress or isinstance(outcome, Progress):
                    tree.add_progress(node, candidate, score, outcome.state)
                    outcomes[index] = None
                    if root.status is proved:  # it reached a state proved before
                        break
                elif isinstance(outcome, ProofClosed):
                    counters.tactics_tried += len(outcomes) - counted
                    counted = len(outcomes)
                    await self._verify_closing(node, candidate, score)
                    outcomes[index] = None
                    if tree.root.status is NodeStatus.PROVED:
                        break
                elif isinstance(outcome, TacticError):  # a subclass: not counted with the others below
                    tree.add_error(node, candidate, score, outcome)
                    outcomes[index] = None
                    counters.errors[outcome.kind] += 1
                else:  # pragma: no cover - a backend returned something outside the protocol
                    raise TypeError(f"run_tactic returned {type(outcome).__name__}, not a TacticOutcome")
        except LeanEnvError as error:
            raise _SearchEnded(SearchStatus.ENV_ERROR, f"Lean backend failed: {error}") from error
        finally:
            self._runner = None
            applied = len(outcomes)
            counters.tactics_tried += applied - counted
            if applied and (last := outcomes[-1]) is not None and last.__class__ is not TacticError:
                outcomes.pop()  # applied, but the expansion failed before its edge was added
            tree.add_pass_errors(node, candidates, scores, outcomes)
            # Every outcome left in the list is a `TacticError` (the others were replaced by None):
            # their kinds, in C, counted in bulk now and then.
            kinds = counters.error_kinds
            kinds += map(_KIND_OF, filter(None, outcomes))
            if len(kinds) > _COUNT_ERRORS_AT:
                counters.count_errors()
            if runner is not None and runner.started:
                # Cancel what is still running (a proof was found, or the expansion failed) and let
                # it unwind before the next expansion reuses the session or the search returns.
                finish = not config.cancel_on_proof and tree.root.status is NodeStatus.PROVED
                counters.tactics_cancelled += await runner.stop(cancel=not finish)
            elif runner is not None:
                self._idle_runner = runner  # no helper ever ran: nothing refers to it any more

    def _check_helpers(self) -> None:
        """Runs as soon as the search's task is suspended: if candidates wait to start, start helpers.

        At most one such check is pending per search, so a search whose tactics never make it wait
        schedules one callback in all, not one per expansion.
        """
        self._helper_check = None
        if self._runner is not None:
            self._runner.start_helpers()

    def _deduplicate(self, candidates: Sequence[TacticCandidate]) -> list[TacticCandidate]:
        """The candidates with clean text (`clean_tactic`), first of each `normalize_tactic` key kept.

        Counts what it drops in `duplicate_candidates` and what it keeps in `distinct_candidates`.
        """
        counters = self._counters
        texts = [candidate.text for candidate in candidates]
        distinct = set(texts)
        if len(distinct) == len(texts) and distinct <= self._clean_texts:
            # Every text passed the check below before: a model repeats its tactics across states.
            counters.distinct_candidates += len(texts)
            return list(candidates)
        # The common case, checked for the whole batch in a few passes over one string: every text
        # one line (line breaks are not printable), single spaces (no other whitespace is
        # printable), nothing to trim, none empty, no two alike. Then each text is its own clean
        # text and its own key. A clean batch never fails this check through the separator (it is
        # not a space, and a clean text neither starts nor ends with one); a text that contains
        # the separator may send a clean batch to the slow path, never an unclean one to this one.
        blob = _SEPARATOR.join(texts)
        if (
            blob.isprintable()
            and "  " not in blob
            and " " + _SEPARATOR not in blob
            and _SEPARATOR + " " not in blob
            and _SEPARATOR + _SEPARATOR not in blob
            and not blob.startswith((" ", _SEPARATOR))
            and not blob.endswith((" ", _SEPARATOR))
            and blob
            and len(distinct) == len(texts)
        ):
            # Each text of a batch that passes is clean on its own too. The set holds texts the
            # search's edges keep alive anyway, so it costs a table slot each.
            self._clean_texts |= distinct
            counters.distinct_candidates += len(texts)
            return list(candidates)
        seen: set[str] = set()
        unique: list[TacticCandidate] = []
        for candidate in candidates:
            text = candidate.text
            if text.isprintable() and "  " not in text and text == text.strip():
                key = text  # clean already: its own clean text and its own key
            else:
                text = clean_tactic(text)
                key = normalize_tactic(text)
                if text != candidate.text:
                    candidate = TacticCandidate(text=text, logprob=candidate.logprob, num_tokens=candidate.num_tokens)
            if not key or key in seen:
                counters.duplicate_candidates += 1
                continue
            seen.add(key)
            unique.append(candidate)
        counters.distinct_candidates += len(unique)
        return unique

    async def _verify_closing(self, node: Node, candidate: TacticCandidate, score: float) -> None:
        """A tactic closed every goal: check the tactic sequence before the tree may call it proved."""
        assert self.tree is not None
        tactics = (*(edge.tactic for edge in self.tree.path_to(node)), candidate.text)
        verdict = await self._run_check(tactics)
        proof = self.env.syntax.render_tactics(tactics)
        name = self.problem.name
        if verdict.ok:
            self._proof = proof
            self._proof_tactics = tactics
            self._judge = verdict.judge
            self.tree.add_proof(node, candidate, score)
            self._publish(ProofFound(problem_name=name, proof=proof, tactics=tactics))
            return
        logger.warning("proof of %s rejected by verification: %s", name, verdict.reason)
        self._rejected.append(RejectedProof(proof=proof, verify=verdict))
        self.tree.add_error(node, candidate, score, TacticError(TacticErrorKind.UNVERIFIED, verdict.reason))
        self._counters.errors[TacticErrorKind.UNVERIFIED] += 1
        self._publish(ProofRejected(problem_name=name, proof=proof, reason=verdict.reason))

    async def _run_check(self, tactics: tuple[str, ...]) -> VerifyResult:
        """Run the proof check; its time does not count against the wall clock."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        scope = self._timeout_scope
        if scope is not None:
            scope.reschedule(None)  # verification has its own timeout, outside the search's clock
        try:
            return await self._check(tactics)
        finally:
            elapsed = loop.time() - started
            self._counters.verify_seconds += elapsed
            self._deadline += elapsed
            if scope is not None:
                with contextlib.suppress(RuntimeError):
                    scope.reschedule(self._deadline)

    async def _verify_statement(self, tactics: tuple[str, ...]) -> VerifyResult:
        """The default check: the whole file of the statement with the rendered proof, from scratch."""
        proof = self.env.syntax.render_tactics(tactics)
        return await self.env.verify(self.problem, proof, self.config.verify_timeout_s)

    def _failure_reason(self, base: str) -> str:
        if self._rejected:
            return f"{base}; {len(self._rejected)} proof(s) rejected by verification, last: " + (
                self._rejected[-1].verify.reason
            )
        return base

    def _timeout_reason(self) -> str:
        return self._failure_reason(f"wall-clock budget of {self.config.wall_clock_s:g} s used up")


_ERROR_KINDS = tuple(TacticErrorKind)

_COUNT_ERRORS_AT = 2048
"""Uncounted error kinds a search keeps at most (a few KiB)."""

_KIND_OF: Callable[[Any], TacticErrorKind] = operator.attrgetter("kind")


class _LazyScores:
    """The scores of an expansion's candidates, each computed when it is read (a `ScoreLookup`).

    The tree reads the scores of failed candidates only to build their error edges for an export;
    a search that is never exported never computes them.
    """

    __slots__ = ("_candidates", "_score_of")

    def __init__(self, candidates: Sequence[TacticCandidate], score_of: Callable[[TacticCandidate], float]) -> None:
        self._candidates = candidates
        self._score_of = score_of

    def __getitem__(self, index: int, /) -> float:
        return self._score_of(self._candidates[index])


_PENDING: Any = object()
"""Marks an outcome a helper task has not delivered yet."""


class _CandidateRunner:
    """The tactics of one expansion: which have started, and the helper tasks that run them.

    Candidates start in candidate order (`next` is the first one nobody has started). The search
    runs the candidate it needs next itself; `start_helpers` adds tasks that take the following
    candidates, so that with the search's own one at most `limit` tactics run at once. A helper's
    outcome (or exception) is kept until the search asks for it with `wait`, in candidate order.
    """

    __slots__ = (
        "_cancelled",
        "_candidates",
        "_helpers",
        "_limit",
        "_results",
        "_session",
        "_state",
        "_timeout",
        "_waiter",
        "next",
    )

    def __init__(
        self, session: ProofSession, state: ProofState, candidates: list[TacticCandidate], timeout: float, limit: int
    ) -> None:
        self._session = session
        self._state = state
        self._candidates = candidates
        self._timeout = timeout
        self._limit = limit
        self.next = 0
        self._results: list[Any] = []
        self._helpers: list[asyncio.Task[None]] = []
        self._waiter: tuple[int, asyncio.Future[None]] | None = None
        self._cancelled = 0

    def rearm(self, state: ProofState, candidates: list[TacticCandidate]) -> None:
        """Take the next expansion's candidates: only for a runner that never started a helper."""
        self._state = state
        self._candidates = candidates
        self.next = 0

    @property
    def started(self) -> bool:
        """Whether any helper task was started (else there is nothing to stop)."""
        return bool(self._helpers)

    def start_helpers(self) -> None:
        wanted = min(self._limit - 1 - len(self._helpers), len(self._candidates) - self.next)
        if wanted <= 0:
            return
        if not self._results:
            self._results = [_PENDING] * len(self._candidates)
        for _ in range(wanted):
            self._helpers.append(asyncio.ensure_future(self._help()))

    async def _help(self) -> None:
        while self.next < len(self._candidates):
            index = self.next
            self.next += 1
            result: Any
            try:
                result = await self._session.run_tactic(self._state, self._candidates[index].text, self._timeout)
            except asyncio.CancelledError:
                self._cancelled += 1  # stopped mid-tactic: Lean's work on it is wasted
                raise
            except Exception as error:  # re-raised in order, when the search asks for this outcome
                result = error
            self._results[index] = result
            if self._waiter is not None and self._waiter[0] == index and not self._waiter[1].done():
                self._waiter[1].set_result(None)

    async def wait(self, index: int) -> TacticOutcome:
        """The outcome of candidate `index`, which a helper started; re-raises its exception."""
        if self._results[index] is _PENDING:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = (index, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
        result = self._results[index]
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

    async def stop(self, *, cancel: bool = True) -> int:
        """Cancel the helpers and wait until they have unwound; no helper starts a tactic after this.

        Returns how many tactics were cancelled while running. A helper that has not unwound
        after `_CANCEL_GRACE_S` (a backend that ignores cancellation) is logged and left to
        finish on its own; its outcome is dropped. With `cancel=False` the running tactics are
        awaited to their end instead (their outcomes are dropped too).
        """
        self._limit = 0
        self.next = len(self._candidates)
        helpers = [helper for helper in self._helpers if not helper.done()]
        if helpers and not cancel:
            await asyncio.gather(*helpers, return_exceptions=True)
        elif helpers:
            for helper in helpers:
                helper.cancel()
            _, pending = await asyncio.wait(helpers, timeout=_CANCEL_GRACE_S)
            if pending:
                logger.warning("%d cancelled tactic(s) still running after %g s", len(pending), _CANCEL_GRACE_S)
                for helper in pending:
                    helper.add_done_callback(_drop_result)
        return self._cancelled


def _drop_result(task: asyncio.Task[None]) -> None:
    """Retrieve a late helper's exception, so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()

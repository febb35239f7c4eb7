"""The sequential best-first loop of the Llemma formal-to-formal runs, re-implemented as a baseline.

Written from the description in shared/reference/llemma-eval.md (not from its code), over our
`LeanEnv` and `TacticGenerator` protocols so that it runs against the same environment and generator
as `search.BestFirstSearch`:

- a heap of (negated path score, tactics so far, state); the path score is the sum of each tactic's
  mean token log-prob; ties fall to the tactic lists, as in a heap of plain tuples;
- one prompt per generate call; candidates stripped, exact duplicates removed, best first;
- candidates run one after another in one session; the first tactic that closes every goal ends the
  search (no whole-file re-check);
- a state is marked visited only when it is popped; a successor already visited is not pushed, but
  one already on the heap is pushed again (no node table, so transpositions are expanded twice);
- tactic errors and timeouts are dropped (not cached); a backend failure (or a statement that does
  not elaborate) ends the search unproved;
- at most `max_expansions` pops, and the wall clock is checked before each one.
"""

from __future__ import annotations

import heapq
import logging
import time

from lean_env.errors import LeanEnvError
from lean_env.protocol import LeanEnv
from lean_env.types import InvalidStatement, Progress, ProofClosed, ProofState, Theorem
from search.types import GenerationRequest, TacticGenerator

logger = logging.getLogger(__name__)


async def reference_search(
    theorem: Theorem,
    env: LeanEnv,
    generator: TacticGenerator,
    max_expansions: int,
    num_samples: int,
    wall_clock_s: float,
    tactic_timeout_s: float,
) -> tuple[bool, list[str], int]:
    """Run the reference loop on one theorem: `(proved, tactics of the proof, expansions)`.

    `proved` means a tactic sequence closed every goal step by step; nothing re-checks it. A failure
    of the backend (start, crash) returns `(False, [], expansions so far)`, like the original, which
    logged the error and moved on to the next theorem. A failure of the generator raises.
    """
    started = time.monotonic()
    expansions = 0
    try:
        session = await env.start(theorem)
    except LeanEnvError as error:
        logger.warning("reference loop: could not start %s: %s", theorem.name, error)
        return False, [], 0
    if isinstance(session, InvalidStatement):
        logger.warning("reference loop: the statement of %s does not elaborate: %s", theorem.name, session.message)
        return False, [], 0
    try:
        queue: list[tuple[float, list[str], ProofState]] = [(0.0, [], session.initial_state)]
        visited: set[ProofState] = set()
        while queue and expansions < max_expansions:
            if time.monotonic() - started > wall_clock_s:
                break
            neg_score, steps, state = heapq.heappop(queue)
            visited.add(state)
            expansions += 1
            (candidates,) = await generator.generate(
                [GenerationRequest(state=state, num_samples=num_samples, theorem=theorem)]
            )
            scored: dict[str, float] = {}
            for candidate in candidates:
                text = candidate.text.strip()
                if text not in scored:
                    scored[text] = candidate.mean_logprob
            for text, score in sorted(scored.items(), key=lambda item: -item[1]):
                outcome = await session.run_tactic(state, text, tactic_timeout_s)
                if isinstance(outcome, ProofClosed):
                    return True, [*steps, text], expansions
                if isinstance(outcome, Progress) and outcome.state not in visited:
                    heapq.heappush(queue, (neg_score - score, [*steps, text], outcome.state))
        return False, [], expansions
    except LeanEnvError as error:
        logger.warning("reference loop: backend failed on %s: %s", theorem.name, error)
        return False, [], expansions
    finally:
        await session.close()

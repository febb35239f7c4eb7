"""Best-first tactic search over any `LeanEnv`, asking any `TacticGenerator`.

Imports `lean_env` types only, never a backend, and nothing heavy.
"""

from search.best_first import BestFirstSearch, best_first_search
from search.render import normalize_tactic, render_proof
from search.tree import NodeStatus, SearchTree, TreeInvariantError
from search.types import (
    ExpansionEvent,
    GenerationRequest,
    PriorityScheme,
    RejectedProof,
    SearchConfig,
    SearchObserver,
    SearchResult,
    SearchStats,
    SearchStatus,
    TacticCandidate,
    TacticGenerator,
)

__all__ = [
    "BestFirstSearch",
    "ExpansionEvent",
    "GenerationRequest",
    "NodeStatus",
    "PriorityScheme",
    "RejectedProof",
    "SearchConfig",
    "SearchObserver",
    "SearchResult",
    "SearchStats",
    "SearchStatus",
    "SearchTree",
    "TacticCandidate",
    "TacticGenerator",
    "TreeInvariantError",
    "best_first_search",
    "normalize_tactic",
    "render_proof",
]

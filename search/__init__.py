"""Best-first tactic search over any `LeanEnv`, asking any `TacticGenerator`.

Imports `lean_env` values and protocols (and `lean_env.lean_syntax.clean_tactic`, to tidy candidate
text), never a backend, and nothing heavy. Proof text comes from `env.syntax`, never from here.
"""

from search.best_first import BestFirstSearch
from search.events import (
    EventHub,
    EventListener,
    ExpansionDone,
    ProofFound,
    ProofRejected,
    SearchEvent,
    SearchFinished,
    SearchStarted,
)
from search.render import normalize_tactic
from search.tree import NodeStatus, SearchTree, TreeInvariantError
from search.types import (
    GenerationRequest,
    PriorityScheme,
    ProofCheck,
    RejectedProof,
    SearchConfig,
    SearchResult,
    SearchStats,
    SearchStatus,
    TacticCandidate,
    TacticGenerator,
)

__all__ = [
    "BestFirstSearch",
    "EventHub",
    "EventListener",
    "ExpansionDone",
    "GenerationRequest",
    "NodeStatus",
    "PriorityScheme",
    "ProofCheck",
    "ProofFound",
    "ProofRejected",
    "RejectedProof",
    "SearchConfig",
    "SearchEvent",
    "SearchFinished",
    "SearchResult",
    "SearchStarted",
    "SearchStats",
    "SearchStatus",
    "SearchTree",
    "TacticCandidate",
    "TacticGenerator",
    "TreeInvariantError",
    "normalize_tactic",
]

"""Talking to proof assistants: the shared vocabulary, the `LeanEnv` protocol and its backends.

Importing this package is cheap: backends (the REPL pool, LeanDojo) live in their own modules
and import their heavy dependencies only when used.
"""

from lean_env.errors import (
    BackendCrashed,
    BackendStartError,
    BackendTimeout,
    HoleUnavailable,
    LeanEnvError,
    MissingDependency,
    PoolExhausted,
)
from lean_env.protocol import LeanEnv, ProofLanguage, ProofSession
from lean_env.types import (
    STANDARD_AXIOMS,
    CheckResult,
    Hole,
    InvalidStatement,
    Judge,
    Language,
    LeanMessage,
    Position,
    Problem,
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

__all__ = [
    "STANDARD_AXIOMS",
    "BackendCrashed",
    "BackendStartError",
    "BackendTimeout",
    "CheckResult",
    "Hole",
    "HoleUnavailable",
    "InvalidStatement",
    "Judge",
    "Language",
    "LeanEnv",
    "LeanEnvError",
    "LeanMessage",
    "MissingDependency",
    "PoolExhausted",
    "Position",
    "Problem",
    "Progress",
    "ProofClosed",
    "ProofLanguage",
    "ProofSession",
    "ProofState",
    "Severity",
    "TacticError",
    "TacticErrorKind",
    "TacticOutcome",
    "Theorem",
    "VerifyResult",
    "VerifyStatus",
]

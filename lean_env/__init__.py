"""Talking to proof assistants: the shared vocabulary, the `LeanEnv` protocol and its backends.

Importing this package is cheap: backends (the REPL pool, LeanDojo) live in their own modules
and import their heavy dependencies only when used.
"""

from lean_env.errors import (
    BackendCrashed,
    BackendStartError,
    BackendTimeout,
    LeanEnvError,
    MissingDependency,
    PoolExhausted,
)
from lean_env.protocol import LeanEnv, ProofSession
from lean_env.types import (
    STANDARD_AXIOMS,
    DojoLocation,
    LeanMessage,
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
    "DojoLocation",
    "LeanEnv",
    "LeanEnvError",
    "LeanMessage",
    "MissingDependency",
    "PoolExhausted",
    "Progress",
    "ProofClosed",
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

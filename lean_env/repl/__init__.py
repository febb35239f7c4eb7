"""The Lean REPL backend (leanprover-community/repl): wire format, worker processes, pool, `LeanEnv`.

`ReplLeanEnv(ReplConfig(command=..., cwd=...))` is the default backend of the search. Importing
this package starts nothing; processes start on first use.
"""

from lean_env.repl.config import ReplConfig, default_workers
from lean_env.repl.env import ReplHoleHandle, ReplLeanEnv, ReplSession, ReplStateHandle
from lean_env.repl.pool import PoolStats, ReplPool, WorkerGone
from lean_env.repl.process import ReplProcess
from lean_env.repl.wire import (
    CommandReply,
    ProofStatus,
    ReplError,
    ReplProtocolError,
    ReplReply,
    ReplSorry,
    ReplTacticInfo,
    TacticReply,
    decode_reply,
    encode_request,
    parse_reply,
    split_replies,
    tactic_outcome,
)

__all__ = [
    "CommandReply",
    "PoolStats",
    "ProofStatus",
    "ReplConfig",
    "ReplError",
    "ReplHoleHandle",
    "ReplLeanEnv",
    "ReplPool",
    "ReplProcess",
    "ReplProtocolError",
    "ReplReply",
    "ReplSession",
    "ReplSorry",
    "ReplStateHandle",
    "ReplTacticInfo",
    "TacticReply",
    "WorkerGone",
    "decode_reply",
    "default_workers",
    "encode_request",
    "parse_reply",
    "split_replies",
    "tactic_outcome",
]

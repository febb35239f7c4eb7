"""The Isabelle backend: a client of Isabelle's own server and a theory checker over a pool of sessions.

- `protocol`: message framing (short lines, length-prefixed long messages) and reply parsing.
- `client`: `IsabelleClient`, one asyncio connection; synchronous commands and asynchronous tasks,
  with cancel-on-timeout on the same connection.
- `checker`: `IsabelleChecker` (a pool of started sessions, one theory file per check, purge after)
  and `IsabelleConfig`, the `[lean.isabelle]` section of the settings; `start_server` runs
  `isabelle server` and parses its address line.
"""

from lean_env.isabelle.checker import (
    IsabelleChecker,
    IsabelleConfig,
    ServerInfo,
    TheoryCheck,
    find_proof_holes,
    mask_isabelle,
    rename_theory,
    start_server,
)
from lean_env.isabelle.client import IsabelleClient, TaskResult
from lean_env.isabelle.errors import (
    IsabelleAuthError,
    IsabelleCommandError,
    IsabelleConnectError,
    IsabelleConnectionLost,
    IsabelleError,
    IsabelleTaskTimeout,
)

__all__ = [
    "IsabelleAuthError",
    "IsabelleChecker",
    "IsabelleClient",
    "IsabelleCommandError",
    "IsabelleConfig",
    "IsabelleConnectError",
    "IsabelleConnectionLost",
    "IsabelleError",
    "IsabelleTaskTimeout",
    "ServerInfo",
    "TaskResult",
    "TheoryCheck",
    "find_proof_holes",
    "mask_isabelle",
    "rename_theory",
    "start_server",
]

"""Infrastructure failures: what the harness must handle, as opposed to tactic outcomes.

A tactic that Lean rejects is a value (`TacticError`). A Lean process that crashed, could not
start, or a pool with no free worker raises one of these, with the process's stderr attached.
"""

from __future__ import annotations


class LeanEnvError(Exception):
    """Base class of every infrastructure failure of a Lean backend.

    `stderr` holds the tail of the backend process's standard error, when there was a process.
    """

    def __init__(self, message: str, *, stderr: str = "") -> None:
        self.stderr = stderr
        full = message if not stderr else f"{message}\n--- stderr of the Lean process ---\n{stderr.rstrip()}"
        super().__init__(full)
        self.message = message


class BackendStartError(LeanEnvError):
    """A Lean process (REPL, LeanDojo's `Dojo`) could not be started or could not load the header."""


class BackendCrashed(LeanEnvError):
    """A Lean process died or answered something that is not the protocol."""


class BackendTimeout(LeanEnvError):
    """A request other than a tactic (start, verify) ran past its deadline."""


class PoolExhausted(LeanEnvError):
    """No worker became free within the acquire timeout: back-pressure, retry later."""


class HoleUnavailable(LeanEnvError):
    """`LeanEnv.start(problem, hole=...)` cannot open a session on that hole with this backend.

    Raised when the hole does not come from this backend's `check`, or the backend cannot open
    sessions on holes at all (LeanDojo opens only the theorems of a traced repository).
    """


class MissingDependency(Exception):
    """Something the user must install is absent (Lean, the REPL, a model, an extra).

    `what` names the missing thing and `how` tells how to get it; the CLI prints both and exits 2.
    """

    def __init__(self, what: str, how: str) -> None:
        self.what = what
        self.how = how
        super().__init__(f"{what} is not available. {how}")

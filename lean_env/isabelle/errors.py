"""Infrastructure failures of the Isabelle backend; all are `lean_env.errors.LeanEnvError`s.

A theory that Isabelle rejects is a value (`TheoryCheck` with errors); a server that refuses the
password, drops the connection, or answers outside the protocol raises one of these.
"""

from __future__ import annotations

from typing import Any

from lean_env.errors import BackendCrashed, BackendStartError, BackendTimeout, LeanEnvError


class IsabelleError(LeanEnvError):
    """Base class of the Isabelle backend's infrastructure failures."""


class IsabelleConnectError(IsabelleError, BackendStartError):
    """No connection to the server could be made (nothing listens at the address, the connect timed out),
    or `isabelle server` could not be started."""


class IsabelleAuthError(IsabelleConnectError):
    """The server closed the connection after the password line (a wrong password), or never answered it."""


class IsabelleConnectionLost(IsabelleError, BackendCrashed):
    """The connection to the server ended (or carried something that is not the protocol) while a
    command or task was waiting; every waiter on that connection gets this."""


class IsabelleCommandError(IsabelleError):
    """The server answered a command with `ERROR` (unknown command, malformed argument, bad session).

    `body` is the parsed body of the reply: a JSON value, or the plain text when it is not JSON.
    """

    def __init__(self, command: str, body: Any) -> None:
        self.command = command
        self.body = body
        detail = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"Isabelle server refused `{command}`: {detail}")


class IsabelleTaskTimeout(IsabelleError, BackendTimeout):
    """An asynchronous task ran past its timeout; the client sent `cancel` for it on the same connection.

    `cancelled` is true when the server then ended the task (`FAILED`, normally "Interrupt") within
    the grace period; `notes` are the task's `NOTE` bodies received before the end.
    """

    def __init__(self, command: str, task_id: str, timeout: float, *, cancelled: bool, notes: tuple[Any, ...]) -> None:
        self.command = command
        self.task_id = task_id
        self.timeout = timeout
        self.cancelled = cancelled
        self.notes = notes
        state = "cancelled" if cancelled else "cancel sent, but the task did not end"
        super().__init__(f"Isabelle task `{command}` ({task_id}) ran past {timeout:g}s; {state}")

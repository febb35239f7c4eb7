"""Settings of the REPL backend: how to start one REPL process and how to run a pool of them.

`ReplConfig` is also the `[lean.repl]` section of the application's settings (`prover.config` embeds
it), so a field added here is reachable from TOML, `PROVER_LEAN__REPL__*` variables and overrides
without a copy elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


def default_workers() -> int:
    """cores - 1 (at least one): one core stays free for the event loop and the model."""
    return max(1, (os.cpu_count() or 2) - 1)


class ReplConfigError(ValidationError):
    """An invalid `ReplConfig` field; the message reads `ReplConfig.<field>: <problem> (got <value>)`.

    A `ValidationError` (so a `ValueError`), so settings that embed `ReplConfig` report the full path
    of the field (`lean.repl.workers`) as pydantic does for any nested model.
    """

    def __str__(self) -> str:
        return "; ".join(
            f"{self.title}.{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']} (got {issue.get('input')!r})"
            for issue in self.errors()
        )


class ReplConfig(BaseModel):
    """How the REPL pool starts, limits, recycles and waits for its Lean processes.

    Built once at the entry point and passed down; constructing one with an invalid value raises
    `ValueError` naming the field (`ReplConfig.workers: ...`). `command` is left empty in the settings
    file when the entry point is to derive it from the Lake project (`prover.lean_setup`); the entry
    point then fills it in with `model_copy(update=...)`. An explicitly given command must not be empty.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    command: tuple[str, ...] = ()
    """The argv that starts one REPL, e.g. `("lake", "env", ".../repl")`, run with `cwd` as working directory.
    Empty: the entry point derives `lake env <repl>` from the project."""
    cwd: Path | None = None
    """The Lake project the REPL runs in (its `lean-toolchain` and packages); None keeps the current directory
    (the entry point fills in the project directory)."""
    workers: int = Field(default_factory=default_workers, ge=1)
    """At most this many REPL processes at once, across all headers."""
    memory_limit_mb: int | None = Field(default=8192, ge=0)
    """Address-space limit (RLIMIT_AS) of each REPL process tree root; None or 0 leaves it unlimited."""
    max_requests_per_worker: int = Field(default=1000, ge=1)
    """Recycle a worker after this many requests (a REPL degrades over long sessions)."""
    acquire_timeout_s: float = Field(default=120.0, gt=0)
    """How long a request waits for a busy pool before `PoolExhausted` (back-pressure)."""
    start_timeout_s: float = Field(default=600.0, gt=0)
    """Deadline for one REPL to start and elaborate its header (`import Mathlib` takes a while)."""
    restart_backoff_s: float = Field(default=1.0, ge=0)
    """First delay before restarting after a crash or a failed start; doubles per consecutive failure."""
    max_restart_backoff_s: float = Field(default=30.0, ge=0)
    """Upper bound of the restart delay."""
    max_worker_memory_mb: int | None = Field(default=None, ge=0)
    """Recycle a worker whose process tree's resident memory passes this; None means 80% of `memory_limit_mb`."""
    memory_check_every: int = Field(default=8, ge=1)
    """Measure a worker's memory after every this many requests (psutil walks /proc, so not on every one)."""
    command_timeout_s: float = Field(default=120.0, gt=0)
    """Deadline of a command that opens a proof session (`statement sorry`)."""
    crash_retries: int = Field(default=1, ge=0)
    """How often a request whose worker crashed is retried on a fresh worker before `BackendCrashed`."""
    stderr_tail_bytes: int = Field(default=16384, ge=1)
    """How much of a process's standard error is kept to attach to infrastructure errors."""
    verify_spares: int = Field(default=1, ge=0)
    """Verification workers kept started ahead, per header: each check runs in a fresh worker that has
    elaborated only the header and is discarded afterwards, so a spare spares the check `import Mathlib`.
    They are extra processes beyond `workers`."""
    max_verify_workers: int = Field(default=2, ge=1)
    """At most this many verification workers (spares, starting and checking) at once, beyond `workers`;
    further checks wait for one."""
    spread_tactics: bool = True
    """Run a tactic on an idle worker of the same header (replaying its state there) when the session's
    home worker is busy, so concurrent candidates of one expansion use several processes."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            details: Any = error.errors()
            raise ReplConfigError.from_exception_data(error.title, details) from None

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_an_argv(cls, value: Any) -> Any:
        # Runs only when a command is given: the empty default means "derive it at the entry point".
        if isinstance(value, str):
            raise ValueError("must be a sequence of strings (the argv), not one string")
        if isinstance(value, list | tuple) and not value:
            raise ValueError("must not be empty")
        return value

    @property
    def address_space_bytes(self) -> int | None:
        """The RLIMIT_AS applied to each process, or None for no limit."""
        return self.memory_limit_mb * 1024 * 1024 if self.memory_limit_mb else None

    @property
    def recycle_rss_bytes(self) -> int | None:
        """The resident-memory level above which a worker is recycled, or None when unchecked."""
        if self.max_worker_memory_mb:
            return self.max_worker_memory_mb * 1024 * 1024
        if self.memory_limit_mb:
            return int(self.memory_limit_mb * 0.8) * 1024 * 1024
        return None

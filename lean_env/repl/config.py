"""Settings of the REPL backend: how to start one REPL process and how to run a pool of them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_workers() -> int:
    """cores - 1 (at least one): one core stays free for the event loop and the model."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True, slots=True)
class ReplConfig:
    """How the REPL pool starts, limits, recycles and waits for its Lean processes.

    Built once at the entry point (`prover.wiring.build_env`) and passed down; every field is
    validated here and an invalid value raises `ValueError` naming the field.
    """

    command: tuple[str, ...]
    """The argv that starts one REPL, e.g. `("lake", "env", ".../repl")`, run with `cwd` as working directory."""
    cwd: Path | None = None
    """The Lake project the REPL runs in (its `lean-toolchain` and packages); None keeps the current directory."""
    workers: int = field(default_factory=default_workers)
    """At most this many REPL processes at once, across all headers."""
    memory_limit_mb: int | None = 8192
    """Address-space limit (RLIMIT_AS) of each REPL process tree root; None or 0 leaves it unlimited."""
    max_requests_per_worker: int = 1000
    """Recycle a worker after this many requests (a REPL degrades over long sessions)."""
    acquire_timeout_s: float = 120.0
    """How long a request waits for a busy pool before `PoolExhausted` (back-pressure)."""
    start_timeout_s: float = 600.0
    """Deadline for one REPL to start and elaborate its header (`import Mathlib` takes a while)."""
    restart_backoff_s: float = 1.0
    """First delay before restarting after a crash or a failed start; doubles per consecutive failure."""
    max_restart_backoff_s: float = 30.0
    """Upper bound of the restart delay."""
    max_worker_memory_mb: int | None = None
    """Recycle a worker whose process tree's resident memory passes this; None means 80% of `memory_limit_mb`."""
    memory_check_every: int = 8
    """Measure a worker's memory after every this many requests (psutil walks /proc, so not on every one)."""
    command_timeout_s: float = 120.0
    """Deadline of a command that opens a proof session (`statement sorry`)."""
    crash_retries: int = 1
    """How often a request whose worker crashed is retried on a fresh worker before `BackendCrashed`."""
    stderr_tail_bytes: int = 16384
    """How much of a process's standard error is kept to attach to infrastructure errors."""
    spread_tactics: bool = True
    """Run a tactic on an idle worker of the same header (replaying its state there) when the session's
    home worker is busy, so concurrent candidates of one expansion use several processes."""

    def __post_init__(self) -> None:
        if isinstance(self.command, str) or not self.command or not all(isinstance(a, str) for a in self.command):
            raise ValueError(f"ReplConfig.command: must be a non-empty tuple of strings, got {self.command!r}")
        object.__setattr__(self, "command", tuple(self.command))
        if self.cwd is not None:
            object.__setattr__(self, "cwd", Path(self.cwd))
        for name in ("workers", "max_requests_per_worker", "memory_check_every", "stderr_tail_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ReplConfig.{name}: must be an integer >= 1, got {value!r}")
        if not isinstance(self.crash_retries, int) or self.crash_retries < 0:
            raise ValueError(f"ReplConfig.crash_retries: must be an integer >= 0, got {self.crash_retries!r}")
        for name in ("acquire_timeout_s", "start_timeout_s", "command_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"ReplConfig.{name}: must be > 0, got {value!r}")
        for name in ("restart_backoff_s", "max_restart_backoff_s"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"ReplConfig.{name}: must be >= 0, got {value!r}")
        for name in ("memory_limit_mb", "max_worker_memory_mb"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"ReplConfig.{name}: must be None or an integer >= 0, got {value!r}")

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

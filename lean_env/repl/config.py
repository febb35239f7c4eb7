"""Settings of the REPL backend: how to start one REPL process and how to run a pool of them.

`ReplConfig` is also the `[lean.repl]` section of the application's settings (`prover.config` embeds
it), so a field added here is reachable from TOML, `PROVER_LEAN__REPL__*` variables and overrides
without a copy elsewhere.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


def default_workers() -> int:
    """cores - 1 (at least one): one core stays free for the event loop and the model."""
    return max(1, (os.cpu_count() or 2) - 1)


MATHLIB_RSS_MB = 6656
"""Resident memory of one REPL right after `import Mathlib` with a 2025 Mathlib (about 6.5 GB; its `.olean`
files are memory-mapped, so the address space is larger still)."""
WORKER_MEMORY_FLOOR_MB = 10240
"""Smallest default recycle level: `import Mathlib` alone takes `MATHLIB_RSS_MB`, so less recycles constantly."""
WORKER_MEMORY_CEILING_MB = 32768
"""Largest default recycle level: a REPL past this has accumulated states it will not need again."""
_RAM_SHARE = 0.85
"""Share of the machine's RAM the default levels divide among the Lean processes (the rest: OS, model, search)."""


@functools.cache
def total_memory_bytes() -> int:
    """The machine's physical memory (read once: the pool asks at every worker release)."""
    return int(psutil.virtual_memory().total)


def default_worker_memory_mb(processes: int, total_bytes: int | None = None) -> int:
    """RAM share / `processes`, within [`WORKER_MEMORY_FLOOR_MB`, `WORKER_MEMORY_CEILING_MB`]."""
    total = total_memory_bytes() if total_bytes is None else total_bytes
    share = int(total * _RAM_SHARE / max(processes, 1) / 2**20)
    return max(WORKER_MEMORY_FLOOR_MB, min(WORKER_MEMORY_CEILING_MB, share))


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
    memory_limit_mb: int | None = Field(default=None, ge=0)
    """Address-space limit (RLIMIT_AS) of each REPL process tree root; None or 0 (the default) leaves it
    unlimited. Off by default because Mathlib's `.olean` files are memory-mapped: the address space of a REPL
    that imported Mathlib is far above what it uses. The limit that matters is `max_worker_memory_mb` (resident)."""
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
    """Recycle a worker between requests once its process tree's resident memory (RSS, the REPL and its
    children) passes this. None: 85% of the machine's RAM / (`workers` + `max_verify_workers`), within
    [10240, 32768] MiB (`import Mathlib` alone takes about 6.5 GB); 0: never measured."""
    memory_kill_ratio: float = Field(default=1.5, ge=1.0)
    """Kill a worker in the middle of a request once its resident memory passes this many times
    `max_worker_memory_mb` (a watchdog, polled every `memory_poll_s`); the request fails with a reason that
    says so (a tactic: a `TacticError`)."""
    memory_poll_s: float = Field(default=1.0, gt=0)
    """How often the watchdog measures a worker's resident memory while a request is on the wire."""
    memory_check_every: int = Field(default=8, ge=1)
    """Measure a worker's memory after every this many requests (psutil walks /proc, so not on every one)."""
    cancel_drain_s: float = Field(default=5.0, ge=0)
    """A request whose caller was cancelled (the search found a proof elsewhere) keeps its worker until its
    reply is read, for at most this long; then the worker is killed and replaced (see `lean_env.repl.pool`)."""
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
    def processes(self) -> int:
        """The most REPL processes the pool runs at once: `workers` plus `max_verify_workers`."""
        return self.workers + self.max_verify_workers

    def worker_memory_mb(self, total_bytes: int | None = None) -> int | None:
        """The recycle level in MiB (`max_worker_memory_mb`, else the default from RAM); None when unchecked."""
        if self.max_worker_memory_mb is None:
            return default_worker_memory_mb(self.processes, total_bytes)
        return self.max_worker_memory_mb or None

    @property
    def recycle_rss_bytes(self) -> int | None:
        """The resident-memory level above which a worker is recycled, or None when unchecked."""
        mb = self.worker_memory_mb()
        return mb * 2**20 if mb else None

    @property
    def kill_rss_bytes(self) -> int | None:
        """The resident-memory level at which the watchdog kills a worker mid-request, or None."""
        recycle = self.recycle_rss_bytes
        return int(recycle * self.memory_kill_ratio) if recycle else None


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """What the pool's Lean processes may take of the machine's memory (`prover doctor` prints it)."""

    processes: int
    """REPL processes at most: `workers` + `max_verify_workers`."""
    worker_limit_mb: int | None
    """Resident memory at which a worker is recycled (None: unchecked)."""
    expected_mb: int
    """Resident memory of one worker after `import Mathlib` (`MATHLIB_RSS_MB`)."""
    total_mb: int
    """The machine's RAM."""

    @property
    def fits(self) -> bool:
        """Whether every process at its recycle level (or, unchecked, after `import Mathlib`) fits in RAM."""
        per = self.worker_limit_mb or self.expected_mb
        return self.processes * per <= self.total_mb

    def describe(self) -> str:
        """One line: processes × memory against RAM, and what to change when it does not fit."""
        limit = f"recycled at {self.worker_limit_mb} MiB RSS" if self.worker_limit_mb else "RSS unchecked"
        line = (
            f"{self.processes} Lean processes × ~{self.expected_mb} MiB after import Mathlib ({limit}) "
            f"= up to {self.processes * (self.worker_limit_mb or self.expected_mb)} MiB of {self.total_mb} MiB RAM"
        )
        if self.fits:
            return line
        most = max(1, self.total_mb // max(self.worker_limit_mb or self.expected_mb, 1))
        return (
            f"{line}: does not fit; lower lean.repl.workers (+ max_verify_workers) to {most} in all, "
            "or lean.repl.max_worker_memory_mb"
        )


def memory_plan(config: ReplConfig, total_bytes: int | None = None) -> MemoryPlan:
    """The memory plan of `config` on this machine (or on one with `total_bytes` of RAM)."""
    total = total_memory_bytes() if total_bytes is None else total_bytes
    return MemoryPlan(config.processes, config.worker_memory_mb(total), MATHLIB_RSS_MB, total // 2**20)

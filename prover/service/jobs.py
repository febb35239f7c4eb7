"""The job model of the service: what a job is, what happens to it, and what the store refuses.

These are plain values shared by the store, the runner and the HTTP layer (docs/service-design.md);
nothing here touches a database.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobKind(StrEnum):
    """What a job does."""

    PROVE = "prove"
    FORMALIZE = "formalize"
    VERIFY = "verify"


class JobState(StrEnum):
    """Where a job is in its life: `queued` -> `running` -> one of the terminal states.

    `completed`: the job ran to its end (proved or not, see `Job.result`); `failed`: an error
    (the environment broke, `Job.error` says why); `cancelled`: stopped on request.
    A `running` job whose lease expires goes back to `queued`.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True for the states a job never leaves."""
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[JobState] = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
"""The states a job never leaves."""


@dataclass(frozen=True, slots=True)
class Job:
    """One stored job, as the store last saw it. Times are epoch seconds (float) or None."""

    id: str
    """uuid4 hex."""
    kind: JobKind
    state: JobState
    request: dict[str, Any]
    """The validated request body, as JSON."""
    result: dict[str, Any] | None
    error: str | None
    owner: str | None
    """The token name that submitted the job; None when authentication is off."""
    idempotency_key: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    """When the job was last claimed."""
    finished_at: float | None
    attempts: int
    """How many times a worker claimed the job."""
    lease_owner: str | None
    """The worker that holds (or, once finished, last held) the job."""
    lease_expires_at: float | None
    cancel_requested: bool
    summary: dict[str, Any] = field(default_factory=dict)
    """The latest counters of a running job (expansions, nodes, frontier, ...), set by heartbeats."""
    last_event_seq: int = 0
    """The seq of the job's newest event (0: none yet)."""

    @property
    def terminal(self) -> bool:
        """True once the job is completed, failed or cancelled."""
        return self.state in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the API returns: every field, enums as their string values."""
        out = dataclasses.asdict(self)
        out["kind"] = self.kind.value
        out["state"] = self.state.value
        return out


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's event stream; `seq` runs 1, 2, ... per job without gaps."""

    job_id: str
    seq: int
    type: str
    data: dict[str, Any]
    at: float
    """When the store wrote it, epoch seconds."""

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The store's answer to a worker's heartbeat.

    `owned=False`: the worker lost the job (lease expired and re-queued, or finished elsewhere);
    it must stop the job and write nothing more. `cancel_requested`: stop and finish it `cancelled`.
    """

    owned: bool
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class OwnerUsage:
    """What one token is using: `active` = queued + running jobs, `submitted_since` = jobs created since a time."""

    active: int
    submitted_since: int


class QueueFull(Exception):
    """The store holds `max_queued` queued jobs already; the API answers 429 with Retry-After."""

    def __init__(self, queued: int, max_queued: int) -> None:
        super().__init__(f"queue full: {queued} jobs queued (max_queued={max_queued})")
        self.queued = queued
        self.max_queued = max_queued


class IdempotencyConflict(Exception):
    """The idempotency key was used before by the same owner with a different request body (409)."""

    def __init__(self, idempotency_key: str, job_id: str) -> None:
        super().__init__(f"idempotency key {idempotency_key!r} was used for job {job_id} with a different request")
        self.idempotency_key = idempotency_key
        self.job_id = job_id


class JobNotFound(LookupError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}")
        self.job_id = job_id

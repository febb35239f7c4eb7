"""`[service]`: how `prover serve` and `prover worker` run (address, job store, limits, tokens)."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def hash_token(token: str) -> str:
    """The value `[[service.tokens]] sha256` stores for `token` (the settings never hold a token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenSettings(_Section):
    """One API token: who it is, its hash, and what it may use."""

    name: str
    """Who holds the token; jobs are owned by this name."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """The token's SHA-256 in hex (`prover serve --hash-token TOKEN` prints it)."""
    max_concurrent_jobs: int = Field(default=4, ge=1)
    """Queued plus running jobs this token may have at once; beyond it, 429."""
    daily_jobs: int = Field(default=1000, ge=1)
    """Jobs this token may submit in 24 hours; beyond it, 429."""


class JobLimits(_Section):
    """The largest budget one job may ask for; a request above a cap is refused with 422."""

    max_expansions: int = Field(default=1000, ge=1)
    max_samples: int = Field(default=64, ge=1)
    max_timeout_s: float = Field(default=3600.0, gt=0)
    max_verify_items: int = Field(default=64, ge=1)
    """Statement/proof pairs in one `/v1/verify` batch."""


class ServiceSettings(_Section):
    """`prover serve` and `prover worker`."""

    host: str = "127.0.0.1"
    """The address to listen on. Binding to anything but loopback needs at least one token
    (or `allow_unauthenticated`)."""
    port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = ""
    """SQLAlchemy URL of the job store: empty (the default) is SQLite at `<home>/service/jobs.sqlite`;
    `postgresql+psycopg://user:pass@host/db` for several machines (`prover worker --db URL`)."""
    workers: int = Field(default=4, ge=0)
    """Jobs the server runs at once in its own process; 0: only `prover worker` processes run jobs."""
    lease_s: float = Field(default=30.0, gt=0)
    """How long a claimed job stays a worker's without a heartbeat; after it, the job is re-queued."""
    heartbeat_s: float = Field(default=2.0, gt=0)
    """How often a worker renews its leases and stores its jobs' counters."""
    cancel_poll_s: float = Field(default=0.25, gt=0)
    """How often a worker looks for cancellation requests of its running jobs (DELETE acts within this)."""
    poll_s: float = Field(default=0.2, gt=0)
    """How often an idle worker looks for a queued job."""
    event_interval_s: float = Field(default=0.25, ge=0)
    """Expansion events of a job are stored at most this often (the last one always is)."""
    max_queued: int = Field(default=10_000, ge=1)
    """Queued jobs the store accepts; beyond it, 429 with `Retry-After`."""
    retry_after_s: int = Field(default=5, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    """Largest request body; beyond it, 413."""
    limits: JobLimits = Field(default_factory=JobLimits)
    tokens: tuple[TokenSettings, ...] = ()
    """API tokens (`[[service.tokens]]`); none: no authentication (only allowed on loopback)."""
    allow_unauthenticated: bool = False
    """Serve without tokens on a non-loopback address (behind your own authenticating proxy)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed by CORS; none (the default): no CORS headers at all."""

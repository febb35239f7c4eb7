"""The job store's tables as SQLAlchemy Core objects: what the store's queries are written against.

The migrations in `migrations/versions/` create the same schema; they never import this module, so
an old revision keeps describing the schema as it was (a test checks the two agree at head).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# A 64-bit surrogate key on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
_BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

jobs = sa.Table(
    "jobs",
    metadata,
    # Insertion order breaks ties between equal created_at (list and claim order); never exposed.
    sa.Column("pk", _BigKey, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("request", sa.JSON(), nullable=False),
    sa.Column("result", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.Column("started_at", sa.Double(), nullable=True),
    sa.Column("finished_at", sa.Double(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(255), nullable=True),
    sa.Column("lease_expires_at", sa.Double(), nullable=True),
    sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("summary", sa.JSON(), nullable=False),
    sa.Column("last_event_seq", sa.Integer(), nullable=False, server_default="0"),
    sa.UniqueConstraint("id", name="uq_jobs_id"),
)

sa.Index("ix_jobs_state_created", jobs.c.state, jobs.c.created_at)
sa.Index("ix_jobs_owner_created", jobs.c.owner, jobs.c.created_at)
# NULL owners (authentication off) share one key space: a plain (owner, key) unique index
# would let NULL owners reuse a key, since NULLs never compare equal.
sa.Index(
    "ux_jobs_owner_idempotency",
    sa.func.coalesce(jobs.c.owner, ""),
    jobs.c.idempotency_key,
    unique=True,
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("job_id", sa.String(32), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Column("at", sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_events"),
    sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE", name="fk_job_events_job"),
)

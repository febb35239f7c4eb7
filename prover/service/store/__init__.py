"""The service's persistent job store (SQLite or PostgreSQL, Alembic migrations); see `store.JobStore`."""

from prover.service.store.store import JobStore, default_database_url, engine_url, settings_database_url, worker_id

__all__ = ["JobStore", "default_database_url", "engine_url", "settings_database_url", "worker_id"]

"""Fixtures of the service tests: a real PostgreSQL server for the session, when one is installed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.service.postgres import PostgresServer, find_bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server; skipped without Debian's postgresql (a failure under CI=true)."""
    bindir = find_bindir()
    if bindir is None:
        reason = "no PostgreSQL server binary (install Debian's postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must test the PostgreSQL store")
        pytest.skip(reason)
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session's PostgreSQL server (its `postgres` database)."""
    return postgres_server.url

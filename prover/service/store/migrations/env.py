"""Alembic environment of the job store.

`JobStore.migrate()` runs it with a programmatic `Config` and hands over an open connection in
`config.attributes["connection"]` (already inside the transaction that holds the migration lock);
run by hand (`alembic -x url=...` or a `sqlalchemy.url` option) it opens its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from prover.service.store.tables import metadata

VERSION_TABLE = "prover_jobs_alembic_version"

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Upgrade through the given connection, or one made from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the job store's migrations run online only (JobStore.migrate())")
run_migrations_online()

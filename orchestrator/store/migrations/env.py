"""Alembic environment: runs on the connection handed over by ``orchestrator.store.migrate``."""

from __future__ import annotations

from alembic import context

from orchestrator.store.migrate import VERSION_TABLE
from orchestrator.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # Our own version table: Dagster's PostgreSQL storage keeps its own `alembic_version`, and
    # both may live in one database.
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

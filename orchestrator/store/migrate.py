"""Schema migrations (alembic) with their own version table, applied by
``orchestrator db upgrade`` and by ``make dev``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.exceptions import StoreError
from orchestrator.store.engine import engine_for

VERSION_TABLE = "orchestrator_alembic_version"
_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def upgrade(url: str, revision: str = "head") -> str:
    """Bring the database at ``url`` to ``revision``; returns the revision now applied."""
    config = _config()
    try:
        with engine_for(url).begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return current_revision(url) or "base"
    except SQLAlchemyError:
        raise StoreError("apply migrations") from None


def current_revision(url: str) -> str | None:
    with engine_for(url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head

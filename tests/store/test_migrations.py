"""Migrations: our own version table, a database shared with Dagster's PostgreSQL storage, and
``db upgrade`` that is safe to repeat."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml

from orchestrator.store import Store
from orchestrator.store.migrate import VERSION_TABLE, current_revision, head_revision, upgrade
from tests.conftest import create_pg_database, drop_pg_database


def test_upgrade_is_idempotent_and_uses_own_version_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.sqlite'}"
    assert upgrade(url) == head_revision()
    assert upgrade(url) == head_revision()
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert VERSION_TABLE in tables and "alembic_version" not in tables
    assert {t for t in tables if not t.startswith("orch_")} == {VERSION_TABLE}


def test_one_postgres_database_shared_with_dagster(tmp_path: Path) -> None:
    url = create_pg_database("orch_shared")
    try:
        # Dagster first (its own `alembic_version`), then us, then Dagster again.
        home = tmp_path / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": {
            "postgres_url": url.replace("postgresql+psycopg2://", "postgresql://")}}}))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.get_runs()
        assert upgrade(url) == head_revision()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_runs() == []
            instance.all_instigator_state()
        Store(url).list_schedules()
        inspector = sa.inspect(sa.create_engine(url))
        tables = set(inspector.get_table_names())
        assert {"alembic_version", VERSION_TABLE, "runs", "jobs", "orch_schedules"} <= tables
        assert current_revision(url) == head_revision()
    finally:
        drop_pg_database(url)

"""Migrations: our own version table, a database shared with Dagster's PostgreSQL storage, and
``db upgrade`` that is safe to repeat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from orchestrator.store import Store
from orchestrator.store.migrate import VERSION_TABLE, current_revision, head_revision, upgrade
from orchestrator.store.tables import metadata
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


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'o.sqlite'}"
        return
    url = create_pg_database("orch_migrate")
    try:
        yield url
    finally:
        drop_pg_database(url)


def test_migrated_schema_matches_the_table_definitions(empty_url: str) -> None:
    upgrade(empty_url)
    with sa.create_engine(empty_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE,
                                                         "compare_type": False})
        assert compare_metadata(context, metadata) == []


def test_upgrade_from_0001_keeps_existing_rows(empty_url: str) -> None:
    upgrade(empty_url, "0001")
    engine = sa.create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO orch_executions (execution_id, request_id, source, workflow, "
            "environment, status, payload, attempts, created_at) VALUES ('e1', 'r1', 'api', "
            "'w', 'default', 'success', '{}', 1, '2026-11-21 10:00:00')"))
        conn.execute(sa.text(
            "INSERT INTO orch_alerts (execution_id, kind, message, details, created_at) "
            "VALUES ('e1', 'pipeline_fault', 'boom', '{}', '2026-11-21 10:00:00')"))
    assert upgrade(empty_url) == head_revision()
    store = Store(empty_url)
    assert store.get_execution("e1").status.value == "success"
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT message, delivery_status, delivery_attempts "
                                   "FROM orch_alerts")).one()
    assert tuple(row) == ("boom", "none", 0)

"""``orchestrator environments`` and ``orchestrator db prune`` as a user runs them, on SQLite
and PostgreSQL: retention overrides listed and validated (exit 2 naming the argument, nothing
written), a dry run that counts and removes nothing, a prune that prints what it removed."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.store import Store
from orchestrator.store import tables as t
from tests.acceptance.commands import CLI, ORCHESTRATOR, apply_digest, bad_input, ok, ok_json

pytestmark = pytest.mark.slow


def _finished(store: Store, execution_id: str, environment: str, ago: timedelta) -> None:
    at = datetime.now(UTC) - ago
    store.create_execution(Correlation(execution_id=execution_id, request_id="r",
                                       source=Source.API, workflow="digest",
                                       environment=environment), at, enqueue=True)
    store.finish_execution(execution_id, status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                           finalized_by="core", now=at)


def test_set_retention_lists_it_and_refuses_bad_input(cli: CLI,
                                                      tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    assert ok_json(cli("environments", "set-retention", "acme", "7d", "--json")) == {
        "environment": "acme", "retention": "7d", "source": "override"}
    assert ok_json(cli("environments", "list", "--json")) == [
        {"environment": "acme", "retention": "7d", "source": "override",
         "max_concurrent": None, "in_flight": 0},
        {"environment": "default", "retention": "30d", "source": "default",
         "max_concurrent": None, "in_flight": 0}]
    assert "RETENTION" in bad_input(cli("environments", "set-retention", "acme", "10m"))
    assert "ENVIRONMENT" in bad_input(cli("environments", "set-retention", "Bad Env", "7d"))
    assert "7d" in ok(cli("environments", "list")).stdout  # the refusals changed nothing
    ok(cli("environments", "set-retention", "acme", "default"))
    assert ok_json(cli("environments", "list", "--json"))[0]["source"] == "default"


def test_prune_dry_run_counts_then_prune_removes(cli: CLI,
                                                 cli_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    store = Store(cli_env["ORCHESTRATOR_DATABASE_URL"])
    _finished(store, "old", "default", timedelta(days=31))
    _finished(store, "acme-old", "acme", timedelta(days=8))
    _finished(store, "recent", "default", timedelta(days=8))
    ok(cli("environments", "set-retention", "acme", "7d"))

    dry = ok(cli("db", "prune", "--dry-run")).stdout
    assert dry.startswith("would remove 2 executions")
    assert len(store.list_executions(limit=10)) == 3
    done = ok_json(cli("db", "prune", "--json"))
    assert done["removed"]["executions"] == 2 and not done["dry_run"]
    assert [e.execution_id for e in store.list_executions(limit=10)] == ["recent"]
    assert ok(cli("db", "prune")).stdout.startswith("removed nothing")


def _bulk(store: Store, n: int, ago: timedelta) -> None:
    at = datetime.now(UTC) - ago
    rows = [dict(execution_id=f"bulk-{i:08d}", request_id="r", source="api", workflow="digest",
                 environment="default", status="success", outcome="success",
                 payload={}, attempts=1, finalized_by="core", created_at=at, finished_at=at)
            for i in range(n)]
    with store.engine.begin() as conn:
        conn.execute(t.executions.insert(), rows)


def _count(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t.executions)).scalar_one()


def test_a_prune_killed_midway_resumes_and_keeps_what_it_must(
        cli: CLI, cli_env: dict[str, str], tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    store = Store(cli_env["ORCHESTRATOR_DATABASE_URL"])
    _bulk(store, 20_000, timedelta(days=40))
    _finished(store, "recent", "default", timedelta(days=1))
    store.create_execution(Correlation(execution_id="waiting", request_id="r",
                                       source=Source.API, workflow="digest",
                                       environment="default"),
                           datetime.now(UTC) - timedelta(days=400), enqueue=True)
    pruner = subprocess.Popen([str(ORCHESTRATOR), "db", "prune", "--batch-size", "50"],
                              env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _count(store) == 20_002:  # until its first batches are committed
        assert pruner.poll() is None and time.monotonic() < deadline, "the prune never began"
        time.sleep(0.02)
    pruner.send_signal(signal.SIGKILL)
    pruner.wait(timeout=30)
    left = _count(store)
    assert 2 < left < 20_002, "killed too late to prove anything"
    assert ok(cli("db", "prune")).stdout.startswith(f"removed {left - 2} executions")
    assert {e.execution_id for e in store.list_executions(limit=10)} == {"recent", "waiting"}

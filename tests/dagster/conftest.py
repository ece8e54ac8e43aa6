"""Dagster fixtures: a real (temporary) Dagster instance and sensor evaluation helpers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from orchestrator.dagster.batch_job import execute_workflow_batch
from orchestrator.dagster.compat import SENSOR_NAME_TAG
from orchestrator.dagster.definitions import orchestrator_definitions
from orchestrator.dagster.jobs import execute_workflow
from orchestrator.domain.correlation import DAGSTER_RUN_KEY_TAG
from orchestrator.settings import Settings

# Dagster's queued run coordinator with no limit on runs at once, so the queue sensor hands out
# every waiting trigger (the run slots have tests of their own: test_run_slots.py).
UNLIMITED_RUNS = {"run_coordinator": {
    "module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
    "config": {"max_concurrent_runs": -1}}}


def consolidated(home: Path) -> dict[str, Any]:
    """Dagster's event log in one SQLite database under ``home`` (Dagster's
    ``ConsolidatedSqliteEventLogStorage``), instead of the default's database per run: creating
    a database for each run cost these tests 10-25% of their CPU (four files, one after the
    other: 36-37 s against 41-50 s). What they check (run tags, status, logs) reads the same
    from either; the product's own SQLite storage (one database per run) runs under the daemon
    tests (tests/acceptance)."""
    return {"event_log_storage": {
        "module": "dagster._core.storage.event_log", "class": "ConsolidatedSqliteEventLogStorage",
        "config": {"base_dir": str(home / "event_log")}}}


@pytest.fixture(scope="session")
def dagster_storage_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dagster's SQLite storage (runs, schedules, the event log), created once per worker
    and copied for each test's instance: creating it stamps and checks Dagster's migrations,
    ~0.25 s of CPU, a hundred times a suite."""
    path = tmp_path_factory.mktemp("dagster_storage")
    with dg.instance_for_test(overrides=consolidated(path), temp_dir=str(path)) as instance:
        instance.get_runs()
    (path / "dagster.yaml").unlink()
    return path


@contextmanager
def instance_from(template: Path, home: Path,
                  overrides: Mapping[str, Any]) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance (``dg.instance_for_test``) in ``home``, on a copy of the
    template's storage."""
    shutil.copytree(template, home, dirs_exist_ok=True)
    with dg.instance_for_test(overrides={**consolidated(home), **overrides},
                              temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture
def instance(dagster_storage_template: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    with instance_from(dagster_storage_template, tmp_path_factory.mktemp("dagster_home"),
                       UNLIMITED_RUNS) as instance:
        yield instance


def real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def minutes_ago(n: float) -> datetime:
    return real_now() - timedelta(minutes=n)


class SensorHarness:
    """Evaluates one of our sensors on a real instance, as the daemon would."""

    def __init__(self, instance: dg.DagsterInstance, store_url: str, name: str,
                 **settings: Any) -> None:
        self.instance = instance
        self.store_url = store_url
        # No look-ahead wait by default: these tests tick at arbitrary moments and count what
        # each tick requests (test_lookahead_* turn it on).
        settings.setdefault("dispatch_lookahead", timedelta(0))
        self.settings = Settings(database_url=store_url, **settings)
        self.sensor = orchestrator_definitions(self.settings).get_sensor_def(name)
        self.name = name
        self.cursor: str | None = None

    def tick(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        result = self.sensor(context)
        self.cursor = result.cursor or context.cursor
        return list(result.run_requests or [])

    def create_runs(self, requests: list[dg.RunRequest],
                    status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTING) -> None:
        """What the daemon does with the requests: one run per run key, tagged like its own."""
        jobs = {job.name: job for job in (execute_workflow, execute_workflow_batch)}
        for request in requests:
            self.instance.create_run_for_job(
                job_def=jobs[request.job_name or execute_workflow.name],
                run_config=request.run_config, status=status,
                tags={**request.tags, DAGSTER_RUN_KEY_TAG: request.run_key,
                      SENSOR_NAME_TAG: self.name})

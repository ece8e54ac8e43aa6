"""Shared fixtures: a clean environment, the store on SQLite and on a real PostgreSQL, and
factories. PostgreSQL tests fail (never skip) when ``CI=true`` and the server cannot be reached.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from harness import postgres
from harness.http_server import Answer, LoopbackServer, loopback_server
from orchestrator.domain.schedules import ScheduleSpec, validate_schedule
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store.engine import engine_for
from orchestrator.store.migrate import upgrade
from orchestrator.store.tables import metadata

IN_CI = os.environ.get("CI", "").lower() == "true"


def _read_migration_scripts_once() -> None:
    """Alembic reads a migration directory's every script each time a ``ScriptDirectory`` is
    made from a config, and Dagster makes one each time it opens or creates a SQLite database:
    each test's instance and each in-process run's event log. That was 40% of the CPU of the
    in-process Dagster tests (cProfile of tests/dagster/test_batch_runs.py). The scripts do not
    change during a suite: in this process each directory is read once. (Processes the tests
    start, daemons and run workers, read theirs as in production.)"""
    import threading

    from alembic.script import ScriptDirectory

    read = ScriptDirectory.from_config.__func__  # type: ignore[attr-defined]
    directories: dict[tuple[str | None, tuple[str, ...]], ScriptDirectory] = {}
    lock = threading.Lock()

    def from_config(cls: type[ScriptDirectory], config: Any) -> ScriptDirectory:
        key = (config.get_alembic_option("script_location"),
               tuple(config.get_version_locations_list() or ()))
        with lock:
            if key not in directories:
                directories[key] = read(cls, config)
            return directories[key]

    ScriptDirectory.from_config = classmethod(from_config)  # type: ignore[assignment]


_read_migration_scripts_once()


# The longest tests (seconds, measured under `make test` on the 2-core CI machine), by node id
# prefix. `make test` hands tests to the workers one at a time (`--dist loadgroup`) in collection
# order, so these are collected first, longest first: a long test handed out last would run
# alone at the end while the other workers sit idle. A test that takes more than ~5 s belongs
# here.
LONG_TESTS: dict[str, float] = {
    "tests/acceptance/test_api_daemon.py::": 50,
    "tests/acceptance/test_chaos_crash.py::": 50,
    "tests/acceptance/test_daemon_schedules.py::test_sigkill_mid_dispatch": 40,
    "tests/acceptance/test_celery_workers.py::test_a_killed_worker": 33,
    "tests/acceptance/test_daemon_faults.py::test_terminated_and_killed": 30,
    "tests/acceptance/test_celery_workers.py::": 28,
    "tests/acceptance/test_dagster_ui.py::": 28,
    "tests/api/test_fuzz.py::test_schemathesis": 12,
    "tests/acceptance/test_daemon_faults.py::test_run_retried_by_dagster": 21,
    "tests/acceptance/test_daemon_faults.py::test_killed_batch_run_worker": 16,
    "tests/acceptance/test_merged_definitions.py::": 16,
    "tests/acceptance/test_first_start.py::test_db_upgrade_then_daemon": 8,
    "tests/acceptance/test_first_start.py::test_daemon_on_empty_home": 8,
    "tests/acceptance/test_burst_gate_processes.py::": 7,
    "tests/acceptance/test_cli.py::test_unreachable_store": 7,
    "tests/acceptance/test_cli.py::test_db_upgrade_prints_revision": 6,
    "tests/api/test_store_outage.py::": 6,
    "tests/acceptance/test_first_start.py::": 5,
    "tests/acceptance/test_cli.py::test_run_reports_success_and_user_error": 5,
    "tests/acceptance/test_cli_retention.py::test_a_prune_killed_midway": 5,
    "tests/acceptance/test_key_lifecycle.py::": 4,
    "tests/acceptance/test_cli.py::test_run_pipeline_fault": 4,
    "tests/acceptance/test_harness.py::test_no_code_server": 4,
    "tests/dagster/test_database_outage.py::test_long_outage": 4,
    "tests/store/test_backfills.py::test_ten_thousand": 4,
    "tests/dagster/test_queue_fairness.py::test_burst_of_one_environment": 4,
}


def _expected_seconds(item: pytest.Item) -> float:
    return max((s for prefix, s in LONG_TESTS.items() if item.nodeid.startswith(prefix)),
               default=0.0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first; the rest keep their order (a stable sort)."""
    items.sort(key=lambda item: -_expected_seconds(item))


_STOP_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)


def _ignored_stop_signals() -> list[signal.Signals]:
    """Stop signals this process ignores (the kernel's view: a library may set it in C; none
    known where there is no /proc)."""
    try:
        with open("/proc/self/status") as status:
            mask = next(int(line.split()[1], 16) for line in status
                        if line.startswith("SigIgn:"))
    except (OSError, StopIteration):
        return []
    return [sig for sig in _STOP_SIGNALS if mask & (1 << (sig - 1))]


@pytest.fixture(autouse=True)
def _default_stop_signals() -> Iterator[None]:
    """Every process a test starts can be stopped. An ignored signal is inherited across exec:
    in a `make test` worker, SIGINT and SIGQUIT were left ignored after
    test_chaos_crash.py and test_api_daemon.py (which run Dagster's daemon and instance; the
    code that ignores them was not found), SIGTERM too by a later test, and every child
    started after that ignored SIGTERM: a 30 s wait for the harness's SIGKILL
    (test_harness.py's `stop`, 30.4 s instead of 0.3 s)."""
    yield
    for sig in _ignored_stop_signals():
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT
                      else signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's settings."""
    for name in list(os.environ):
        if name.startswith("ORCHESTRATOR_") and name != "ORCHESTRATOR_TEST_PG_URL":
            monkeypatch.delenv(name)


def require_postgres() -> None:
    problem = postgres.unreachable()
    if problem is None:
        return
    message = f"PostgreSQL at 127.0.0.1:5432 is not reachable ({problem})"
    if IN_CI:
        pytest.fail(message + "; CI requires it (.ci/run starts it)")
    pytest.skip(message)


def require_postgres_binaries() -> None:
    """For a private PostgreSQL server (``harness.postgres.private_postgres``)."""
    if postgres.server_binaries() is None:
        if IN_CI:
            pytest.fail(postgres.MISSING_BINARIES)
        pytest.skip(postgres.MISSING_BINARIES)


def create_pg_database(prefix: str = "orch_test") -> str:
    """A fresh database on the local server; returns its SQLAlchemy URL."""
    require_postgres()
    return postgres.create_database(prefix)


drop_pg_database = postgres.drop_database


@pytest.fixture(scope="session")
def pg_store_url() -> Iterator[str]:
    url = create_pg_database()
    upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite store, copied for each test (a copy takes a millisecond; migrating a
    fresh file, ~70 ms of CPU, hundreds of times a suite)."""
    path = tmp_path_factory.mktemp("template") / "orchestrator.sqlite"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine_for(url).dispose()
    with closing(sqlite3.connect(path)) as conn:  # all in the main file: no -wal file to copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _truncate(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


SQL_BACKENDS = ("sqlite", "postgres")
ALL_BACKENDS = ("sqlite", "postgres", "memory")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): the store backends a test runs on (default sqlite and "
        "postgres; the store contract adds memory; service-level tests run on memory only)")
    config.addinivalue_line(
        "markers", "sql_only(reason): a contract test the in-memory store cannot honour")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_url" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        backends = marker.args if marker is not None else SQL_BACKENDS
        if metafunc.definition.get_closest_marker("sql_only") is not None:
            backends = tuple(b for b in backends if b != "memory")
        metafunc.parametrize("store_url", backends, indirect=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same tests on every backend the test names (``backends`` marker)."""
    if request.param == "memory":
        from orchestrator.store.memory import forget

        url = f"memory://{uuid.uuid4().hex}"
        yield url
        forget(url)
        return
    if request.param == "sqlite":
        path = tmp_path / "orchestrator.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_store_url")
    _truncate(url)
    yield url


_MEMORY_TABLES = {"orch_executions": "executions", "orch_burst_buffer": "buffer",
                  "orch_queued_triggers": "queued", "orch_alerts": "alerts",
                  "orch_webhook_receipts": "receipts", "orch_idempotency_keys": "idempotency"}


def row_count(store: Store, table: sa.Table) -> int:
    """Rows of ``table`` on any backend (the in-memory store keeps a dict per table)."""
    if not store.is_sql:
        from orchestrator.store.memory import memory_state

        return len(memory_state(store.url).table(_MEMORY_TABLES[table.name]))
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.fixture
def store(store_url: str) -> Store:
    return Store(store_url)


NOW = datetime(2030, 1, 15, 12, 0, 30, tzinfo=UTC)


class ManualClock:
    """A clock the test moves (``advance``), injected where the code takes ``clock``: a test
    that needs a TTL or a window to pass moves it instead of sleeping."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def workflow_doc(name: str = "digest", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "blocks": [
            {"id": "fetch", "type": "transform", "with": {"total": 3}},
            {"id": "summary", "type": "transform",
             "with": {"count": "{{ fetch.total }}", "who": "{{ trigger.payload.user }}"}},
        ],
    }
    doc.update(extra)
    return doc


@pytest.fixture
def make_workflow(store: Store) -> Callable[..., Any]:
    def make(name: str = "digest", now: datetime = NOW, **extra: Any) -> Any:
        return store.apply_workflow(parse_workflow(workflow_doc(name, **extra), block_types()),
                                    now)[0]

    return make


@pytest.fixture
def make_schedule(store: Store, make_workflow: Callable[..., Any]) -> Callable[..., Any]:
    def make(*, workflow: str = "digest", now: datetime = NOW, **fields: Any) -> Any:
        try:
            store.get_workflow(fields.get("environment", "default"), workflow)
        except Exception:
            make_workflow(workflow, environment=fields.get("environment", "default"))
        fields.setdefault("payload", {"user": "ada"})
        if "cron" not in fields and "run_at" not in fields:
            fields["cron"] = "* * * * *"
        spec: ScheduleSpec = validate_schedule(workflow=workflow, now=now, **fields)
        return store.create_schedule(spec, now)[0]

    return make


@pytest.fixture
def sink() -> Iterator[LoopbackServer]:
    """The alert webhook: a loopback server answering 200 on ``/alerts``, recording each POST."""
    with loopback_server() as server:
        server.answer("/alerts", Answer(200, {"ok": True}))
        yield server


class FakeTime:
    """An injected clock and sleep: sleeping moves the clock, nothing waits."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

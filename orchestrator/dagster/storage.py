"""Dagster's storage, created once before the processes that would race on it.

Dagster's SQLite storages create their tables when they are constructed (in every process that
opens the instance: the daemon, the webserver, a code server, a run worker, this CLI), with
check-then-create-then-stamp and only a thread lock around the alembic calls. Two processes
opening a fresh home at the same moment can both find no revision and both stamp one: the
home then fails every later load ("Version table 'alembic_version' has more than one head
present", or "UNIQUE constraint failed: alembic_version.version_num" / "table ... already
exists" and the process exits). Two things prevent it:

- :func:`create_dagster_storage` (``orchestrator db upgrade``) creates the storage in one
  process before the daemon and the webserver start;
- :class:`LockedSqliteStorage` (``storage: custom:`` in ``examples/dagster.dev.yaml``) takes an
  exclusive ``flock`` on ``$DAGSTER_HOME/.orchestrator-storage.lock`` around that creation, so
  processes that start together on an empty home create it one after the other; the later ones
  find it stamped and create nothing.

:class:`PooledPostgresStorage` (``examples/dagster.yaml``) is dagster-postgres's storage keeping
its connections open in the long-lived processes (the daemon, the workers).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import pg_url_from_config

from orchestrator.dagster.compat import ConfigurableClassData, DagsterSqliteStorage

LOCK_FILENAME = ".orchestrator-storage.lock"
POOL_RECYCLE = 3600  # seconds a kept connection is reused before it is reopened
# Connections beyond the one kept, for a process's concurrent threads (opened and closed as
# dagster-postgres does without a pool): few, since every process of the deployment shares
# PostgreSQL's connection budget (orchestrator/store/engine.py).
POOL_MAX_OVERFLOW = 2


def remember_instigators_table(storage: Any) -> None:
    """Dagster's schedule storage asks the database catalog whether its ``instigators`` table
    exists on every read and write of a sensor's or schedule's state (``has_instigators_table``,
    reflection each time: several catalog queries per sensor tick in the daemon). A table that
    exists stays: once found, this storage remembers it (until then it asks, as Dagster does,
    so a storage opened before a migration still finds the table after it)."""
    ask = storage.has_instigators_table
    found: list[bool] = []

    def has_instigators_table() -> bool:
        if not found and ask():
            found.append(True)
        return bool(found)

    storage.has_instigators_table = has_instigators_table


@contextmanager
def storage_lock(base_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Exclusive inter-process lock on ``base_dir``'s storage (released when the holder exits,
    even by SIGKILL: the kernel drops an flock with its last file descriptor)."""
    path = Path(base_dir)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / LOCK_FILENAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class LockedSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (same files, same layout), created under
    :func:`storage_lock`. In ``dagster.yaml``::

        storage:
          custom:
            module: orchestrator.dagster.storage
            class: LockedSqliteStorage
            config:
              base_dir: {env: DAGSTER_HOME}
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        with storage_lock(base_dir):
            super().__init__(base_dir, inst_data=inst_data)
        remember_instigators_table(self.schedule_storage)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> LockedSqliteStorage:
        # Dagster's own from_config_value builds a DagsterSqliteStorage by name, not ``cls``.
        return cls.from_local(inst_data=inst_data, base_dir=config_value["base_dir"])


class PooledPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres's storage (same configuration, same tables) that keeps its connections
    open. Dagster opens a new PostgreSQL connection for every read and write (so idle
    processes hold none) except in dagster-webserver, which keeps them; the daemon and the
    run workers make a dozen small writes per run, and a new connection costs more than most
    of them (the daemon spent a quarter of its time connecting, measured with py-spy). Used as::

        storage:
          custom:
            module: orchestrator.dagster.storage
            class: PooledPostgresStorage
            config:
              postgres_db: {username: ..., password: ..., hostname: ..., db_name: ...}
    """

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(postgres_url, should_autocreate_tables=should_autocreate_tables,
                         inst_data=inst_data)
        for storage in (self.run_storage, self.event_log_storage, self.schedule_storage):
            # Dagster's own switch for the webserver; no statement timeout (0).
            storage.optimize_for_webserver(statement_timeout=0, pool_recycle=POOL_RECYCLE,
                                           max_overflow=POOL_MAX_OVERFLOW)
        remember_instigators_table(self.schedule_storage)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresStorage:
        # dagster-postgres's own from_config_value builds a DagsterPostgresStorage by name.
        return cls(postgres_url=pg_url_from_config(config_value), inst_data=inst_data,
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True))


def create_dagster_storage(home: str | os.PathLike[str]) -> str:
    """Open the Dagster instance of ``home`` (its ``dagster.yaml``) and touch its run, event log
    and schedule storage, so each has created its tables. Safe to repeat. Returns the storage's
    class name (never its URL: it may hold a password)."""
    Path(home).mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs_count()  # run storage
        instance.fetch_run_status_changes(dg.DagsterEventType.RUN_SUCCESS, limit=1)  # event log
        instance.all_instigator_state()  # schedule storage
        storage = instance.get_ref().storage_data
        return storage.class_name if storage else type(instance.run_storage).__name__

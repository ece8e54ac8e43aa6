"""The private Dagster names this package needs, imported in this one place.

Dagster does not export them from ``dagster``; an upgrade may move or rename them.
``tests/dagster/test_compat.py`` imports each one and fails loudly when one is gone, so an
upgrade breaks a test here rather than a daemon in production.
"""

from __future__ import annotations

# The default storage of a SQLite DAGSTER_HOME (no ``storage:`` in dagster.yaml): it creates
# history/runs.db, history/runs/index.db and schedules/schedules.db in its ``__init__``.
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData

__all__ = ["ConfigurableClassData", "DagsterSqliteStorage"]

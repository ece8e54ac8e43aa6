"""The private Dagster names this package needs, imported in this one place.

Dagster does not export them from ``dagster``; an upgrade may move or rename them.
``tests/dagster/test_compat.py`` imports each one and fails loudly when one is gone, so an
upgrade breaks a test here rather than a daemon in production.
"""

from __future__ import annotations

from dagster._core.events import RunFailureReason

# Dagster's own run-retry decision (the one its auto re-execution daemon takes), asked by the
# failure hook before the run has failed, rather than re-deriving it from the retry tags.
from dagster._core.execution.retries import auto_reexecution_should_retry_run

# The default storage of a SQLite DAGSTER_HOME (no ``storage:`` in dagster.yaml): it creates
# history/runs.db, history/runs/index.db and schedules/schedules.db in its ``__init__``.
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

# Tags Dagster itself writes: the run a retry launched, the sensor that requested a run, and
# the retry daemon's decision on a failed run.
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, SENSOR_NAME_TAG, WILL_RETRY_TAG
from dagster._serdes import ConfigurableClassData

# Dagster's cron iterator: the DST semantics our schedules match (tests compare with it).
from dagster._utils.schedules import cron_string_iterator

__all__ = [
    "AUTO_RETRY_RUN_ID_TAG",
    "SENSOR_NAME_TAG",
    "WILL_RETRY_TAG",
    "ConfigurableClassData",
    "DagsterSqliteStorage",
    "RunFailureReason",
    "auto_reexecution_should_retry_run",
    "cron_string_iterator",
]

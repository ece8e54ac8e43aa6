"""The private Dagster names this package needs, imported in this one place.

Dagster does not export them from ``dagster``; an upgrade may move or rename them.
``tests/dagster/test_compat.py`` imports each one and fails loudly when one is gone, so an
upgrade breaks a test here rather than a daemon in production.
"""

from __future__ import annotations

# What a run worker does with a launched run (``dagster api execute_run`` / ``resume_run``, and
# dagster-celery's tasks): the warm Celery worker (orchestrator/worker/app.py) calls it with an
# instance it keeps, instead of opening one per run.
from dagster._cli.api import _execute_run_command_body as execute_run_command_body
from dagster._cli.api import _resume_run_command_body as resume_run_command_body
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

# The sensor daemon's loop (``dagster-daemon run``) and its pace: an iteration starts at most
# every MIN_INTERVAL_LOOP_TIME seconds (5), whatever a sensor's minimum interval.
from dagster._daemon import sensor as sensor_daemon
from dagster._daemon.cli import run_command as daemon_run_command

# The run worker's arguments, packed by Dagster's serializer (CeleryRunLauncher sends them).
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
from dagster._serdes import ConfigurableClassData, unpack_value

# Dagster's cron iterator: the DST semantics our schedules match (tests compare with it).
from dagster._utils.schedules import cron_string_iterator

__all__ = [
    "AUTO_RETRY_RUN_ID_TAG",
    "SENSOR_NAME_TAG",
    "WILL_RETRY_TAG",
    "ConfigurableClassData",
    "DagsterSqliteStorage",
    "ExecuteRunArgs",
    "ResumeRunArgs",
    "RunFailureReason",
    "auto_reexecution_should_retry_run",
    "cron_string_iterator",
    "daemon_run_command",
    "execute_run_command_body",
    "resume_run_command_body",
    "set_sensor_loop_seconds",
    "unpack_value",
]


def set_sensor_loop_seconds(seconds: float) -> None:
    """Start sensor daemon iterations every ``seconds`` in this process (``orchestrator daemon``).
    An iteration only starts evaluations whose previous one has returned and whose minimum
    interval has passed, so a shorter loop adds no evaluations of a sensor that waits itself."""
    if not hasattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME"):
        raise RuntimeError("dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME is gone: this Dagster "
                           "release paces its sensor loop differently (orchestrator/dagster/"
                           "compat.py)")
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = seconds  # type: ignore[assignment]  # an int upstream

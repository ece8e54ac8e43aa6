"""The private Dagster names of ``orchestrator/dagster/compat.py`` still exist and still mean what
``orchestrator/dagster/storage.py`` relies on. A Dagster upgrade that moves or changes one fails
here, loudly, instead of in a daemon at first start."""

from __future__ import annotations

import inspect
from pathlib import Path

import dagster as dg
import pytest

from orchestrator.dagster import compat
from orchestrator.dagster.storage import LOCK_FILENAME, LockedSqliteStorage

REPO = Path(__file__).resolve().parents[2]


def test_private_imports_exist() -> None:
    from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
    from dagster._serdes import ConfigurableClassData

    assert compat.DagsterSqliteStorage is DagsterSqliteStorage
    assert compat.ConfigurableClassData is ConfigurableClassData
    assert set(compat.__all__) == {"DagsterSqliteStorage", "ConfigurableClassData",
                                   "ExecuteRunArgs", "ResumeRunArgs", "execute_run_command_body",
                                   "resume_run_command_body", "unpack_value",
                                   "daemon_run_command", "set_sensor_loop_seconds"}


def test_the_sensor_loop_is_still_paced_by_the_module_constant() -> None:
    # `orchestrator daemon` shortens the loop by setting it; the loop reads it every iteration.
    from dagster._daemon import sensor

    source = inspect.getsource(sensor.execute_sensor_iteration_loop)
    assert "MIN_INTERVAL_LOOP_TIME - loop_duration" in source
    assert sensor.MIN_INTERVAL_LOOP_TIME == 5
    assert compat.daemon_run_command.name == "run"


def test_run_worker_body_is_still_what_the_celery_worker_calls() -> None:
    # orchestrator/worker/app.py calls both with these keywords and unpacks what
    # dagster-celery's CeleryRunLauncher packs.
    for body in (compat.execute_run_command_body, compat.resume_run_command_body):
        assert list(inspect.signature(body).parameters) == [
            "run_id", "instance", "write_stream_fn", "set_exit_code_on_failure"]
    for args in (compat.ExecuteRunArgs, compat.ResumeRunArgs):
        assert {"run_id", "set_exit_code_on_failure"} <= set(args._fields)
    from dagster_celery.config import TASK_EXECUTE_JOB_NAME, TASK_RESUME_JOB_NAME

    from orchestrator.worker.app import TASK_EXECUTE_JOB, TASK_RESUME_JOB
    assert (TASK_EXECUTE_JOB, TASK_RESUME_JOB) == (TASK_EXECUTE_JOB_NAME, TASK_RESUME_JOB_NAME)


def test_sqlite_storage_is_still_what_the_locked_subclass_wraps() -> None:
    # LockedSqliteStorage locks around __init__(base_dir, inst_data): creation must happen there.
    params = list(inspect.signature(compat.DagsterSqliteStorage.__init__).parameters)
    assert params == ["self", "base_dir", "inst_data"]
    assert issubclass(LockedSqliteStorage, compat.DagsterSqliteStorage)
    assert {"run_storage", "event_log_storage", "schedule_storage"} <= set(
        dir(compat.DagsterSqliteStorage))
    data = compat.ConfigurableClassData("m", "C", "{}\n")
    assert (data.module_name, data.class_name, data.config_yaml) == ("m", "C", "{}\n")


def test_default_sqlite_home_uses_the_wrapped_class(tmp_path: Path) -> None:
    # A home without ``storage:`` gets DagsterSqliteStorage: LockedSqliteStorage is that, locked.
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        ref = instance.get_ref()
        assert ref.storage_data is not None
        assert ref.storage_data.class_name == compat.DagsterSqliteStorage.__name__


def test_locked_storage_keeps_dagsters_layout(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Same files as Dagster's default storage, plus the lock file: switching a home to it (or
    back) keeps its history."""
    default, locked = tmp_path / "default", tmp_path / "locked"
    default.mkdir()
    locked.mkdir()
    (locked / "dagster.yaml").write_text((REPO / "examples" / "dagster.dev.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(locked))  # the yaml's base_dir: {env: DAGSTER_HOME}
    for home in (default, locked):
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.get_runs_count()
            if home == locked:
                assert isinstance(instance.get_ref().storage, LockedSqliteStorage)

    def files(home: Path) -> set[str]:
        return {str(p.relative_to(home)) for p in home.rglob("*")
                if p.is_file() and p.name != "dagster.yaml"}

    assert files(locked) == files(default) | {LOCK_FILENAME}
    assert {"history/runs.db", "history/runs/index.db", "schedules/schedules.db"} <= files(locked)

"""The private Dagster names of ``orchestrator/dagster/compat.py`` still exist and still mean what
``orchestrator/dagster/storage.py`` relies on. A Dagster upgrade that moves or changes one fails
here, loudly, instead of in a daemon at first start."""

from __future__ import annotations

import inspect
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestrator.dagster import compat
from orchestrator.dagster.storage import LOCK_FILENAME, LockedSqliteStorage

REPO = Path(__file__).resolve().parents[2]


def test_private_imports_exist() -> None:
    from dagster._core.events import RunFailureReason
    from dagster._core.execution.retries import auto_reexecution_should_retry_run
    from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
    from dagster._core.storage.tags import (
        AUTO_RETRY_RUN_ID_TAG,
        SENSOR_NAME_TAG,
        WILL_RETRY_TAG,
    )
    from dagster._serdes import ConfigurableClassData
    from dagster._utils.schedules import cron_string_iterator

    assert compat.DagsterSqliteStorage is DagsterSqliteStorage
    assert compat.ConfigurableClassData is ConfigurableClassData
    assert compat.RunFailureReason is RunFailureReason
    assert compat.auto_reexecution_should_retry_run is auto_reexecution_should_retry_run
    assert compat.cron_string_iterator is cron_string_iterator
    assert (compat.AUTO_RETRY_RUN_ID_TAG, compat.SENSOR_NAME_TAG, compat.WILL_RETRY_TAG) == (
        AUTO_RETRY_RUN_ID_TAG, SENSOR_NAME_TAG, WILL_RETRY_TAG) == (
        "dagster/auto_retry_run_id", "dagster/sensor_name", "dagster/will_retry")
    assert set(compat.__all__) == {
        "DagsterSqliteStorage", "ConfigurableClassData", "RunFailureReason",
        "auto_reexecution_should_retry_run", "cron_string_iterator", "AUTO_RETRY_RUN_ID_TAG",
        "SENSOR_NAME_TAG", "WILL_RETRY_TAG", "ExecuteRunArgs", "ResumeRunArgs",
        "execute_run_command_body", "resume_run_command_body", "unpack_value",
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


def test_no_private_dagster_import_outside_compat() -> None:
    """Every ``dagster._`` import of the package, its tests and bench goes through compat."""
    offenders = []
    for root in ("orchestrator", "tests", "bench"):
        for path in (REPO / root).rglob("*.py"):
            if path in (REPO / "orchestrator/dagster/compat.py", Path(__file__).resolve()):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if line.lstrip().startswith(("from dagster._", "import dagster._")):
                    offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert offenders == []


def test_retry_decision_is_dagsters_own(tmp_path: Path) -> None:
    """The hook asks Dagster's own run-retry decision for a run about to fail: it still takes
    (instance, run, reason), says no for a run that has not failed and follows max retries."""
    from orchestrator.dagster.jobs import will_be_retried

    params = list(inspect.signature(compat.auto_reexecution_should_retry_run).parameters)
    assert params == ["instance", "run", "run_failure_reason"]
    (tmp_path / "dagster.yaml").write_text("run_retries:\n  enabled: true\n  max_retries: 1\n")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        run = instance.create_run_for_job(dg.GraphDefinition(name="g").to_job(), run_id=None)
        started = run.with_status(dg.DagsterRunStatus.STARTED)
        assert not compat.auto_reexecution_should_retry_run(
            instance, started, compat.RunFailureReason.STEP_FAILURE)
        assert will_be_retried(instance, started)
        assert not will_be_retried(instance, started.with_tags(
            {**started.tags, "dagster/max_retries": "0"}))
        assert not will_be_retried(instance, started.with_tags(
            {**started.tags, "dagster/retry_on_asset_or_op_failure": "false"}))


def test_dagsters_interruption_classifies_as_cancelled() -> None:
    """A terminated run's op sees Dagster's interruption, a BaseException: ``cancelled``."""
    from orchestrator.domain.failures import classify
    from orchestrator.domain.records import Outcome

    assert classify(dg.DagsterExecutionInterruptedError()) is Outcome.CANCELLED


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



def test_a_locked_sqlite_home_remembers_the_instigators_table(tmp_path: Path) -> None:
    """The schedule storage of a LockedSqliteStorage home answers from memory once the table is
    found (``remember_instigators_table``), and reads sensor state as before."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"custom": {
        "module": "orchestrator.dagster.storage", "class": "LockedSqliteStorage",
        "config": {"base_dir": str(tmp_path)}}}}))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        schedules = instance.schedule_storage
        assert schedules is not None and schedules.has_instigators_table()
        assert schedules.has_instigators_table.__qualname__.startswith(
            "remember_instigators_table")
        assert instance.all_instigator_state() == []

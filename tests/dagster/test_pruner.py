"""``retention_pruner`` on a real Dagster instance, on SQLite and PostgreSQL: pruned executions
take their Dagster runs with them (a batch run once its last member goes), an unfinished run is
never deleted, and ``ORCHESTRATOR_PRUNE_DAGSTER_RUNS=false`` keeps them all."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from orchestrator.dagster.batch_job import batch_run_config, execute_workflow_batch
from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.sensors import PRUNER_SENSOR
from orchestrator.domain.correlation import TAG_BATCH_ID, Correlation, Source
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.exceptions import NotFound
from orchestrator.store import Store
from tests.dagster.conftest import SensorHarness, real_now


def _finished(store: Store, instance: dg.DagsterInstance, execution_id: str, ago: timedelta,
              *, run_status: dg.DagsterRunStatus = dg.DagsterRunStatus.SUCCESS,
              own_run: bool = True) -> str | None:
    """A terminal execution finished ``ago``; with ``own_run`` its run in Dagster."""
    at = real_now() - ago
    correlation = Correlation(execution_id=execution_id, request_id="r", source=Source.API,
                              workflow="digest", environment="default")
    store.create_execution(correlation, at, enqueue=True)
    run_id = None
    if own_run:
        run_id = instance.create_run_for_job(
            job_def=execute_workflow, status=run_status, tags=correlation.tags(),
            run_config=run_config_for(correlation)).run_id
    store.finish_execution(execution_id, status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                           finalized_by="core", now=at, dagster_run_id=run_id)
    return run_id


def _gone(store: Store, execution_id: str) -> bool:
    try:
        store.get_execution(execution_id)
    except NotFound:
        return True
    return False


def test_pruned_executions_take_their_runs_and_unfinished_runs_stay(
        instance, store_url, store, make_workflow) -> None:
    make_workflow()
    old = _finished(store, instance, "old", timedelta(days=40))
    fresh = _finished(store, instance, "fresh", timedelta(days=1))
    busy = _finished(store, instance, "busy", timedelta(days=40),
                     run_status=dg.DagsterRunStatus.STARTED)  # a retry still running, say
    SensorHarness(instance, store_url, PRUNER_SENSOR).tick()
    assert (_gone(store, "old"), _gone(store, "fresh"), _gone(store, "busy")) == (
        True, False, True)
    assert instance.get_run_by_id(old) is None
    assert instance.get_run_by_id(fresh) is not None
    assert instance.get_run_by_id(busy) is not None


def test_a_batch_run_goes_with_its_last_member(instance, store_url, store,
                                               make_workflow) -> None:
    make_workflow()
    for execution_id, ago in (("m1", timedelta(days=40)), ("m2", timedelta(hours=2))):
        _finished(store, instance, execution_id, ago, own_run=False)
    batch = store.batches.claim_queued("default", ["m1", "m2"], real_now())
    assert batch is not None
    run = instance.create_run_for_job(job_def=execute_workflow_batch,
                                      status=dg.DagsterRunStatus.SUCCESS,
                                      run_config=batch_run_config(batch.batch_id),
                                      tags={TAG_BATCH_ID: batch.batch_id})
    sensor = SensorHarness(instance, store_url, PRUNER_SENSOR)
    sensor.tick()
    assert (_gone(store, "m1"), _gone(store, "m2")) == (True, False)
    assert instance.get_run_by_id(run.run_id) is not None  # m2 is still carried by it
    store.retention.set_retention("default", timedelta(hours=1), real_now())
    sensor.tick()
    assert _gone(store, "m2") and instance.get_run_by_id(run.run_id) is None


def test_dagster_runs_can_be_kept(instance, store_url, store, make_workflow) -> None:
    make_workflow()
    run_id = _finished(store, instance, "old", timedelta(days=40))
    SensorHarness(instance, store_url, PRUNER_SENSOR, prune_dagster_runs=False).tick()
    assert _gone(store, "old") and instance.get_run_by_id(run_id) is not None

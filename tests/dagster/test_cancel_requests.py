"""Cancel requests carried out by the reconciler on a real Dagster instance, on SQLite and
PostgreSQL: a running execution's own run is asked to stop and the execution ends
``cancelled`` once it has (no alert); in a batch run only the cancelled member ends."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from orchestrator.dagster.batch_job import batch_run_config, execute_workflow_batch
from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.sensors import RECONCILER_SENSOR
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.records import CancelOutcome, ExecutionStatus, Outcome
from tests.dagster.conftest import SensorHarness


def test_a_running_execution_has_its_run_stopped_then_ends_cancelled(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow()
    c = Correlation(execution_id=new_id(), request_id="r", source=Source.API,
                    workflow="digest", environment="default", payload={})
    run = instance.create_run_for_job(job_def=execute_workflow, run_config=run_config_for(c),
                                      tags=c.tags(), status=dg.DagsterRunStatus.STARTED)
    store.create_execution(c, datetime.now(UTC))
    store.start_execution(c.execution_id, dagster_run_id=run.run_id, workflow_version=1,
                          now=datetime.now(UTC))
    assert store.cancellation.cancel(c.execution_id, datetime.now(UTC))[1] is \
        CancelOutcome.REQUESTED
    reconciler = SensorHarness(instance, store_url, RECONCILER_SENSOR,
                               alert_webhook_url=f"{sink.url}/alerts")
    reconciler.tick()
    # Asked to stop (no process here answers, as a worker would: Dagster's run monitoring
    # ends such a run); the execution waits for the run to end.
    assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.CANCELING
    assert store.get_execution(c.execution_id).status is ExecutionStatus.RUNNING
    instance.report_run_canceled(instance.get_run_by_id(run.run_id))
    reconciler.tick()
    record = store.get_execution(c.execution_id)
    assert (record.status, record.outcome) == (ExecutionStatus.CANCELLED, Outcome.CANCELLED)
    assert store.list_alerts() == [] and sink.hits("/alerts") == []


def test_in_a_batch_run_only_the_cancelled_member_ends(instance, store_url, store,
                                                      make_workflow) -> None:
    make_workflow()
    members = [Correlation(execution_id=new_id(), request_id="r", source=Source.API,
                           workflow="digest", environment="default", payload={})
               for _ in range(2)]
    for c in members:
        store.create_execution(c, datetime.now(UTC), enqueue=True)
    batch = store.batches.claim_queued("default", [c.execution_id for c in members],
                                       datetime.now(UTC))
    assert batch is not None
    run = instance.create_run_for_job(job_def=execute_workflow_batch,
                                      run_config=batch_run_config(batch.batch_id),
                                      status=dg.DagsterRunStatus.STARTED)
    store.batches.open(batch.batch_id, dagster_run_id=run.run_id, now=datetime.now(UTC))
    store.cancellation.cancel(members[0].execution_id, datetime.now(UTC))
    SensorHarness(instance, store_url, RECONCILER_SENSOR).tick()
    cancelled, other = (store.get_execution(c.execution_id) for c in members)
    assert (cancelled.status, cancelled.finalized_by) == (ExecutionStatus.CANCELLED, "cancel")
    assert other.status is ExecutionStatus.RUNNING
    assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.STARTED
    assert store.list_alerts() == []

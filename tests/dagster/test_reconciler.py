"""The reconciler on a real Dagster instance, on SQLite and PostgreSQL: runs that ended without a
hook (cancelled, failed before the op, worker killed) get exactly one terminal state and, for
faults, exactly one alert; alert webhooks are retried until delivered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from harness.http_server import Answer, LoopbackServer, loopback_server
from orchestrator.alerts import Alerter
from orchestrator.dagster.compat import WILL_RETRY_TAG
from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.dagster.runs import DagsterRuns
from orchestrator.dagster.sensors import RECONCILER_SENSOR
from orchestrator.domain.correlation import TAG_OUTCOME, Correlation, Source, new_id
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.execution import reconcile as reconcile_module
from orchestrator.execution.reconcile import reconcile
from orchestrator.store import Store
from tests.dagster.conftest import SensorHarness

LEASE = timedelta(seconds=30)


def _now() -> datetime:
    return datetime.now(UTC)


def _queued(store: Store, workflow: str = "digest") -> Correlation:
    correlation = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                              workflow=workflow, environment="default", payload={})
    store.create_execution(correlation, _now())
    return correlation


def _run_for(instance: dg.DagsterInstance, correlation: Correlation,
             status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED) -> dg.DagsterRun:
    return instance.create_run_for_job(job_def=execute_workflow, status=status,
                                       run_config=run_config_for(correlation),
                                       tags=correlation.tags())


def _alerter(store: Store, sink: LoopbackServer | None, clock=_now) -> Alerter:
    return Alerter(store=store, webhook_url=f"{sink.url}/alerts" if sink else None,
                   ui_url="http://127.0.0.1:3000", clock=clock)


def test_cancelled_run_ends_cancelled_without_alert(instance, store_url, store, make_workflow,
                                                    sink) -> None:
    make_workflow()
    correlation = _queued(store)
    run = _run_for(instance, correlation, dg.DagsterRunStatus.NOT_STARTED)
    instance.report_run_canceled(run)
    harness = SensorHarness(instance, store_url, RECONCILER_SENSOR,
                            alert_webhook_url=f"{sink.url}/alerts")
    harness.tick()
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.CANCELLED, Outcome.CANCELLED, "reconciler")
    assert execution.dagster_run_id == run.run_id
    assert instance.get_run_by_id(run.run_id).tags[TAG_OUTCOME] == "cancelled"
    assert store.list_alerts() == [] and sink.hits("/alerts") == []


class _BrokenStore(OrchestratorStore):
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        raise RuntimeError("resource init failed")


def test_run_failing_before_the_op_is_settled_as_a_fault_with_one_alert(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow()
    correlation = _queued(store)
    result = execute_workflow.execute_in_process(
        run_config=run_config_for(correlation), instance=instance, tags=correlation.tags(),
        raise_on_error=False, resources={STORE_RESOURCE: _BrokenStore(database_url=store_url)})
    assert not result.success  # no hook ran: the op never started
    assert store.get_execution(correlation.execution_id).status is ExecutionStatus.QUEUED

    harness = SensorHarness(instance, store_url, RECONCILER_SENSOR,
                            alert_webhook_url=f"{sink.url}/alerts")
    harness.tick()
    harness.tick()
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "reconciler")
    assert execution.dagster_run_id == result.run_id
    assert instance.get_run_by_id(result.run_id).tags[TAG_OUTCOME] == "pipeline_fault"
    [alert] = store.list_alerts()
    assert alert.execution_id == correlation.execution_id
    [post] = sink.hits("/alerts")
    assert post.json()["run_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"


def test_expired_lease_fails_the_run_and_settles_the_execution_once(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow()
    correlation = _queued(store)
    run = _run_for(instance, correlation)
    started = _now() - timedelta(minutes=5)
    store.start_execution(correlation.execution_id, dagster_run_id=run.run_id,
                          workflow_version=1, now=started)  # heartbeat 5 minutes old
    alive = _queued(store)  # a healthy neighbour, heartbeat fresh
    alive_run = _run_for(instance, alive)
    store.start_execution(alive.execution_id, dagster_run_id=alive_run.run_id,
                          workflow_version=1, now=_now())

    tick = reconcile(store, DagsterRuns(instance), _alerter(store, sink), now=_now(),
                     cursor=None, lease_timeout=LEASE)
    assert tick.expired_leases == 1
    assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.FAILURE
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "reconciler")
    assert "no heartbeat for over 30s" in execution.error["message"]
    assert store.get_execution(alive.execution_id).status is ExecutionStatus.RUNNING
    assert instance.get_run_by_id(alive_run.run_id).status is dg.DagsterRunStatus.STARTED

    again = reconcile(store, DagsterRuns(instance), _alerter(store, sink), now=_now(),
                      cursor=tick.cursor, lease_timeout=LEASE)
    assert again.finalized == [] and again.expired_leases == 0
    assert len(store.list_alerts()) == 1 and len(sink.hits("/alerts")) == 1


def test_failure_that_dagster_will_retry_stays_open_until_the_retry_never_comes(
        instance, store_url, store, make_workflow) -> None:
    make_workflow()
    correlation = _queued(store)
    run = _run_for(instance, correlation)
    store.start_execution(correlation.execution_id, dagster_run_id=run.run_id,
                          workflow_version=1, now=_now() - timedelta(seconds=45))
    instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "true"})
    instance.report_run_failed(instance.get_run_by_id(run.run_id))

    tick = reconcile(store, DagsterRuns(instance), _alerter(store, None), now=_now(),
                     cursor=None, lease_timeout=LEASE)
    assert tick.finalized == []
    assert store.get_execution(correlation.execution_id).status is ExecutionStatus.RUNNING

    later = _now() + 2 * LEASE  # no retry run appeared
    tick = reconcile(store, DagsterRuns(instance), _alerter(store, None, lambda: later),
                     now=later, cursor=tick.cursor, lease_timeout=LEASE)
    [settled] = tick.finalized
    assert settled.outcome is Outcome.PIPELINE_FAULT
    assert len(store.list_alerts()) == 1


def test_one_tick_settles_more_ended_runs_than_a_page(instance, store_url, store,
                                                      make_workflow, monkeypatch) -> None:
    # A page of 10, not 200: the same paging, without creating 215 Dagster runs.
    monkeypatch.setattr(reconcile_module, "PAGE", 10)
    make_workflow()
    correlations = [_queued(store) for _ in range(reconcile_module.PAGE + 15)]
    for correlation in correlations:
        _run_for(instance, correlation, dg.DagsterRunStatus.CANCELED)
    harness = SensorHarness(instance, store_url, RECONCILER_SENSOR)
    harness.tick()
    statuses = {e.status for e in store.executions_by_id(
        [c.execution_id for c in correlations]).values()}
    assert statuses == {ExecutionStatus.CANCELLED}
    assert harness.cursor is not None


def test_a_run_ending_within_the_cursors_second_is_settled_by_the_next_tick(
        instance, store_url, store, make_workflow) -> None:
    """Dagster keeps update times to the second: a run that ends in the second a tick moved
    its cursor to comes after that tick's read, and the next tick still settles it."""
    make_workflow()
    first, second = _queued(store), _queued(store)
    _run_for(instance, first, dg.DagsterRunStatus.CANCELED)
    harness = SensorHarness(instance, store_url, RECONCILER_SENSOR)
    harness.tick()
    assert store.get_execution(first.execution_id).status is ExecutionStatus.CANCELLED
    _run_for(instance, second, dg.DagsterRunStatus.CANCELED)  # most likely the same second
    harness.tick()
    assert store.get_execution(second.execution_id).status is ExecutionStatus.CANCELLED


def test_alert_delivery_is_retried_with_backoff_until_delivered(instance, store_url, store,
                                                                make_workflow) -> None:
    with loopback_server() as sink:
        sink.answer("/alerts", Answer(500, "down"), Answer(503, "still down"),
                    Answer(200, {"ok": True}))
        make_workflow()
        correlation = _queued(store)
        run = _run_for(instance, correlation)
        instance.report_run_failed(run)
        t0 = _now()
        tick = reconcile(store, DagsterRuns(instance), _alerter(store, sink, lambda: t0),
                         now=t0, cursor=None, lease_timeout=LEASE)
        [alert] = store.list_alerts()
        assert (alert.delivery_status.value, alert.delivery_attempts) == ("pending", 1)
        assert alert.next_delivery_at == t0 + timedelta(seconds=10)

        t1 = t0 + timedelta(seconds=5)  # not due yet
        reconcile(store, DagsterRuns(instance), _alerter(store, sink, lambda: t1), now=t1,
                  cursor=tick.cursor, lease_timeout=LEASE)
        assert len(sink.hits("/alerts")) == 1

        for seconds in (11, 60):
            moment = t0 + timedelta(seconds=seconds)
            reconcile(store, DagsterRuns(instance), _alerter(store, sink, lambda m=moment: m),
                      now=moment, cursor=tick.cursor, lease_timeout=LEASE)
        [alert] = store.list_alerts()
        assert (alert.delivery_status.value, alert.delivery_attempts) == ("delivered", 3)
        posts = sink.hits("/alerts")
        assert len(posts) == 3 and {p.json()["alert_id"] for p in posts} == {alert.id}


def test_a_silent_started_run_without_a_lease_is_failed_and_what_it_left_open_settled(
        instance, store_url, store, make_workflow, sink) -> None:
    """A worker killed before the op's first heartbeat, or after the execution was finalized
    but before the run reported its end, leaves a STARTED run that nothing else ends (a Celery
    worker: no code server watches it). Once it has been silent for a lease: failed; a queued
    execution it carried becomes a pipeline fault with one alert; a finished one is left as it
    is, without an alert; a run whose execution still renews its lease is left alone."""
    make_workflow()
    now = _now()
    later = now + 2 * LEASE  # the injected clock: every run below has been silent a lease
    finished = _queued(store)
    finished_run = _run_for(instance, finished)
    store.start_execution(finished.execution_id, dagster_run_id=finished_run.run_id,
                          workflow_version=1, now=now)
    store.finish_execution(finished.execution_id, status=ExecutionStatus.SUCCESS,
                           outcome=Outcome.SUCCESS, finalized_by="core", now=now)
    never = _queued(store)
    never_run = _run_for(instance, never)
    alive = _queued(store)
    alive_run = _run_for(instance, alive)
    store.start_execution(alive.execution_id, dagster_run_id=alive_run.run_id,
                          workflow_version=1, now=later - timedelta(seconds=1))

    tick = reconcile(store, DagsterRuns(instance), _alerter(store, sink), now=later,
                     cursor=None, lease_timeout=LEASE)
    assert tick.silent_runs == 2
    for run in (finished_run, never_run):
        assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.FAILURE
    assert store.get_execution(finished.execution_id).outcome is Outcome.SUCCESS
    execution = store.get_execution(never.execution_id)
    assert (execution.outcome, execution.finalized_by) == (Outcome.PIPELINE_FAULT, "reconciler")
    assert [a.execution_id for a in store.list_alerts()] == [never.execution_id]
    assert instance.get_run_by_id(alive_run.run_id).status is dg.DagsterRunStatus.STARTED
    assert store.get_execution(alive.execution_id).status is ExecutionStatus.RUNNING

    again = reconcile(store, DagsterRuns(instance), _alerter(store, sink), now=later,
                      cursor=tick.cursor, lease_timeout=LEASE)
    assert again.silent_runs == 0 and again.finalized == []
    assert len(store.list_alerts()) == 1

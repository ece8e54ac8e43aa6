"""Batch runs on a real Dagster instance, on SQLite and PostgreSQL: packing by the sensors
(lone triggers keep their own run), the claim (one batch per execution, a crash repeats the same
batch), the batch run itself (isolation of outcomes, concurrency, retries) and the settling of a
batch run that failed as a whole (one alert per incident)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest

from harness.http_server import Answer, LoopbackServer, loopback_server
from orchestrator.alerts import Alerter
from orchestrator.dagster.batch_job import batch_run_config, execute_workflow_batch
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.dagster.sensors import QUEUE_SENSOR, RECONCILER_SENSOR, SCHEDULE_SENSOR
from orchestrator.domain.correlation import (
    TAG_BATCH_ID,
    TAG_BATCH_SIZE,
    TAG_ENVIRONMENT,
    TAG_EXECUTION_ID,
    TAG_OUTCOME,
    TAG_OUTCOMES,
    Correlation,
    Source,
    iso_utc,
    new_id,
)
from orchestrator.domain.records import ExecutionStatus, Outcome, TriggerStatus
from orchestrator.store import Store
from tests.dagster.conftest import SensorHarness, minutes_ago, real_now


def _queue(store: Store, n: int, *, workflow: str = "digest", environment: str = "default",
           payload: dict | None = None) -> list[Correlation]:
    out = []
    for i in range(n):
        c = Correlation(execution_id=new_id(), request_id=f"req-{environment}-{i}",
                        source=Source.API, workflow=workflow, environment=environment,
                        payload={"user": f"u{i}"} if payload is None else payload)
        store.create_execution(c, real_now() + timedelta(microseconds=i), enqueue=True)
        out.append(c)
    return out


def _batches(requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    return [r for r in requests if r.job_name == execute_workflow_batch.name]


def _members(store: Store, request: dg.RunRequest) -> list[str]:
    return [m.execution_id for m in store.batches.members(request.tags[TAG_BATCH_ID])]


def _resource(store_url: str, sink: LoopbackServer | None = None,
              **fields) -> OrchestratorStore:
    return OrchestratorStore(database_url=store_url, dagster_ui_url="http://127.0.0.1:3000",
                             alert_webhook_url=f"{sink.url}/alerts" if sink else None, **fields)


def _run_batch(instance: dg.DagsterInstance, store_url: str, request: dg.RunRequest,
               sink: LoopbackServer | None = None) -> dg.ExecuteInProcessResult:
    return execute_workflow_batch.execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags,
        raise_on_error=False, resources={STORE_RESOURCE: _resource(store_url, sink)})


# ------------------------------------------------------------------------------ packing


def test_lone_trigger_keeps_its_own_run_and_a_pile_shares_batch_runs(
        instance, store_url, store, make_workflow) -> None:
    make_workflow()
    make_workflow(environment="small")
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=4)
    [alone] = _queue(store, 1)
    [request] = sensor.tick()
    assert (request.run_key, request.job_name) == (f"trigger:{alone.execution_id}",
                                                   "execute_workflow")
    sensor.create_runs([request])
    assert sensor.tick() == []

    burst = _queue(store, 9)
    [lone_small] = _queue(store, 1, environment="small")
    requests = sensor.tick()
    batches = _batches(requests)
    assert [len(_members(store, b)) for b in batches] == [4, 4]  # the 9th: a run of its own
    singles = {r.tags[TAG_EXECUTION_ID] for r in requests if r not in batches}
    assert singles == {burst[8].execution_id, lone_small.execution_id}
    for b in batches:
        assert b.run_key == f"batch:{b.tags[TAG_BATCH_ID]}"
        assert (b.tags[TAG_ENVIRONMENT], b.tags[TAG_BATCH_SIZE]) == ("default", "4")
        assert b.run_config["ops"]["run_batch"]["config"] == {
            "batch_id": b.tags[TAG_BATCH_ID]}
    # Oldest first: the first batch holds the oldest four.
    assert _members(store, batches[0]) == [c.execution_id for c in burst[:4]]
    # Every member is claimed by exactly one batch, and waits (queued) until its run exists.
    claimed = [e for b in batches for e in _members(store, b)]
    assert len(claimed) == len(set(claimed)) == 8
    assert all(store.get_execution(e).run_batch_id for e in claimed)
    assert {q.status for q in store.queued_triggers(100)} == {TriggerStatus.QUEUED}


def test_a_crash_before_the_run_exists_repeats_the_same_batch(instance, store_url, store,
                                                               make_workflow) -> None:
    make_workflow()
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
    queued = _queue(store, 5)
    [first] = sensor.tick()
    # The daemon died before creating the run: the next tick asks for the same batch.
    [again] = sensor.tick()
    assert (again.run_key, again.run_config) == (first.run_key, first.run_config)
    assert _members(store, again) == [c.execution_id for c in queued]
    sensor.create_runs([again])
    assert sensor.tick() == []
    assert store.queued_triggers(100) == []  # marked dispatched once the run exists
    assert store.batches.pending("queue", 10) == []


def test_a_workflow_can_opt_out_of_batching(instance, store_url, store, make_workflow) -> None:
    make_workflow("solo", batch=False)
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
    queued = _queue(store, 3, workflow="solo")
    requests = sensor.tick()
    assert _batches(requests) == []
    assert [r.run_key for r in requests] == [f"trigger:{c.execution_id}" for c in queued]


def test_a_burst_fills_batches_without_starving_another_environment(
        instance, store_url, store, make_workflow) -> None:
    make_workflow()
    make_workflow(environment="small")
    burst = _queue(store, 60)
    [lone] = _queue(store, 1, environment="small")
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_runs_per_tick=3,
                           max_batch_size=10)
    first = sensor.tick()
    assert len(first) == 3  # capped in runs per tick
    assert lone.execution_id in {r.tags.get(TAG_EXECUTION_ID) for r in first}
    assert [_members(store, b) for b in _batches(first)] == [
        [c.execution_id for c in burst[:10]], [c.execution_id for c in burst[10:20]]]


def test_many_environments_each_fill_whole_batches(instance, store_url, store,
                                                   make_workflow) -> None:
    """The page is read round robin in blocks of a batch: each environment's oldest batch
    first (the one waiting longest first), so batches are full rather than one per tenant
    per row."""
    queued = {}
    for env in ("a", "b", "c"):
        make_workflow(environment=env)
        queued[env] = _queue(store, 12, environment=env)
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_runs_per_tick=4,
                           max_batch_size=5)
    batches = _batches(sensor.tick())
    assert [(b.tags[TAG_ENVIRONMENT], len(_members(store, b))) for b in batches] == [
        ("a", 5), ("b", 5), ("c", 5), ("a", 5)]
    assert _members(store, batches[3]) == [c.execution_id for c in queued["a"][5:10]]


def test_schedules_due_together_share_a_batch_run_start_before_advance(
        instance, store_url, store, make_schedule) -> None:
    due = minutes_ago(2).replace(second=0)
    schedules = [make_schedule(now=due - timedelta(minutes=1), run_at=iso_utc(due),
                               payload={"user": f"u{i}"}) for i in range(4)]
    sensor = SensorHarness(instance, store_url, SCHEDULE_SENSOR, max_batch_size=50)
    [request] = sensor.tick()
    assert request.job_name == execute_workflow_batch.name
    members = store.batches.members(request.tags[TAG_BATCH_ID])
    assert sorted(m.trigger_id for m in members) == sorted(s.id for s in schedules)
    assert {(m.source, m.scheduled_for, m.status) for m in members} == {
        (Source.SCHEDULE, due, ExecutionStatus.QUEUED)}
    # Start before advance: nothing moves until the batch run exists; a repeated tick asks for
    # the same batch (same executions, derived from each occurrence's run key).
    assert all(store.get_schedule(s.id).next_run_at == due for s in schedules)
    [again] = sensor.tick()
    assert again.run_key == request.run_key
    sensor.create_runs([again])
    assert sensor.tick() == []
    assert all(not store.get_schedule(s.id).enabled for s in schedules)  # one-time: done
    assert len(store.list_executions()) == 4


# ------------------------------------------------------------------------------ the batch run


def test_one_batch_isolates_each_executions_outcome(instance, store_url, store, make_workflow,
                                                   sink) -> None:
    """48 succeed, 1 user error (no alert), 1 whose workflow was deleted (one alert, for it
    alone); the run fails (a member faulted) and its tags and page summarize them."""
    make_workflow()
    make_workflow("doomed")
    ok = _queue(store, 48)
    [bad] = _queue(store, 1, payload={})  # {{ trigger.payload.user }} is missing: user error
    [doomed] = _queue(store, 1, workflow="doomed")
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
    [request] = sensor.tick()
    assert len(_members(store, request)) == 50
    store.delete_workflow("default", "doomed", real_now())

    result = _run_batch(instance, store_url, request, sink)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.tags[TAG_OUTCOMES] == "pipeline_fault=1,success=48,user_error=1"
    assert run.tags[TAG_OUTCOME] == "pipeline_fault"
    records = {e: store.get_execution(e) for e in _members(store, request)}
    assert all(records[c.execution_id].outcome is Outcome.SUCCESS for c in ok)
    assert all(records[c.execution_id].dagster_run_id == result.run_id for c in ok)
    assert all(len(records[c.execution_id].blocks) == 2 for c in ok)
    assert records[ok[0].execution_id].output == {"count": 3, "who": "u0"}
    user = records[bad.execution_id]
    assert (user.status, user.outcome, user.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.USER_ERROR, "core")
    fault = records[doomed.execution_id]
    assert (fault.status, fault.outcome) == (ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT)
    assert "doomed" in fault.error["message"]
    [alert] = store.list_alerts()
    assert (alert.kind, alert.execution_id) == ("pipeline_fault", doomed.execution_id)
    assert [h.json()["execution_id"] for h in sink.hits("/alerts")] == [doomed.execution_id]
    # The run's page: one log line naming every execution with its outcome.
    logs = "\n".join(r.user_message for r in instance.all_logs(result.run_id))
    assert f"{bad.execution_id} digest user_error" in logs
    assert f"{doomed.execution_id} doomed pipeline_fault" in logs
    # The failure hook and the reconciler find nothing left to settle or alert.
    SensorHarness(instance, store_url, RECONCILER_SENSOR,
                  alert_webhook_url=f"{sink.url}/alerts").tick()
    assert len(store.list_alerts()) == 1 and len(sink.hits("/alerts")) == 1


def test_members_run_concurrently(instance, store_url, store, make_workflow) -> None:
    with loopback_server() as provider:
        url = provider.answer("/slow", Answer(200, {"ok": True}, delay=0.3))
        make_workflow("io", blocks=[{"id": "call", "type": "http", "with": {"url": url}}])
        _queue(store, 6, workflow="io")
        sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
        [request] = sensor.tick()
        result = execute_workflow_batch.execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags,
            resources={STORE_RESOURCE: _resource(store_url)})
        assert result.success
        assert len(provider.hits("/slow")) == 6
        assert provider.max_in_flight >= 2  # the default concurrency (16) overlaps them
    assert {store.get_execution(e).outcome for e in _members(store, request)} == {
        Outcome.SUCCESS}


def test_a_retried_batch_runs_only_what_is_not_finalized(instance, store_url, store,
                                                         make_workflow) -> None:
    make_workflow()
    queued = _queue(store, 3)
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
    [request] = sensor.tick()
    first = _run_batch(instance, store_url, request)
    assert first.success
    # One member is put back open (as if the first run died after finishing two).
    with store.engine.begin() as conn:
        from orchestrator.store import tables as t

        conn.execute(t.executions.update().where(
            t.executions.c.execution_id == queued[2].execution_id).values(
            status="running", outcome=None, finished_at=None, finalized_by=None))
    second = _run_batch(instance, store_url, request)
    assert second.success
    records = [store.get_execution(c.execution_id) for c in queued]
    assert [r.attempts for r in records] == [1, 1, 2]
    assert [r.dagster_run_id for r in records] == [first.run_id, first.run_id, second.run_id]
    assert all(r.outcome is Outcome.SUCCESS for r in records)


# ------------------------------------------------------------------------------ whole-run faults


def _started_batch(instance: dg.DagsterInstance, store: Store, store_url: str,
                   n: int) -> tuple[dg.DagsterRun, list[str], dg.RunRequest]:
    """A batch whose run started (its members running) and then stops reporting."""
    _queue(store, n)
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
    [request] = sensor.tick()
    run = instance.create_run_for_job(job_def=execute_workflow_batch,
                                      run_config=request.run_config,
                                      status=dg.DagsterRunStatus.STARTED, tags=request.tags)
    store.batches.open(request.tags[TAG_BATCH_ID], dagster_run_id=run.run_id,
                           now=real_now())
    return run, _members(store, request), request


def test_a_failed_batch_run_settles_every_open_member_with_one_alert(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow()
    run, members, request = _started_batch(instance, store, store_url, 50)
    instance.report_run_failed(run)  # the worker died (a resource failed, SIGKILL, ...)
    reconciler = SensorHarness(instance, store_url, RECONCILER_SENSOR,
                               alert_webhook_url=f"{sink.url}/alerts")
    reconciler.tick()
    records = [store.get_execution(e) for e in members]
    assert {(r.status, r.outcome, r.finalized_by) for r in records} == {
        (ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "reconciler")}
    [alert] = store.list_alerts()
    assert alert.kind == "batch_fault" and alert.details["count"] == 50
    assert sorted(alert.details["execution_ids"]) == sorted(members)
    assert alert.details["run_url"] == f"http://127.0.0.1:3000/runs/{run.run_id}"
    [posted] = [h.json() for h in sink.hits("/alerts")]
    assert posted["batch_id"] == request.tags[TAG_BATCH_ID] and posted["count"] == 50
    # Findable from any execution it affected; a later tick settles and alerts nothing more.
    assert [a.id for a in store.list_alerts(execution_id=members[17])] == [alert.id]
    reconciler.tick()
    assert len(store.list_alerts()) == 1 and len(sink.hits("/alerts")) == 1
    assert instance.get_run_by_id(run.run_id).tags[TAG_OUTCOME] == "pipeline_fault"


def test_a_terminated_batch_run_cancels_its_open_members_without_alert(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow()
    run, members, _ = _started_batch(instance, store, store_url, 5)
    instance.report_run_canceled(run)
    SensorHarness(instance, store_url, RECONCILER_SENSOR,
                  alert_webhook_url=f"{sink.url}/alerts").tick()
    assert {store.get_execution(e).outcome for e in members} == {Outcome.CANCELLED}
    assert store.list_alerts() == [] and sink.hits("/alerts") == []


def test_an_expired_lease_fails_the_batch_run_and_settles_it_once(
        instance, store_url, store, make_workflow, sink) -> None:
    """A SIGKILLed worker: no hook, no report; the members' heartbeats stop."""
    from orchestrator.dagster.runs import DagsterRuns
    from orchestrator.execution.reconcile import reconcile

    make_workflow()
    run, members, _ = _started_batch(instance, store, store_url, 10)
    later = real_now() + timedelta(minutes=5)
    alerter = Alerter(store=store, webhook_url=f"{sink.url}/alerts",
                      ui_url="http://127.0.0.1:3000", clock=lambda: later)
    tick = reconcile(store, DagsterRuns(instance), alerter, now=later, cursor=None,
                     lease_timeout=timedelta(seconds=60))
    assert tick.expired_leases == 1  # one run failed, not one per member
    assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.FAILURE
    assert {store.get_execution(e).outcome for e in members} == {Outcome.PIPELINE_FAULT}
    assert [a.kind for a in store.list_alerts()] == ["batch_fault"]
    reconcile(store, DagsterRuns(instance), alerter, now=later, cursor=None,
              lease_timeout=timedelta(seconds=60))
    assert len(store.list_alerts()) == 1 and len(sink.hits("/alerts")) == 1


def test_batch_config_is_launchable_by_hand(instance, store_url, store, make_workflow) -> None:
    """The launchpad config of a batch run is its batch id; an unknown batch runs nothing."""
    result = execute_workflow_batch.execute_in_process(
        run_config=batch_run_config("rb_unknown"), instance=instance,
        resources={STORE_RESOURCE: _resource(store_url)})
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert (run.tags[TAG_OUTCOMES], run.tags[TAG_BATCH_ID]) == ("none", "rb_unknown")



@pytest.fixture
def _faults() -> Iterator[None]:
    from tests.dagster import faults

    faults.clear()
    yield
    faults.clear()


def test_one_members_refused_terminal_write_faults_it_alone(
        instance, store_url, store, make_workflow, sink, monkeypatch, _faults) -> None:
    from tests.dagster import faults
    from tests.dagster.faults import FlakyStoreResource

    make_workflow()
    queued = _queue(store, 4)
    monkeypatch.setenv("ORCHESTRATOR_BATCH_CONCURRENCY", "1")  # members in order
    # The first member's terminal write is refused (not transient: never retried, so one
    # refusal is the member's fault).
    faults.fail("finish_execution", times=1, when=lambda kw: kw.get("finalized_by") == "core")
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
    [request] = sensor.tick()
    result = execute_workflow_batch.execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags,
        raise_on_error=False, resources={STORE_RESOURCE: FlakyStoreResource(
            database_url=store_url, alert_webhook_url=f"{sink.url}/alerts",
            dagster_ui_url="http://127.0.0.1:3000")})
    assert not result.success and faults.pending("finish_execution") == 0
    records = [store.get_execution(c.execution_id) for c in queued]
    assert [(r.outcome, r.finalized_by) for r in records] == [
        (Outcome.PIPELINE_FAULT, "batch"), *[(Outcome.SUCCESS, "core")] * 3]
    [alert] = store.list_alerts()
    assert (alert.kind, alert.execution_id) == ("pipeline_fault", queued[0].execution_id)
    assert len(sink.hits("/alerts")) == 1


def test_a_batch_that_cannot_open_is_settled_by_its_hook_with_one_alert(
        instance, store_url, store, make_workflow, sink, _faults) -> None:
    from tests.dagster import faults
    from tests.dagster.faults import FlakyStoreResource

    make_workflow()
    queued = _queue(store, 6)
    faults.fail("batches.open")  # the batch's opening transaction fails (not transient)
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
    [request] = sensor.tick()
    result = execute_workflow_batch.execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags,
        raise_on_error=False, resources={STORE_RESOURCE: FlakyStoreResource(
            database_url=store_url, alert_webhook_url=f"{sink.url}/alerts",
            dagster_ui_url="http://127.0.0.1:3000")})
    assert not result.success
    records = [store.get_execution(c.execution_id) for c in queued]
    assert {(r.status, r.outcome, r.finalized_by, r.attempts) for r in records} == {
        (ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "hook", 0)}
    [alert] = store.list_alerts()
    assert alert.kind == "batch_fault" and alert.details["count"] == 6
    assert "injected fault" in alert.details["error"]["message"]
    # The reconciler sees the failed run and adds nothing.
    SensorHarness(instance, store_url, RECONCILER_SENSOR,
                  alert_webhook_url=f"{sink.url}/alerts").tick()
    assert len(store.list_alerts()) == 1 and len(sink.hits("/alerts")) == 1

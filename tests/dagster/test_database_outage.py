"""A real PostgreSQL (a private server, so nothing else is disturbed) stopped in the middle of a
run. A short outage is a transient pipeline fault that Dagster's retry absorbs: the op runs
again on the same execution id and the execution succeeds, with no alert. A long one fails the
run; the hook's own writes fail too, without a second fault, and once the database is back the
reconciler settles the execution once and alerts once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from harness.http_server import LoopbackServer
from harness.postgres import PrivatePostgres, private_postgres
from orchestrator.dagster import jobs
from orchestrator.dagster.jobs import RECONCILE_TAG, execute_workflow, run_config_for
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.dagster.sensors import RECONCILER_SENSOR
from orchestrator.domain.correlation import TAG_OUTCOME, Correlation, Source, new_id
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types, register_callable
from orchestrator.store import Store
from orchestrator.store.engine import dispose_all
from orchestrator.store.migrate import upgrade
from tests.conftest import NOW, require_postgres_binaries, workflow_doc
from tests.dagster.conftest import SensorHarness, real_now

pytestmark = pytest.mark.postgres
_OUTAGE: dict[str, object] = {}


@register_callable("test_database_outage")
def _cut_database() -> dict[str, bool]:
    """Stops the private server the first time it is called; restarts it after ``restart_after``
    seconds when that is set."""
    server = _OUTAGE.pop("server", None)
    if isinstance(server, PrivatePostgres):
        server.stop()
        restart_after = _OUTAGE.get("restart_after")
        if isinstance(restart_after, float):
            threading.Timer(restart_after, server.start).start()
    return {"done": True}


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    require_postgres_binaries()
    with private_postgres() as server:
        upgrade(server.url)
        yield server
    dispose_all()
    _OUTAGE.clear()


def _start(instance: dg.DagsterInstance, pg: PrivatePostgres,
           sink: LoopbackServer) -> tuple[dg.ExecuteInProcessResult, Correlation, Store]:
    store = Store(pg.url)
    store.apply_workflow(parse_workflow(workflow_doc(blocks=[
        {"id": "cut", "type": "python", "with": {"callable": "test_database_outage"}},
        {"id": "after", "type": "transform", "with": {"ok": "{{ cut.done }}"}}]),
        block_types()), NOW)
    correlation = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                              workflow="digest", environment="default", payload={})
    store.create_execution(correlation, real_now())
    _OUTAGE["server"] = pg
    resource = OrchestratorStore(database_url=pg.url, alert_webhook_url=f"{sink.url}/alerts")
    result = execute_workflow.execute_in_process(
        run_config=run_config_for(correlation), instance=instance, tags=correlation.tags(),
        raise_on_error=False, resources={STORE_RESOURCE: resource})
    return result, correlation, store


def test_short_outage_is_retried_by_dagster_and_succeeds(instance, pg, sink,
                                                         monkeypatch) -> None:
    monkeypatch.setattr(jobs, "OP_RETRY_DELAYS", (1.0, 2.0, 4.0))
    _OUTAGE["restart_after"] = 1.5
    result, correlation, store = _start(instance, pg, sink)
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.status is dg.DagsterRunStatus.SUCCESS and run.tags[TAG_OUTCOME] == "success"
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries, "the lost connection was retried by Dagster"
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.SUCCESS, Outcome.SUCCESS, "core")
    assert execution.attempts >= 2  # the same execution id, run again
    assert [b.status for b in execution.blocks] == ["success", "success"]
    assert store.list_alerts() == [] and sink.hits("/alerts") == []


def test_long_outage_fails_the_run_once_and_the_reconciler_settles_it(instance, pg, sink,
                                                                      monkeypatch) -> None:
    monkeypatch.setattr(jobs, "OP_RETRY_DELAYS", (0.2,))
    started = time.monotonic()
    result, correlation, store = _start(instance, pg, sink)
    assert time.monotonic() - started < 60
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.status is dg.DagsterRunStatus.FAILURE
    assert run.tags.get(RECONCILE_TAG) == "pending"  # the hook could not write: recorded
    assert len([e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]) == 1

    pg.start()  # the database is back
    harness = SensorHarness(instance, pg.url, RECONCILER_SENSOR,
                            alert_webhook_url=f"{sink.url}/alerts")
    harness.tick()
    harness.tick()
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "reconciler")
    assert instance.get_run_by_id(result.run_id).tags[TAG_OUTCOME] == "pipeline_fault"
    [alert] = store.list_alerts()
    assert alert.delivery_status.value == "delivered" and len(sink.hits("/alerts")) == 1

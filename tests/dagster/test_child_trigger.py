"""The ``trigger`` block, in-process on a real Dagster instance, on SQLite and PostgreSQL: a
parent execution starts a child execution of another workflow (``parent_execution_id``,
``source=child``, the parent's request id), queued for ``queued_trigger_sensor``; an idempotency
key makes a second parent reuse the child; bad input is a user error naming block and field."""

from __future__ import annotations

from typing import Any

import dagster as dg

from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.dagster.sensors import QUEUE_SENSOR
from orchestrator.domain.correlation import (
    TAG_EXECUTION_ID,
    TAG_IDEMPOTENCY_KEY,
    TAG_PARENT_EXECUTION_ID,
    TAG_REQUEST_ID,
    TAG_SOURCE,
    Correlation,
    Source,
    new_id,
)
from orchestrator.domain.records import ExecutionStatus, Outcome, TriggerStatus
from orchestrator.store import Store
from tests.dagster.conftest import SensorHarness, real_now

CHILD = {"blocks": [{"id": "greet", "type": "transform",
                     "with": {"hello": "{{ trigger.payload.user }}",
                              "source": "{{ trigger.source }}"}}]}


def _parent(**spawn: Any) -> dict[str, Any]:
    return {"blocks": [
        {"id": "spawn", "type": "trigger", "with": spawn},
        {"id": "after", "type": "transform",
         "with": {"child": "{{ spawn.execution_id }}", "again": "{{ spawn.deduplicated }}"}}]}


def _execute(instance: dg.DagsterInstance, store_url: str, *, workflow: str = "parent",
             environment: str = "default", payload: dict[str, Any] | None = None,
             ) -> tuple[dg.ExecuteInProcessResult, Correlation]:
    correlation = Correlation(execution_id=new_id(), request_id="req-" + new_id()[:8],
                              source=Source.API, workflow=workflow, environment=environment,
                              payload=payload or {"user": "ada"})
    Store(store_url).create_execution(correlation, real_now())
    result = execute_workflow.execute_in_process(
        run_config=run_config_for(correlation), instance=instance, tags=correlation.tags(),
        raise_on_error=False, resources={STORE_RESOURCE: OrchestratorStore(database_url=store_url)})
    return result, correlation


def test_trigger_block_queues_a_child_that_the_sensor_dispatches_once_per_key(
        instance, store_url, store, make_workflow) -> None:
    make_workflow("child", **CHILD)
    make_workflow("parent", **_parent(workflow="child",
                                      payload={"user": "{{ trigger.payload.user }}"},
                                      idempotency_key="greet-{{ trigger.payload.user }}",
                                      idempotency_ttl="1h"))
    result, parent = _execute(instance, store_url)
    assert result.success
    parent_record = store.get_execution(parent.execution_id)
    assert parent_record.outcome is Outcome.SUCCESS
    spawn = next(b for b in parent_record.blocks if b.block_id == "spawn")
    assert (spawn.block_type, spawn.status) == ("trigger", "success")
    child_id = parent_record.output["child"]
    assert parent_record.output["again"] is False

    child = store.get_execution(child_id)
    assert (child.status, child.source, child.parent_execution_id) == (
        ExecutionStatus.QUEUED, Source.CHILD, parent.execution_id)
    assert (child.workflow, child.environment, child.payload) == ("child", "default",
                                                                  {"user": "ada"})
    assert (child.request_id, child.idempotency_key) == (parent.request_id, "greet-ada")
    [queued] = store.queued_triggers(10)
    assert (queued.execution_id, queued.status) == (child_id, TriggerStatus.QUEUED)

    # A second run of the parent with the same key reuses the child.
    again, second = _execute(instance, store_url)
    assert again.success
    assert store.get_execution(second.execution_id).output == {"child": child_id,
                                                                "again": True}
    assert len(store.list_executions(workflow="child")) == 1
    # Another key is another child.
    _execute(instance, store_url, payload={"user": "bob"})
    assert len(store.list_executions(workflow="child")) == 2

    # One run per child here, to read each child run's own tags (batching: test_batch_runs).
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=1)
    requests = {r.tags[TAG_EXECUTION_ID]: r for r in sensor.tick()}
    assert len(requests) == 2 and child_id in requests
    request = requests[child_id]
    assert request.run_key == f"trigger:{child_id}"
    assert (request.tags[TAG_SOURCE], request.tags[TAG_PARENT_EXECUTION_ID],
            request.tags[TAG_REQUEST_ID], request.tags[TAG_IDEMPOTENCY_KEY]) == (
        "child", parent.execution_id, parent.request_id, "greet-ada")

    # The child's run, as the daemon would launch it from the request.
    run = execute_workflow.execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags,
        resources={STORE_RESOURCE: OrchestratorStore(database_url=store_url)})
    assert run.success
    done = store.get_execution(child_id)
    assert (done.status, done.outcome) == (ExecutionStatus.SUCCESS, Outcome.SUCCESS)
    assert done.output == {"hello": "ada", "source": "child"}
    assert done.parent_execution_id == parent.execution_id


def test_child_without_key_is_a_new_child_each_time(instance, store_url, store,
                                                    make_workflow) -> None:
    make_workflow("child", **CHILD)
    make_workflow("parent", **_parent(workflow="child"))
    for _ in range(2):
        result, _parent_correlation = _execute(instance, store_url)
        assert result.success
    children = store.list_executions(workflow="child")
    assert len(children) == 2 and all(c.payload == {} and c.idempotency_key is None
                                      for c in children)


def _user_error(instance, store_url, store, make_workflow, spawn: dict[str, Any],
                *fragments: str, environment: str = "default") -> None:
    make_workflow("parent", environment=environment, **_parent(**spawn))
    result, parent = _execute(instance, store_url, environment=environment)
    assert result.success, "a user error must not fail the run"
    record = store.get_execution(parent.execution_id)
    assert (record.status, record.outcome) == (ExecutionStatus.ERROR, Outcome.USER_ERROR)
    assert record.error["block"] == "spawn"
    message = record.error["message"]
    assert message.startswith("block `spawn`"), message
    for fragment in fragments:
        assert fragment in message, message
    assert store.list_alerts() == []
    assert store.list_executions(workflow="child") == []
    assert store.queued_triggers(10) == []


def test_unknown_child_workflow_is_a_user_error(instance, store_url, store,
                                                make_workflow) -> None:
    _user_error(instance, store_url, store, make_workflow, {"workflow": "nope"},
                "`workflow`", "no workflow 'nope' in environment 'default'")


def test_child_of_another_environment_is_not_found(instance, store_url, store,
                                                   make_workflow) -> None:
    make_workflow("child", environment="other", **CHILD)
    _user_error(instance, store_url, store, make_workflow, {"workflow": "child"},
                "`workflow`", "no workflow 'child' in environment 'acme'", environment="acme")


def test_missing_workflow_field_is_a_user_error(instance, store_url, store,
                                                make_workflow) -> None:
    _user_error(instance, store_url, store, make_workflow, {"payload": {"a": 1}},
                "missing required field `workflow`")


def test_bad_fields_are_user_errors_naming_the_field(instance, store_url, store,
                                                     make_workflow) -> None:
    make_workflow("child", **CHILD)
    cases = [({"workflow": "child", "payload": [1, 2]}, "`payload` must be an object"),
             ({"workflow": "child", "idempotency_key": "a b"}, "`idempotency_key`"),
             ({"workflow": "child", "idempotency_key": "k", "idempotency_ttl": "forever"},
              "`idempotency_ttl` must be seconds"),
             ({"workflow": "child", "environment": "other"},
              "`environment`", "its parent's environment"),
             ({"workflow": "Not A Name"}, "`workflow` must be a workflow name")]
    for spawn, *fragments in cases:
        _user_error(instance, store_url, store, make_workflow, spawn, *fragments)


def test_child_is_admitted_at_the_parents_clock(store_url, store, make_workflow) -> None:
    """The core hands the block its session's clock: the child is created, and its key expires,
    by that clock (frozen here, years away from the wall clock)."""
    from orchestrator.domain.workflow import parse_workflow
    from orchestrator.execution.blocks import block_types
    from orchestrator.execution.core import run_workflow
    from orchestrator.execution.session import LoggingSession
    from tests.conftest import NOW

    make_workflow("child", **CHILD)
    make_workflow("parent", **_parent(workflow="child", idempotency_key="once",
                                      idempotency_ttl="1h"))
    correlation = Correlation(execution_id=new_id(), request_id="req-clock",
                              source=Source.API, workflow="parent", environment="default",
                              payload={})
    store.create_execution(correlation, NOW)
    session = LoggingSession(store, correlation, clock=lambda: NOW)
    workflow, _ = session.open(dagster_run_id="run-clock")
    result = run_workflow(parse_workflow(workflow.document, block_types()), session)
    assert result.outcome is Outcome.SUCCESS, result.error
    child = store.get_execution(result.record.output["child"])
    assert (child.created_at, child.parent_execution_id) == (NOW, correlation.execution_id)

"""Classification end to end, in-process on a real Dagster instance, on SQLite and PostgreSQL:
what the run, its tags, the execution log and the alerts show for each kind of failure.

User errors (HTTP 4xx, a bad reference, a raising ``python`` block, a timeout) end the run
SUCCESS with no alert; pipeline faults (workflow deleted, the store failing) fail the run, are
finalized once and alert once, through the failure hook or, when the hook itself cannot write,
through the reconciler on its next tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from harness.http_server import Answer, LoopbackServer, loopback_server
from orchestrator.dagster.jobs import RECONCILE_TAG, execute_workflow, run_config_for
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.dagster.sensors import RECONCILER_SENSOR
from orchestrator.domain.correlation import TAG_OUTCOME, Correlation, Source, new_id
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.execution.blocks import register_callable
from orchestrator.store import Store
from tests.dagster import faults
from tests.dagster.conftest import SensorHarness, real_now


@register_callable("test_raise")
def _raise(message: str) -> None:
    raise ValueError(message)


@register_callable("test_sleep")
def _sleep(seconds: float) -> dict[str, float]:
    time.sleep(seconds)
    return {"slept": seconds}


@pytest.fixture
def provider() -> Iterator[LoopbackServer]:
    with loopback_server() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_leftover_faults() -> Iterator[None]:
    faults.clear()
    yield
    faults.clear()


def _execute(instance: dg.DagsterInstance, store_url: str, sink: LoopbackServer | None = None,
             resource: type[OrchestratorStore] = OrchestratorStore,
             workflow: str = "digest") -> tuple[dg.ExecuteInProcessResult, Correlation]:
    correlation = Correlation(execution_id=new_id(), request_id="req-42", source=Source.API,
                              workflow=workflow, environment="default", payload={"user": "ada"})
    Store(store_url).create_execution(correlation, real_now())
    store = resource(database_url=store_url,
                     alert_webhook_url=f"{sink.url}/alerts" if sink else None,
                     dagster_ui_url="http://127.0.0.1:3000")
    result = execute_workflow.execute_in_process(
        run_config=run_config_for(correlation), instance=instance, tags=correlation.tags(),
        raise_on_error=False, resources={STORE_RESOURCE: store})
    return result, correlation


def _logs(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [r.user_message for r in instance.all_logs(run_id)]


def _assert_user_error(instance: dg.DagsterInstance, store: Store,
                       result: dg.ExecuteInProcessResult, correlation: Correlation,
                       block: str, *fragments: str) -> dict[str, Any]:
    assert result.success, "a user error must not fail the run"
    run = instance.get_run_by_id(result.run_id)
    assert run.status is dg.DagsterRunStatus.SUCCESS
    assert run.tags[TAG_OUTCOME] == "user_error"
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.USER_ERROR, "core")
    assert execution.error["block"] == block
    for fragment in fragments:
        assert fragment in execution.error["message"]
    assert any("user_error, no alert" in m for m in _logs(instance, result.run_id))
    assert store.list_alerts() == []
    return execution.error


# ---------------------------------------------------------------------------------- http block

def test_http_block_success_feeds_later_blocks(instance, store_url, store, make_workflow,
                                               provider) -> None:
    url = provider.answer("/items", Answer(200, {"total": 7}))
    make_workflow(blocks=[
        {"id": "fetch", "type": "http", "with": {"url": url, "headers": {"X-Token": "t"}}},
        {"id": "summary", "type": "transform", "with": {"count": "{{ fetch.body.total }}"}}])
    result, correlation = _execute(instance, store_url)
    assert result.success
    execution = store.get_execution(correlation.execution_id)
    assert execution.outcome is Outcome.SUCCESS and execution.output == {"count": 7}
    [hit] = provider.hits("/items")
    assert hit.headers["X-Token"] == "t"
    assert [(b.block_id, b.status) for b in execution.blocks] == [("fetch", "success"),
                                                                    ("summary", "success")]
    assert all(b.output_size and b.duration_ms is not None for b in execution.blocks)


def test_http_404_is_a_user_error_with_status_and_provider_message(
        instance, store_url, store, make_workflow, provider, sink) -> None:
    url = provider.answer("/items/9", Answer(404, {"message": "item 9 does not exist"}))
    make_workflow(blocks=[{"id": "fetch", "type": "http",
                           "with": {"url": url + "?token=secret", "method": "get"}}])
    result, correlation = _execute(instance, store_url, sink)
    error = _assert_user_error(instance, store, result, correlation, "fetch", "HTTP 404",
                               "item 9 does not exist")
    assert "secret" not in error["message"]  # the query string may carry credentials
    assert error["inputs"] == {"url": "str", "method": "str"}
    assert len(provider.hits("/items/9")) == 1  # a 4xx is not retried
    assert sink.hits("/alerts") == []
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["outcome"].value == "user_error" and metadata["block"].value == "fetch"


def test_http_5xx_is_retried_with_backoff_then_succeeds(instance, store_url, store,
                                                        make_workflow, provider) -> None:
    url = provider.answer("/flaky", Answer(503, {"error": "busy"}), Answer(500, "oops"),
                          Answer(200, {"ok": True}))
    make_workflow(blocks=[{"id": "call", "type": "http",
                           "with": {"url": url, "method": "POST", "json": {"a": 1},
                                    "backoff_seconds": 0.05}}])
    result, correlation = _execute(instance, store_url)
    assert result.success
    execution = store.get_execution(correlation.execution_id)
    assert execution.outcome is Outcome.SUCCESS
    assert execution.output == {"status": 200, "body": {"ok": True},
                                "headers": execution.output["headers"]}
    hits = provider.hits("/flaky")
    assert len(hits) == 3 and all(h.json() == {"a": 1} for h in hits)


def test_http_5xx_after_retries_is_a_user_error(instance, store_url, store, make_workflow,
                                               provider, sink) -> None:
    url = provider.answer("/down", Answer(500, {"error": {"message": "database on fire"}}))
    make_workflow(blocks=[{"id": "call", "type": "http",
                           "with": {"url": url, "retries": 2, "backoff_seconds": 0.05}}])
    result, correlation = _execute(instance, store_url, sink)
    _assert_user_error(instance, store, result, correlation, "call", "failed after 3 attempt(s)",
                       "HTTP 500", "database on fire")
    assert len(provider.hits("/down")) == 3
    assert sink.hits("/alerts") == []


def test_http_timeout_is_retried_then_a_user_error(instance, store_url, store, make_workflow,
                                                  provider) -> None:
    url = provider.answer("/slow", Answer(200, {"late": True}, delay=1.0))
    make_workflow(blocks=[{"id": "call", "type": "http",
                           "with": {"url": url, "timeout_seconds": 0.2, "retries": 1,
                                    "backoff_seconds": 0}}])
    result, correlation = _execute(instance, store_url)
    _assert_user_error(instance, store, result, correlation, "call", "timed out after 0.2s")
    assert len(provider.hits("/slow")) == 2


def test_http_refused_connection_is_a_user_error(instance, store_url, store,
                                                 make_workflow) -> None:
    with loopback_server() as gone:
        url = f"{gone.url}/x"
    make_workflow(blocks=[{"id": "call", "type": "http",
                           "with": {"url": url, "retries": 1, "backoff_seconds": 0}}])
    result, correlation = _execute(instance, store_url)
    _assert_user_error(instance, store, result, correlation, "call", "could not connect")


# --------------------------------------------------------------------- other user errors

def test_python_block_raising_is_a_user_error(instance, store_url, store, make_workflow,
                                              sink) -> None:
    make_workflow(blocks=[{"id": "score", "type": "python",
                           "with": {"callable": "test_raise", "message": "bad score"}}])
    result, correlation = _execute(instance, store_url, sink)
    _assert_user_error(instance, store, result, correlation, "score",
                       "raised ValueError: bad score")
    assert sink.hits("/alerts") == []


def test_missing_field_reference_is_a_user_error(instance, store_url, store,
                                                 make_workflow) -> None:
    make_workflow(blocks=[{"id": "a", "type": "transform", "with": {"x": 1}},
                          {"id": "b", "type": "transform", "with": {"y": "{{ a.nope }}"}}])
    result, correlation = _execute(instance, store_url)
    _assert_user_error(instance, store, result, correlation, "b", "nope")


def test_workflow_timeout_stops_a_block_that_runs_too_long(instance, store_url, store,
                                                          make_workflow) -> None:
    make_workflow(timeout_seconds=1, blocks=[
        {"id": "nap", "type": "python", "with": {"callable": "test_sleep", "seconds": 5}}])
    started = time.monotonic()
    result, correlation = _execute(instance, store_url)
    assert time.monotonic() - started < 4.5  # the run did not wait for the block
    _assert_user_error(instance, store, result, correlation, "nap",
                       "workflow timed out after 1s in block `nap`")
    # The abandoned block cannot keep the run worker's process alive once the run is over.
    abandoned = [t for t in threading.enumerate()
                 if t.name == f"block-{correlation.execution_id}-nap"]
    assert abandoned and all(t.daemon for t in abandoned)


def test_fail_run_on_user_error_fails_the_run_without_alert(instance, store_url, store,
                                                           make_workflow, sink) -> None:
    make_workflow(fail_run_on_user_error=True, blocks=[
        {"id": "score", "type": "python", "with": {"callable": "test_raise", "message": "no"}}])
    result, correlation = _execute(instance, store_url, sink)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.status is dg.DagsterRunStatus.FAILURE and run.tags[TAG_OUTCOME] == "user_error"
    execution = store.get_execution(correlation.execution_id)
    assert (execution.outcome, execution.finalized_by) == (Outcome.USER_ERROR, "core")
    assert any("fail_run_on_user_error); no alert" in m for m in _logs(instance, result.run_id))
    assert store.list_alerts() == [] and sink.hits("/alerts") == []


# ---------------------------------------------------------------------------- pipeline faults

def test_workflow_deleted_before_the_run_is_a_fault_with_one_alert(instance, store_url, store,
                                                                    make_workflow,
                                                                    sink) -> None:
    make_workflow()
    store.delete_workflow("default", "digest", real_now())
    result, correlation = _execute(instance, store_url, sink)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.status is dg.DagsterRunStatus.FAILURE
    assert run.tags[TAG_OUTCOME] == "pipeline_fault"
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "hook")
    assert "workflow 'default/digest' not found" in execution.error["message"]
    [alert] = store.list_alerts()
    assert (alert.execution_id, alert.kind, alert.delivery_status.value) == (
        correlation.execution_id, "pipeline_fault", "delivered")
    [post] = sink.hits("/alerts")
    body = post.json()
    assert body["text"].startswith(":rotating_light: pipeline fault in default/digest")
    assert (body["execution_id"], body["request_id"], body["source"], body["outcome"]) == (
        correlation.execution_id, "req-42", "api", "pipeline_fault")
    assert body["run_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert "not found" in body["error"]["message"]
    # the reconciler sees the failed run later: nothing more happens
    harness = SensorHarness(instance, store_url, RECONCILER_SENSOR)
    harness.tick()
    assert len(store.list_alerts()) == 1 and len(sink.hits("/alerts")) == 1
    assert store.get_execution(correlation.execution_id).finalized_by == "hook"


def test_store_failing_the_cores_terminal_write_is_a_fault_finalized_by_the_hook(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow()
    faults.fail("finish_execution", times=10, when=lambda kw: kw["finalized_by"] == "core")
    result, correlation = _execute(instance, store_url, sink, faults.FlakyStoreResource)
    assert not result.success
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "hook")
    assert "finish_execution (injected fault)" in execution.error["message"]
    assert len(store.list_alerts()) == 1 and len(sink.hits("/alerts")) == 1
    assert instance.get_run_by_id(result.run_id).tags[TAG_OUTCOME] == "pipeline_fault"


def test_store_failing_during_recovery_never_double_faults_and_the_reconciler_heals(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow()
    faults.fail("finish_execution", times=100)  # the core's and the hook's writes all fail
    result, correlation = _execute(instance, store_url, sink, faults.FlakyStoreResource)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.status is dg.DagsterRunStatus.FAILURE
    assert run.tags[RECONCILE_TAG] == "pending" and TAG_OUTCOME not in run.tags
    step_failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(step_failures) == 1  # the hook's failure did not become a second fault
    assert any("the reconciler will" in m for m in _logs(instance, result.run_id))
    assert store.get_execution(correlation.execution_id).status is ExecutionStatus.RUNNING
    assert store.list_alerts() == []

    faults.clear()  # the database is healthy again
    harness = SensorHarness(instance, store_url, RECONCILER_SENSOR,
                            alert_webhook_url=f"{sink.url}/alerts")
    harness.tick()
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "reconciler")
    assert instance.get_run_by_id(result.run_id).tags[TAG_OUTCOME] == "pipeline_fault"
    harness.tick()
    assert len(store.list_alerts()) == 1 and len(sink.hits("/alerts")) == 1


def test_alert_is_recorded_even_when_its_webhook_is_down_and_delivered_later(
        instance, store_url, store, make_workflow, sink) -> None:
    sink.answer("/alerts", Answer(502, "bad gateway"), Answer(200, {"ok": True}))
    make_workflow()
    store.delete_workflow("default", "digest", real_now())
    result, _ = _execute(instance, store_url, sink)
    assert not result.success  # the fault, not the webhook, failed the run
    [alert] = store.list_alerts()
    assert (alert.delivery_status.value, alert.delivery_attempts) == ("pending", 1)
    assert alert.last_delivery_error == "the alert webhook answered HTTP 502"
    assert any("pipeline fault, alert" in m for m in _logs(instance, result.run_id))

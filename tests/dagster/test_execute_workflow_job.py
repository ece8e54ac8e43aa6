"""The ``execute_workflow`` job in-process on a real instance: what the run, its tags and the
execution log show for success, a user error, and a pipeline fault."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.resources import OrchestratorStore
from orchestrator.domain.correlation import (
    TAG_EXECUTION_ID,
    TAG_OUTCOME,
    TAG_SOURCE,
    Correlation,
    Source,
)
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.store import Store
from tests.dagster.conftest import real_now


def _run(instance, store_url, run_config, tags=None) -> dg.ExecuteInProcessResult:
    return execute_workflow.execute_in_process(
        run_config=run_config, instance=instance, tags=tags or {}, raise_on_error=False,
        resources={"store": OrchestratorStore(database_url=store_url)})


def _correlation(workflow: str = "digest") -> Correlation:
    return Correlation(execution_id="22222222-2222-2222-2222-222222222222", request_id="req-7",
                       source=Source.API, workflow=workflow, environment="default",
                       payload={"user": "ada"})


def test_success_finalizes_and_tags(instance, store_url, store: Store, make_workflow) -> None:
    make_workflow()
    correlation = _correlation()
    store.create_execution(correlation, real_now())
    result = _run(instance, store_url, run_config_for(correlation), correlation.tags())
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.tags[TAG_OUTCOME] == "success"
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.SUCCESS, Outcome.SUCCESS, "core")
    assert execution.dagster_run_id == result.run_id and execution.attempts == 1
    assert execution.output == {"count": 3, "who": "ada"}
    assert [(b.block_id, b.status) for b in execution.blocks] == [("fetch", "success"),
                                                                    ("summary", "success")]


def test_user_error_completes_run_and_records_error(instance, store_url, store,
                                                    make_workflow) -> None:
    make_workflow(blocks=[{"id": "fetch", "type": "transform", "with": {"total": 3}},
                          {"id": "summary", "type": "transform",
                           "with": {"n": "{{ fetch.count }}"}}])
    correlation = _correlation()
    result = _run(instance, store_url, run_config_for(correlation), correlation.tags())
    assert result.success  # a user error does not fail the run
    assert instance.get_run_by_id(result.run_id).tags[TAG_OUTCOME] == "user_error"
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome) == (ExecutionStatus.ERROR, Outcome.USER_ERROR)
    assert execution.error["block"] == "summary"
    assert "has no field 'count'" in execution.error["message"]
    assert execution.error["inputs"] == {"n": "str"}
    logs = [r.user_message for r in instance.all_logs(result.run_id)]
    assert any("user_error, no alert" in m and "has no field 'count'" in m for m in logs)
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["outcome"].value == "user_error"
    assert "has no field 'count'" in metadata["error"].value


def test_fail_run_on_user_error_fails_run_but_stays_user_error(instance, store_url, store,
                                                               make_workflow) -> None:
    make_workflow(fail_run_on_user_error=True,
                  blocks=[{"id": "a", "type": "transform", "with": {"x": "{{ trigger.payload.nope }}"}}])
    correlation = _correlation()
    result = _run(instance, store_url, run_config_for(correlation), correlation.tags())
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.status is dg.DagsterRunStatus.FAILURE
    assert run.tags[TAG_OUTCOME] == "user_error"
    assert store.get_execution(correlation.execution_id).outcome is Outcome.USER_ERROR


def test_launched_by_hand_gets_fresh_manual_correlation(instance, store_url, store,
                                                        make_workflow) -> None:
    make_workflow()
    result = _run(instance, store_url, {"ops": {"run_workflow": {"config": {
        "workflow": "digest", "payload": {"user": "bob"}}}}})
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.tags[TAG_SOURCE] == "manual"
    execution = store.get_execution(run.tags[TAG_EXECUTION_ID])
    assert execution.source is Source.MANUAL and execution.status is ExecutionStatus.SUCCESS
    assert execution.output["who"] == "bob"


@pytest.mark.parametrize("workflow", ["never-applied"])
def test_missing_workflow_is_a_pipeline_fault(instance, store_url, store, workflow) -> None:
    correlation = _correlation(workflow)
    store.create_execution(correlation, real_now())
    result = _run(instance, store_url, run_config_for(correlation), correlation.tags())
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.tags[TAG_OUTCOME] == "pipeline_fault"
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome) == (ExecutionStatus.ERROR,
                                                     Outcome.PIPELINE_FAULT)

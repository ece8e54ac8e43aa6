"""The ``execute_workflow`` job in-process on a real instance: what the run, its tags and the
execution log show for success, a user error, and a pipeline fault; what the execution log shows
while a block runs; and how many store transactions an execution costs."""

from __future__ import annotations

import logging
import time
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.domain.correlation import (
    TAG_EXECUTION_ID,
    TAG_OUTCOME,
    TAG_SOURCE,
    Correlation,
    Source,
)
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.execution.blocks import BlockContext, register_block_type
from orchestrator.execution.session import RUNNING_ENTRY_DELAY
from orchestrator.store import Store
from tests.dagster import faults
from tests.dagster.conftest import real_now


@register_block_type("test_watch_own_entry")
def _watch_own_entry(inputs: dict[str, Any], context: BlockContext) -> dict[str, Any]:
    """Polls the execution log (the store at ``store_url``), as a user would, until this block
    shows as running (at most ``seconds``); returns what it saw and when."""
    store = Store(inputs["store_url"])
    started = time.monotonic()
    seen: dict[str, str] = {}
    while time.monotonic() - started < float(inputs.get("seconds", 10)):
        execution = store.get_execution(context.execution_id)
        seen = {b.block_id: b.status for b in execution.blocks}
        if seen.get(context.block_id) == "running":
            break
        time.sleep(0.05)
    return {"seen": seen, "after": time.monotonic() - started}


@register_block_type("test_pause")
def _pause(inputs: dict[str, Any], context: BlockContext) -> dict[str, Any]:
    time.sleep(float(inputs["seconds"]))
    return {"paused": inputs["seconds"]}


def _run(instance, store_url, run_config, tags=None) -> dg.ExecuteInProcessResult:
    return execute_workflow.execute_in_process(
        run_config=run_config, instance=instance, tags=tags or {}, raise_on_error=False,
        resources={STORE_RESOURCE: OrchestratorStore(database_url=store_url)})


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
    # The step's output carries the correlation and the attempt (no separate log line).
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert metadata == {"execution_id": correlation.execution_id, "request_id": "req-7",
                        "attempt": 1, "status": "success", "outcome": "success"}


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



def test_a_slow_block_shows_as_running_while_it_runs(instance, store_url, store,
                                                     make_workflow) -> None:
    make_workflow(blocks=[{"id": "fetch", "type": "transform", "with": {"total": 3}},
                          {"id": "watch", "type": "test_watch_own_entry",
                           "with": {"store_url": store_url}}])
    correlation = _correlation()
    result = _run(instance, store_url, run_config_for(correlation), correlation.tags())
    assert result.success
    execution = store.get_execution(correlation.execution_id)
    assert [(b.block_id, b.status) for b in execution.blocks] == [("fetch", "success"),
                                                                    ("watch", "success")]
    # What the block saw in the execution log while it ran (its output): itself running, after
    # the short delay, and the block before it already finished.
    assert execution.output["seen"] == {"fetch": "success", "watch": "running"}
    assert RUNNING_ENTRY_DELAY * 0.8 <= execution.output["after"] < RUNNING_ENTRY_DELAY + 5


def test_quick_blocks_cost_one_write_each_and_the_last_shares_the_terminal_write(
        instance, store_url, store, make_workflow) -> None:
    """The execution overhead budget (bench/exec_overhead.py): one transaction to read the
    workflow and open the execution, one per quick block, the last one with the terminal
    state; nothing else. 3 transactions for 2 blocks."""
    make_workflow()
    correlation = _correlation()
    store.create_execution(correlation, real_now())
    transactions: list[str] = []
    listener = lambda conn: transactions.append("begin")  # noqa: E731
    sa.event.listen(store.engine, "begin", listener)
    try:
        result = _run(instance, store_url, run_config_for(correlation), correlation.tags())
    finally:
        sa.event.remove(store.engine, "begin", listener)
    assert result.success
    execution = store.get_execution(correlation.execution_id)
    assert [(b.block_id, b.status) for b in execution.blocks] == [("fetch", "success"),
                                                                    ("summary", "success")]
    assert len(transactions) == 3


def test_a_failed_running_mark_does_not_stop_the_block(instance, store_url, store,
                                                       make_workflow, caplog) -> None:
    """Marking a slow block running is progress only: if that write fails, the block runs on
    and the execution ends normally (its final entries and terminal state are written)."""
    make_workflow(blocks=[{"id": "pause", "type": "test_pause",
                           "with": {"seconds": RUNNING_ENTRY_DELAY + 0.5}},
                          {"id": "summary", "type": "transform", "with": {"n": "{{ pause.paused }}"}}])
    faults.fail("record_block", when=lambda kw: kw["entry"].status == "running")
    correlation = _correlation()
    try:
        with caplog.at_level(logging.WARNING, logger="orchestrator.execution.session"):
            result = execute_workflow.execute_in_process(
                run_config=run_config_for(correlation), instance=instance,
                tags=correlation.tags(), raise_on_error=False,
                resources={STORE_RESOURCE: faults.FlakyStoreResource(database_url=store_url)})
        assert faults.pending("record_block") == 0, "the running mark was attempted"
    finally:
        faults.clear()
    assert result.success
    assert instance.get_run_by_id(result.run_id).tags[TAG_OUTCOME] == "success"
    execution = store.get_execution(correlation.execution_id)
    assert (execution.status, execution.outcome) == (ExecutionStatus.SUCCESS, Outcome.SUCCESS)
    assert [(b.block_id, b.status) for b in execution.blocks] == [("pause", "success"),
                                                                    ("summary", "success")]
    assert any("could not mark block pause as running" in r.getMessage() for r in caplog.records)
    assert store.list_alerts() == []

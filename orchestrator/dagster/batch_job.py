"""The ``execute_workflow_batch`` job: one op that runs a batch of executions
(:mod:`orchestrator.execution.batch`) and reports them on the run's page, and the hook that
settles what a failed batch run left open: thin adapters over
:mod:`orchestrator.execution.batch`, :mod:`~orchestrator.execution.report` and
:mod:`~orchestrator.execution.settle`.

Dagster events stay few whatever the batch size (each is a storage write): the step's start and
end, one log line listing every execution with its outcome, and the output metadata (a table of
the executions). Per-execution detail lives in the execution log.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.

from contextlib import suppress
from typing import Any

import dagster as dg

from orchestrator.dagster.jobs import RECONCILE_TAG, retry_if_transient, run_end_of
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.domain.correlation import (
    TAG_BATCH_ID,
    TAG_BATCH_SIZE,
    TAG_ENVIRONMENT,
    TAG_JOB,
    TAG_OUTCOME,
    TAG_OUTCOMES,
)
from orchestrator.domain.retry import SETTLE_DELAYS
from orchestrator.exceptions import StoreError
from orchestrator.execution.batch import BatchResult, run_batch
from orchestrator.execution.report import batch_report
from orchestrator.execution.session import utc_now, with_store_retries
from orchestrator.execution.settle import settle_batch

BATCH_JOB_NAME = "execute_workflow_batch"
BATCH_OP_NAME = "run_batch"


class ExecuteBatchConfig(dg.Config):
    """Run config of ``execute_workflow_batch``: the batch; its executions are in the store."""

    batch_id: str


def batch_run_config(batch_id: str) -> dict[str, Any]:
    return {"ops": {BATCH_OP_NAME: {"config": {"batch_id": batch_id}}}}


def batch_run_tags(batch_id: str, environment: str, size: int) -> dict[str, str]:
    return {TAG_BATCH_ID: batch_id, TAG_ENVIRONMENT: environment, TAG_BATCH_SIZE: str(size)}


@dg.op(name=BATCH_OP_NAME, out=dg.Out(dg.Nothing))
def run_batch_op(context: dg.OpExecutionContext, config: ExecuteBatchConfig,
                 orchestrator_store: OrchestratorStore) -> dg.Output[None]:
    settings = orchestrator_store.settings()
    if context.run.tags.get(TAG_BATCH_ID) != config.batch_id:  # launched by hand
        context.instance.add_run_tags(context.run_id, {TAG_BATCH_ID: config.batch_id})
    try:
        result = run_batch(orchestrator_store.get(), orchestrator_store.alerter(), config.batch_id,
                           dagster_run_id=context.run_id,
                           concurrency=settings.batch_concurrency,
                           heartbeat_interval=settings.heartbeat_interval_seconds,
                           clock=utc_now)
    except StoreError as exc:  # the batch could not be opened: nothing of it ran yet
        retry_if_transient(context, exc)
        raise
    return _report(context, result)


def _report(context: dg.OpExecutionContext, result: BatchResult) -> dg.Output[None]:
    report = batch_report(result)
    context.instance.add_run_tags(context.run_id, {TAG_OUTCOMES: report.summary or "none",
                                                   TAG_OUTCOME: report.outcome})
    if report.info_line:
        context.log.info(report.info_line)
    metadata: dict[str, Any] = {
        **report.metadata, "outcomes": dg.MetadataValue.json(report.counts),
        "execution_table": dg.MetadataValue.md(report.markdown or "")}
    if report.failure:
        raise dg.Failure(description=report.failure, metadata=metadata, allow_retries=False)
    return dg.Output(None, metadata=metadata)


@dg.failure_hook(name="settle_failed_batch", required_resource_keys={STORE_RESOURCE})
def settle_failed_batch(context: dg.HookContext) -> None:
    """The batch op failed. Members it finished keep their outcomes; every member left open
    is settled (``pipeline_fault``, or ``cancelled`` for a termination) with one alert for the
    incident. Guarded like the single hook: a failure here is left to the reconciler."""
    instance = context.instance
    run = instance.get_run_by_id(context.run_id)
    batch_id = run.tags.get(TAG_BATCH_ID) if run else None
    if run is None or batch_id is None:
        context.log.error("batch op failed before its batch was identified")
        return
    run_end, message = run_end_of(context, run)
    resource: OrchestratorStore = getattr(context.resources, STORE_RESOURCE)
    try:
        settled = with_store_retries(lambda: settle_batch(
            resource.get(), resource.alerter(), batch_id, run_id=context.run_id,
            run_end=run_end, message=message, finalized_by="hook"), delays=SETTLE_DELAYS)
    except Exception as exc:
        context.log.warning(f"could not settle batch {batch_id} ({type(exc).__name__}); the "
                            "reconciler will")
        with suppress(Exception):
            instance.add_run_tags(context.run_id, {RECONCILE_TAG: "pending"})
        return
    if settled.finalized:
        outcome = settled.finalized[0].outcome
        context.log.error(f"batch {batch_id}: {len(settled.finalized)} execution(s) left open "
                          f"settled as {outcome.value if outcome else '?'} (alert "
                          f"{settled.alert.id if settled.alert else 'none'})")


@dg.job(name=BATCH_JOB_NAME, executor_def=dg.in_process_executor, hooks={settle_failed_batch},
        tags={TAG_JOB: BATCH_JOB_NAME})
def execute_workflow_batch() -> None:
    run_batch_op()

"""The ``execute_workflow`` job: one op that opens the logging session and runs the core.

The op is a thin adapter: correlation comes from run config (sensor-launched runs) or run tags,
or is created fresh with ``source=manual`` for a run launched by hand from the launchpad.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.

from datetime import datetime
from typing import Any

import dagster as dg

from orchestrator.dagster.resources import OrchestratorStore
from orchestrator.domain.correlation import TAG_OUTCOME, Correlation, Source, new_id
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.domain.workflow import DEFAULT_ENVIRONMENT, parse_workflow
from orchestrator.exceptions import OrchestratorError
from orchestrator.execution.blocks import block_types
from orchestrator.execution.core import ExecutionResult, run_workflow
from orchestrator.execution.session import LoggingSession

JOB_NAME = "execute_workflow"
OP_NAME = "run_workflow"


class ExecuteWorkflowConfig(dg.Config):
    """Run config of ``execute_workflow``. Only ``workflow`` is needed to launch by hand."""

    workflow: str
    environment: str = DEFAULT_ENVIRONMENT
    payload: dict[str, Any] = {}
    execution_id: str | None = None
    request_id: str | None = None
    source: str | None = None
    trigger_id: str | None = None
    scheduled_for: str | None = None
    idempotency_key: str | None = None
    parent_execution_id: str | None = None


def correlation_from_config(config: ExecuteWorkflowConfig) -> Correlation:
    if config.execution_id is None:  # launched by hand: a fresh correlation
        return Correlation(execution_id=new_id(), request_id=new_id(), source=Source.MANUAL,
                           workflow=config.workflow, environment=config.environment,
                           payload=config.payload)
    return Correlation(
        execution_id=config.execution_id, request_id=config.request_id or new_id(),
        source=Source(config.source or Source.MANUAL.value), workflow=config.workflow,
        environment=config.environment, trigger_id=config.trigger_id,
        scheduled_for=(datetime.fromisoformat(config.scheduled_for.replace("Z", "+00:00"))
                       if config.scheduled_for else None),
        idempotency_key=config.idempotency_key, parent_execution_id=config.parent_execution_id,
        payload=config.payload)


def run_config_for(correlation: Correlation) -> dict[str, Any]:
    return {"ops": {OP_NAME: {"config": correlation.to_config()}}}


@dg.op(name=OP_NAME, out=dg.Out(dg.Nothing))
def run_workflow_op(context: dg.OpExecutionContext, config: ExecuteWorkflowConfig,
                    store: OrchestratorStore) -> dg.Output[None]:
    correlation = correlation_from_config(config)
    run_tags = context.run.tags
    missing = {k: v for k, v in correlation.tags().items() if run_tags.get(k) != v}
    if missing:  # a launchpad run: make it findable like any other
        context.instance.add_run_tags(context.run_id, missing)
    fields = correlation.log_fields()
    context.log.info(f"execution {fields['execution_id']} request {fields['request_id']}: "
                     f"workflow {correlation.environment}/{correlation.workflow}")

    db = store.get()
    session = LoggingSession(db, correlation)
    try:
        workflow = db.get_workflow(correlation.environment, correlation.workflow)
        spec = parse_workflow(workflow.document, block_types())
        session.open(dagster_run_id=context.run_id, workflow_version=workflow.version)
        result = run_workflow(spec, session)
    except Exception as exc:
        _finalize_fault(context, session, exc)
        raise
    return _report(context, result, fail_run=spec.fail_run_on_user_error)


def _report(context: dg.OpExecutionContext, result: ExecutionResult,
            *, fail_run: bool) -> dg.Output[None]:
    outcome = result.outcome or Outcome.SUCCESS
    context.instance.add_run_tags(context.run_id, {TAG_OUTCOME: outcome.value})
    record = result.record
    metadata = {"execution_id": record.execution_id, "request_id": record.request_id,
                "status": record.status.value, "outcome": outcome.value}
    if outcome is Outcome.USER_ERROR and result.error:
        message = result.error.get("message", "")
        metadata["error"] = message
        context.log.error(f"workflow error (user_error, no alert): {message}")
        if fail_run:
            raise dg.Failure(description=f"workflow error: {message}", metadata=metadata,
                             allow_retries=False)
    return dg.Output(None, metadata=metadata)


def _finalize_fault(context: dg.OpExecutionContext, session: LoggingSession,
                    exc: BaseException) -> None:
    """Record a pipeline fault; guarded, so a failing store here never becomes a second fault."""
    message = str(exc) if isinstance(exc, OrchestratorError) else type(exc).__name__
    try:
        session.finish(status=ExecutionStatus.ERROR, outcome=Outcome.PIPELINE_FAULT,
                       finalized_by="op", error={"message": message,
                                                 "classification": "pipeline_fault"})
        context.instance.add_run_tags(context.run_id,
                                      {TAG_OUTCOME: Outcome.PIPELINE_FAULT.value})
    except Exception as cleanup:  # the reconciler heals this later
        context.log.warning(f"could not record the pipeline fault: {type(cleanup).__name__}")


@dg.job(name=JOB_NAME, executor_def=dg.in_process_executor,
        tags={"orchestrator/job": JOB_NAME})
def execute_workflow() -> None:
    run_workflow_op()



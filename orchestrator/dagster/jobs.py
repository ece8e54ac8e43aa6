"""The ``execute_workflow`` job: one op that opens the logging session and runs the core, and
the failure hook that settles what the op left open.

Thin adapters: the correlation comes from run config (``Correlation.from_config``; a run
launched by hand from the launchpad gets a fresh one, ``source=manual``), the report from
:mod:`orchestrator.execution.report`, the settlement from :mod:`orchestrator.execution.settle`,
the blame from :func:`~orchestrator.domain.failures.classify` and whether Dagster retries a
failing run from Dagster itself (through :mod:`orchestrator.dagster.compat`).
"""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.

from contextlib import suppress
from typing import TYPE_CHECKING, Any

import dagster as dg
import pydantic

from orchestrator.dagster import compat
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.domain.correlation import (
    CORRELATION_FIELD_NAMES,
    TAG_EXECUTION_ID,
    TAG_JOB,
    TAG_OUTCOME,
    Correlation,
)
from orchestrator.domain.failures import classify, retryable
from orchestrator.domain.records import Outcome
from orchestrator.domain.retry import OP_RETRY_DELAYS, SETTLE_DELAYS
from orchestrator.domain.workflow import DEFAULT_ENVIRONMENT, parse_workflow
from orchestrator.exceptions import StoreError
from orchestrator.execution.blocks import block_types
from orchestrator.execution.core import ExecutionResult, run_workflow
from orchestrator.execution.report import RunReport, execution_report, settled_line
from orchestrator.execution.session import Heartbeat, LoggingSession, with_store_retries
from orchestrator.execution.settle import RunEnd, Settlement, fault_message, settle

JOB_NAME = "execute_workflow"
OP_NAME = "run_workflow"


class _ConfigBase(dg.Config):
    """Run config of ``execute_workflow``. Only ``workflow`` is needed to launch by hand."""

    workflow: str
    environment: str = DEFAULT_ENVIRONMENT
    payload: dict[str, Any] = {}


if TYPE_CHECKING:
    ExecuteWorkflowConfig = _ConfigBase
else:  # plus every other correlation field, optional, from the one list
    ExecuteWorkflowConfig = pydantic.create_model(
        "ExecuteWorkflowConfig", __base__=_ConfigBase, __module__=__name__,
        **{name: (str | None, None) for name in CORRELATION_FIELD_NAMES
           if name not in _ConfigBase.model_fields})


def correlation_from_config(config: ExecuteWorkflowConfig) -> Correlation:
    return Correlation.from_config(config.model_dump())


def run_config_for(correlation: Correlation) -> dict[str, Any]:
    return {"ops": {OP_NAME: {"config": correlation.to_config()}}}


RECONCILE_TAG = "orchestrator/reconcile"


@dg.op(name=OP_NAME, out=dg.Out(dg.Nothing))
def run_workflow_op(context: dg.OpExecutionContext, config: ExecuteWorkflowConfig,
                    orchestrator_store: OrchestratorStore) -> dg.Output[None]:
    correlation = correlation_from_config(config)
    run_tags = context.run.tags
    missing = {k: v for k, v in correlation.tags().items() if run_tags.get(k) != v}
    if missing:  # a launchpad run: make it findable like any other
        context.instance.add_run_tags(context.run_id, missing)
    # No log line announcing the correlation: the run's tags carry it and the op's output
    # metadata repeats it with the attempt; every Dagster log line is an event-log write.
    db = orchestrator_store.get()
    session = LoggingSession(db, correlation)
    try:
        workflow, record = session.open(dagster_run_id=context.run_id)
        if record.status.terminal:  # finalized before (a re-executed run): never run it twice
            context.log.info(f"execution already finalized as {record.outcome}; not running "
                             "its blocks again")
            return _report(context, ExecutionResult(record=record), fail_run=False)
        spec = parse_workflow(workflow.document, block_types())
        with Heartbeat.of_execution(db, correlation.execution_id,
                                    interval=orchestrator_store.settings().heartbeat_interval_seconds):
            result = run_workflow(spec, session)
    except StoreError as exc:
        retry_if_transient(context, exc)
        raise
    return _report(context, result, fail_run=spec.fail_run_on_user_error)


def retry_if_transient(context: dg.OpExecutionContext, exc: StoreError) -> None:
    """Ask Dagster to run the op again (the policy's delays: 2 s, 4 s, 8 s) when trying again
    may help (a lost connection); anything else fails the run at once."""
    retries = len(OP_RETRY_DELAYS)
    if retryable(exc) and context.retry_number < retries:
        wait = OP_RETRY_DELAYS[context.retry_number]
        context.log.warning(f"{exc}; retrying the op in {wait:g}s "
                            f"(retry {context.retry_number + 1} of {retries})")
        raise dg.RetryRequested(max_retries=retries, seconds_to_wait=wait) from exc


def _report(context: dg.OpExecutionContext, result: ExecutionResult,
            *, fail_run: bool) -> dg.Output[None]:
    report: RunReport = execution_report(result, fail_run=fail_run)
    context.instance.add_run_tags(context.run_id, {TAG_OUTCOME: report.outcome})
    if report.error_line:
        context.log.error(report.error_line)
    if report.failure:
        raise dg.Failure(description=report.failure, metadata=report.metadata,
                         allow_retries=False)
    return dg.Output(None, metadata=report.metadata)


def will_be_retried(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether Dagster's run retries will re-execute this failing run (same execution id):
    Dagster's own decision for the run as it is about to fail on a step failure."""
    if not instance.run_retries_enabled:
        return False
    return bool(compat.auto_reexecution_should_retry_run(
        instance, run.with_status(dg.DagsterRunStatus.FAILURE),
        compat.RunFailureReason.STEP_FAILURE))


@dg.failure_hook(name="classify_failure", required_resource_keys={STORE_RESOURCE})
def classify_failure(context: dg.HookContext) -> None:
    """The op failed. Read the durable state: a user error the core finalized stays silent;
    otherwise finalize as a pipeline fault and alert once. Guarded: a failure here is logged and
    tagged on the run, and the reconciler settles the execution on a later tick."""
    instance = context.instance
    run = instance.get_run_by_id(context.run_id)
    execution_id = run.tags.get(TAG_EXECUTION_ID) if run else None
    if run is None or execution_id is None:
        context.log.error("op failed before the execution was identified; no execution to "
                          "finalize")
        return
    run_end, message = run_end_of(context, run)
    resource: OrchestratorStore = getattr(context.resources, STORE_RESOURCE)
    try:
        outcome = _settle_with_retries(resource, execution_id, context.run_id, run_end, message)
    except Exception as exc:
        context.log.warning(f"could not settle execution {execution_id} "
                            f"({type(exc).__name__}); the reconciler will")
        with suppress(Exception):
            instance.add_run_tags(context.run_id, {RECONCILE_TAG: "pending"})
        return
    if not outcome.left_for_retry:
        with suppress(Exception):
            instance.add_run_tags(context.run_id, {TAG_OUTCOME: (
                outcome.execution.outcome or Outcome.PIPELINE_FAULT).value})
    line = settled_line(outcome, execution_id, message)
    if line is not None:
        context.log.log(*line)


def run_end_of(context: dg.HookContext, run: dg.DagsterRun) -> tuple[RunEnd, str]:
    """How the failing run ends as the hook sees it, and what to record about it."""
    if classify(context.op_exception) is Outcome.CANCELLED \
            or run.status in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED):
        return RunEnd.CANCELED, "the Dagster run was terminated"
    message = fault_message(context.op_exception)
    if will_be_retried(context.instance, run):
        return RunEnd.FAILED_WILL_RETRY, message
    return RunEnd.FAILED, message


def _settle_with_retries(resource: OrchestratorStore, execution_id: str, run_id: str,
                         run_end: RunEnd, message: str) -> Settlement:
    store, alerter = resource.get(), resource.alerter()
    return with_store_retries(
        lambda: settle(store, alerter, execution_id, run_id=run_id, run_end=run_end,
                       message=message, finalized_by="hook"), delays=SETTLE_DELAYS)


@dg.job(name=JOB_NAME, executor_def=dg.in_process_executor, hooks={classify_failure},
        tags={TAG_JOB: JOB_NAME})
def execute_workflow() -> None:
    run_workflow_op()

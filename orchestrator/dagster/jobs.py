"""The ``execute_workflow`` job: one op that opens the logging session and runs the core.

The op is a thin adapter: correlation comes from run config (sensor-launched runs) or run tags,
or is created fresh with ``source=manual`` for a run launched by hand from the launchpad.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.

from contextlib import suppress
from typing import TYPE_CHECKING, Any

import dagster as dg
import pydantic
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.storage.tags import (
    MAX_RETRIES_TAG,
    RETRY_NUMBER_TAG,
    RETRY_ON_ASSET_OR_OP_FAILURE_TAG,
)

from orchestrator.dagster.resources import OrchestratorStore
from orchestrator.domain.correlation import (
    CORRELATION_FIELD_NAMES,
    TAG_EXECUTION_ID,
    TAG_JOB,
    TAG_OUTCOME,
    Correlation,
)
from orchestrator.domain.records import Outcome
from orchestrator.domain.workflow import DEFAULT_ENVIRONMENT, parse_workflow
from orchestrator.exceptions import StoreError
from orchestrator.execution.blocks import block_types
from orchestrator.execution.core import ExecutionResult, run_workflow
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


# A lost database connection is retried inside the run (the op runs again, the same execution id,
# attempt + 1) with exponential backoff; anything else fails the run at once.
STORE_RETRIES = 3
STORE_RETRY_BASE_SECONDS = 2.0
RECONCILE_TAG = "orchestrator/reconcile"


@dg.op(name=OP_NAME, out=dg.Out(dg.Nothing))
def run_workflow_op(context: dg.OpExecutionContext, config: ExecuteWorkflowConfig,
                    store: OrchestratorStore) -> dg.Output[None]:
    correlation = correlation_from_config(config)
    run_tags = context.run.tags
    missing = {k: v for k, v in correlation.tags().items() if run_tags.get(k) != v}
    if missing:  # a launchpad run: make it findable like any other
        context.instance.add_run_tags(context.run_id, missing)
    # No log line announcing the correlation: the run's tags carry it and the op's output
    # metadata repeats it with the attempt; every Dagster log line is an event-log write.
    db = store.get()
    session = LoggingSession(db, correlation)
    try:
        workflow, record = session.open(dagster_run_id=context.run_id)
        if record.status.terminal:  # finalized before (a re-executed run): never run it twice
            context.log.info(f"execution already finalized as {record.outcome}; not running "
                             "its blocks again")
            return _report(context, ExecutionResult(record=record), fail_run=False)
        spec = parse_workflow(workflow.document, block_types())
        with Heartbeat.of_execution(db, correlation.execution_id,
                                    interval=store.settings().heartbeat_interval_seconds):
            result = run_workflow(spec, session)
    except StoreError as exc:
        retry_if_transient(context, exc)
        raise
    return _report(context, result, fail_run=spec.fail_run_on_user_error)


def retry_if_transient(context: dg.OpExecutionContext, exc: StoreError) -> None:
    """Ask Dagster to run the op again (backoff 2 s, 4 s, 8 s) for a lost connection."""
    if exc.transient and context.retry_number < STORE_RETRIES:
        wait = STORE_RETRY_BASE_SECONDS * 2 ** context.retry_number
        context.log.warning(f"{exc}; retrying the op in {wait:g}s "
                            f"(retry {context.retry_number + 1} of {STORE_RETRIES})")
        raise dg.RetryRequested(max_retries=STORE_RETRIES, seconds_to_wait=wait) from exc


def _report(context: dg.OpExecutionContext, result: ExecutionResult,
            *, fail_run: bool) -> dg.Output[None]:
    outcome = result.outcome or Outcome.SUCCESS
    context.instance.add_run_tags(context.run_id, {TAG_OUTCOME: outcome.value})
    record = result.record
    metadata: dict[str, Any] = {
        "execution_id": record.execution_id, "request_id": record.request_id,
        "attempt": record.attempts, "status": record.status.value, "outcome": outcome.value}
    if outcome is Outcome.USER_ERROR and result.error:
        message = result.error.get("message", "")
        metadata["error"] = message
        if result.error.get("block"):
            metadata["block"] = result.error["block"]
        context.log.error(f"workflow error (user_error, no alert): {message}")
        if fail_run:
            raise dg.Failure(description=f"workflow error: {message}", metadata=metadata,
                             allow_retries=False)
    return dg.Output(None, metadata=metadata)


def will_be_retried(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether Dagster's run retries will re-execute this failing run (same execution id)."""
    if not instance.run_retries_enabled:
        return False
    on_op_failure = run.tags.get(RETRY_ON_ASSET_OR_OP_FAILURE_TAG)
    if (on_op_failure is None and not instance.run_retries_retry_on_asset_or_op_failure) or (
            on_op_failure is not None and on_op_failure.lower() == "false"):
        return False
    max_retries = int(run.tags.get(MAX_RETRIES_TAG, instance.run_retries_max_retries))
    return int(run.tags.get(RETRY_NUMBER_TAG, "0")) < max_retries


@dg.failure_hook(name="classify_failure", required_resource_keys={"store"})
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
    resource: OrchestratorStore = context.resources.store
    try:
        outcome = _settle_with_retries(resource, execution_id, context.run_id, run_end, message)
    except Exception as exc:
        context.log.warning(f"could not settle execution {execution_id} "
                            f"({type(exc).__name__}); the reconciler will")
        with suppress(Exception):
            instance.add_run_tags(context.run_id, {RECONCILE_TAG: "pending"})
        return
    if outcome.left_for_retry:
        context.log.info(f"pipeline fault ({message}); Dagster will retry the run, execution "
                         f"{execution_id} stays open")
        return
    record = outcome.execution
    with suppress(Exception):
        instance.add_run_tags(context.run_id, {TAG_OUTCOME: (record.outcome or
                                                             Outcome.PIPELINE_FAULT).value})
    if record.outcome is Outcome.USER_ERROR:
        context.log.info("run failed on a user error (fail_run_on_user_error); no alert")
    elif record.outcome is Outcome.CANCELLED:
        context.log.info(f"execution {execution_id} cancelled; no alert")
    elif record.outcome is Outcome.PIPELINE_FAULT:
        context.log.error(f"pipeline fault, alert {outcome.alert.id if outcome.alert else '?'}:"
                          f" {(record.error or {}).get('message', message)}")


def run_end_of(context: dg.HookContext, run: dg.DagsterRun) -> tuple[RunEnd, str]:
    """How the failing run ends as the hook sees it, and what to record about it."""
    if isinstance(context.op_exception, DagsterExecutionInterruptedError | KeyboardInterrupt) \
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
                       message=message, finalized_by="hook"), delays=(0.5, 1.0, 2.0))


@dg.job(name=JOB_NAME, executor_def=dg.in_process_executor, hooks={classify_failure},
        tags={TAG_JOB: JOB_NAME})
def execute_workflow() -> None:
    run_workflow_op()

"""Settling an execution whose Dagster run ended without the core finalizing it.

Used by the failure hook (inside the failed run) and by the reconciler (for what hooks cannot
see: resource-init failures, terminated runs, killed run workers). Both read the durable state
first: an execution the core already finalized keeps its outcome (a user error stays silent);
otherwise exactly one terminal write wins, and a pipeline fault raises exactly one alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from orchestrator.alerts import Alerter
from orchestrator.domain.failures import our_error
from orchestrator.domain.records import AlertRecord, ExecutionRecord, ExecutionStatus, Outcome
from orchestrator.store import Store

log = logging.getLogger(__name__)
FINALIZED_BY_BATCH = "batch"  # a member of a batch run that faulted alone, settled by the run


class RunEnd(str, Enum):
    """How the Dagster run of an execution ended, as the caller saw it."""

    FAILED = "failed"
    FAILED_WILL_RETRY = "failed_will_retry"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


@dataclass(frozen=True, kw_only=True)
class Settlement:
    execution: ExecutionRecord
    finalized: bool  # this call wrote the terminal state
    alert: AlertRecord | None
    left_for_retry: bool = False


def settle(store: Store, alerter: Alerter, execution_id: str, *, run_id: str | None,
           run_end: RunEnd, message: str, finalized_by: str) -> Settlement:
    """Finalize ``execution_id`` unless it already is; alert once if it is a pipeline fault."""
    record = store.get_execution(execution_id)
    if record.status.terminal:
        return Settlement(execution=record, finalized=False, alert=_alert(alerter, record))
    if run_end is RunEnd.FAILED_WILL_RETRY:
        log.info("execution %s: Dagster will retry the run; not finalizing", execution_id)
        return Settlement(execution=record, finalized=False, alert=None, left_for_retry=True)
    status, outcome = _terminal_of(run_end)
    record, won = store.finish_execution(
        execution_id, status=status, outcome=outcome, finalized_by=finalized_by,
        now=alerter.clock(), error={"message": message, "classification": outcome.value},
        dagster_run_id=run_id)
    return Settlement(execution=record, finalized=won, alert=_alert(alerter, record))


def _terminal_of(run_end: RunEnd) -> tuple[ExecutionStatus, Outcome]:
    """What an execution the run left open ends as: cancelled with a termination, otherwise a
    pipeline fault."""
    if run_end is RunEnd.CANCELED:
        return ExecutionStatus.CANCELLED, Outcome.CANCELLED
    return ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT


def fault_message(exc: BaseException | None) -> str:
    """What the execution log and the alert say about a pipeline fault: our own errors' messages
    (written to be safe), otherwise only the exception type (details stay in the run's logs)."""
    ours = our_error(exc)
    if ours is not None:
        return str(ours)
    name = type(exc).__name__ if exc is not None else "unknown error"
    return f"internal error ({name}) outside the workflow; see the Dagster run's logs"


def _alert(alerter: Alerter, record: ExecutionRecord) -> AlertRecord | None:
    if record.outcome is Outcome.PIPELINE_FAULT:
        return alerter.pipeline_fault(record)
    return None


@dataclass(frozen=True, kw_only=True)
class BatchSettlement:
    batch_id: str
    finalized: list[ExecutionRecord]  # the members this call finalized
    alert: AlertRecord | None  # the incident's one alert
    left_for_retry: bool = False


def settle_batch(store: Store, alerter: Alerter, batch_id: str, *, run_id: str | None,
                 run_end: RunEnd, message: str, finalized_by: str) -> BatchSettlement:
    """Settle a batch run that ended without finishing all of its executions: every member
    still open (and not taken over by a later run) is finalized in one write, ``cancelled``
    for a termination, otherwise ``pipeline_fault``; the incident raises **one** alert naming
    every execution it affected (raised again by a later settler if it went missing; members
    that faulted on their own inside the run have their own alerts)."""
    batches = store.batches
    if run_end is RunEnd.FAILED_WILL_RETRY:
        log.info("batch %s: Dagster will retry the run; not finalizing", batch_id)
        return BatchSettlement(batch_id=batch_id, finalized=[], alert=None, left_for_retry=True)
    status, outcome = _terminal_of(run_end)
    finalized, members = batches.finish_open(
        batch_id, run_id=run_id, status=status, outcome=outcome,
        error={"message": message, "classification": outcome.value},
        finalized_by=finalized_by, now=alerter.clock())
    # The incident: every member of this run that ended a pipeline fault with the run, not on
    # its own inside it (those were finalized by the batch and alerted alone).
    affected = [m for m in members if m.outcome is Outcome.PIPELINE_FAULT
                and m.finalized_by != FINALIZED_BY_BATCH
                and (run_id is None or m.dagster_run_id == run_id)]
    alert = None
    if affected:
        alert = alerter.batch_fault(run_id=run_id, batch_id=batch_id,
                                    environment=affected[0].environment, executions=affected,
                                    message=message)
    return BatchSettlement(batch_id=batch_id, finalized=finalized, alert=alert)

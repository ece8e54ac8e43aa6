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
from orchestrator.domain.records import AlertRecord, ExecutionRecord, ExecutionStatus, Outcome
from orchestrator.store import Store

log = logging.getLogger(__name__)


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
    if run_end is RunEnd.CANCELED:
        status, outcome = ExecutionStatus.CANCELLED, Outcome.CANCELLED
    else:
        status, outcome = ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT
    record, won = store.finish_execution(
        execution_id, status=status, outcome=outcome, finalized_by=finalized_by,
        now=alerter.clock(), error={"message": message, "classification": outcome.value},
        dagster_run_id=run_id)
    return Settlement(execution=record, finalized=won, alert=_alert(alerter, record))


def _alert(alerter: Alerter, record: ExecutionRecord) -> AlertRecord | None:
    if record.outcome is Outcome.PIPELINE_FAULT:
        return alerter.pipeline_fault(record)
    return None

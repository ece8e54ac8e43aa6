"""Cancellation in memory (the SQL twin: ``cancellation.py``)."""

from __future__ import annotations

from datetime import datetime

from orchestrator.domain.records import (
    CANCELLED_ERROR,
    FINALIZED_BY_CANCEL,
    CancelOutcome,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
)
from orchestrator.exceptions import NotFound
from orchestrator.store.memory.executions import execution_record, insert_execution
from orchestrator.store.memory.queue import buffered_correlation
from orchestrator.store.memory.state import MemoryState


class MemoryCancellation:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def cancel(self, execution_id: str, now: datetime) -> tuple[ExecutionRecord, CancelOutcome]:
        with self.state.transaction() as s:
            executions = s.table("executions")
            buffered = s.table("buffer").pop(execution_id, None)
            if buffered is not None and execution_id not in executions:
                insert_execution(s, buffered_correlation(buffered), buffered["created_at"],
                                 batch_id=buffered["batch_id"],
                                 not_before=buffered["not_before"],
                                 expires_at=buffered["expires_at"],
                                 priority=buffered["priority"],
                                 concurrency_key=buffered["concurrency_key"])
            row = executions.get(execution_id)
            if row is None:
                raise NotFound("execution", execution_id)
            if ExecutionStatus(row["status"]).terminal:
                outcome = CancelOutcome.FINISHED
            elif row["status"] == ExecutionStatus.QUEUED.value:
                s.table("queued").pop(execution_id, None)
                row = s.update("executions", execution_id,
                               status=ExecutionStatus.CANCELLED.value,
                               outcome=Outcome.CANCELLED.value,
                               finalized_by=FINALIZED_BY_CANCEL, finished_at=now,
                               error=dict(CANCELLED_ERROR))
                outcome = CancelOutcome.CANCELLED
            else:
                if row["cancel_requested_at"] is None:
                    row = s.update("executions", execution_id, cancel_requested_at=now)
                outcome = CancelOutcome.REQUESTED
            return execution_record(row), outcome

    def cancel_requested(self, limit: int = 100) -> list[ExecutionRecord]:
        with self.state.transaction() as s:
            rows = [r for r in s.table("executions").values()
                    if r["status"] == ExecutionStatus.RUNNING.value
                    and r["cancel_requested_at"] is not None]
            rows.sort(key=lambda r: r["cancel_requested_at"])
            return [execution_record(r) for r in rows[:limit]]

"""Cancelling an execution on SQL, in one transaction, whatever state it is in:

- **buffered** (still in the burst buffer): materialized as it would have been, then cancelled;
- **queued** (no run has started it; a delayed or debounced one too): ``cancelled`` at once,
  finalized by ``cancel``, its queue row removed (a run already requested for it finds it
  finalized and runs nothing);
- **running**: ``cancel_requested_at`` is set; the reconciler stops it (terminates its run, or
  finalizes it alone when it is one member of a batch run);
- **finished**: nothing changes.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from orchestrator.domain.correlation import Correlation
from orchestrator.domain.records import (
    CANCELLED_ERROR,
    FINALIZED_BY_CANCEL,
    CancelOutcome,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
)
from orchestrator.exceptions import NotFound
from orchestrator.store import tables as t
from orchestrator.store.executions import execution_record, insert_execution
from orchestrator.store.uow import Database, translated


class SqlCancellation:
    def __init__(self, db: Database) -> None:
        self.db = db

    @translated("cancel the execution")
    def cancel(self, execution_id: str, now: datetime) -> tuple[ExecutionRecord, CancelOutcome]:
        """Raises :class:`~orchestrator.exceptions.NotFound` for an unknown id."""
        e, q, b = t.executions, t.queued_triggers, t.burst_buffer
        with self.db.write() as conn:
            buffered = conn.execute(sa.select(b).where(b.c.execution_id == execution_id)).first()
            if buffered is not None:
                if conn.execute(sa.select(e.c.execution_id).where(
                        e.c.execution_id == execution_id)).first() is None:
                    insert_execution(conn, Correlation.from_row(buffered), buffered.created_at,
                                     batch_id=buffered.batch_id,
                                     not_before=buffered.not_before,
                                     expires_at=buffered.expires_at,
                                     priority=buffered.priority,
                                     concurrency_key=buffered.concurrency_key)
                conn.execute(b.delete().where(b.c.execution_id == execution_id))
            row = conn.execute(sa.select(e).where(e.c.execution_id == execution_id)
                               .with_for_update()).first()
            if row is None:
                raise NotFound("execution", execution_id)
            if ExecutionStatus(row.status).terminal:
                outcome = CancelOutcome.FINISHED
            elif row.status == ExecutionStatus.QUEUED.value:
                conn.execute(q.delete().where(q.c.execution_id == execution_id))
                conn.execute(e.update().where(e.c.execution_id == execution_id).values(
                    status=ExecutionStatus.CANCELLED.value, outcome=Outcome.CANCELLED.value,
                    finalized_by=FINALIZED_BY_CANCEL, finished_at=now, error=CANCELLED_ERROR))
                outcome = CancelOutcome.CANCELLED
            else:
                conn.execute(e.update().where(e.c.execution_id == execution_id,
                                              e.c.cancel_requested_at.is_(None))
                             .values(cancel_requested_at=now))
                outcome = CancelOutcome.REQUESTED
            row = conn.execute(sa.select(e).where(e.c.execution_id == execution_id)).one()
            return execution_record(row, ()), outcome

    @translated("read cancel requests")
    def cancel_requested(self, limit: int = 100) -> list[ExecutionRecord]:
        """Running executions with a cancel request, oldest request first."""
        e = t.executions
        with self.db.read() as conn:
            rows = conn.execute(sa.select(e).where(
                e.c.status == ExecutionStatus.RUNNING.value,
                e.c.cancel_requested_at.is_not(None)).order_by(e.c.cancel_requested_at)
                .limit(limit))
            return [execution_record(r, ()) for r in rows]

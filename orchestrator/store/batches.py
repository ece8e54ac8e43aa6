"""Batch runs in the store: many executions carried by one Dagster run.

An execution joins a batch by a conditional write (``run_batch_id`` set only where it is still
empty, or inserted with it), so it belongs to at most one batch whatever overlaps. The batch row
is written in the same transaction, before its run is requested; until the run is seen in
Dagster (``dispatched_at``), every tick requests the same batch again, with the same run key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.domain.correlation import Correlation, new_id
from orchestrator.domain.records import (
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    TriggerStatus,
    WorkflowRecord,
)
from orchestrator.store import tables as t
from orchestrator.store.executions import execution_record, execution_row, expire_overdue
from orchestrator.store.interfaces import KIND_QUEUE, KIND_SCHEDULE, BatchOpening, RunBatch
from orchestrator.store.uow import Database, translated
from orchestrator.store.workflows import read_workflow

__all__ = ["KIND_QUEUE", "KIND_SCHEDULE", "BatchOpening", "RunBatch", "RunBatches",
           "new_batch_id"]
OPEN = (ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value)


def new_batch_id() -> str:
    return "rb_" + new_id().replace("-", "")[:24]


class RunBatches:
    """The batch operations of the dispatchers, the batch run and the settlers, on one
    :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ dispatch

    @translated("claim queued triggers for a batch")
    def claim_queued(self, environment: str, execution_ids: Sequence[str],
                     now: datetime) -> RunBatch | None:
        """Put the still unclaimed queued triggers among ``execution_ids`` in a new batch; None
        when an overlapping evaluation claimed all of them first."""
        q, e = t.queued_triggers, t.executions
        batch_id = new_batch_id()
        with self.db.write() as conn:
            claimed = conn.execute(q.update().where(
                q.c.execution_id.in_(list(execution_ids)), q.c.run_batch_id.is_(None),
                q.c.status == TriggerStatus.QUEUED.value).values(run_batch_id=batch_id)
            ).rowcount
            if not claimed:
                return None
            conn.execute(e.update().where(e.c.execution_id.in_(
                sa.select(q.c.execution_id).where(q.c.run_batch_id == batch_id)))
                .values(run_batch_id=batch_id))
            return self._insert(conn, batch_id, environment, KIND_QUEUE, claimed, now)

    @translated("create a batch of scheduled executions")
    def create_scheduled(self, environment: str, correlations: Sequence[Correlation],
                         now: datetime, *,
                         priorities: Mapping[str, int] | None = None) -> RunBatch | None:
        """Insert the executions of due occurrences as one batch (each with its schedule's
        priority, by execution id). An occurrence whose execution already exists (an
        overlapping evaluation) is left out; None when all were."""
        batch_id = new_batch_id()
        priorities = priorities or {}
        rows = [execution_row(c, now, run_batch_id=batch_id,
                              priority=priorities.get(c.execution_id, 0)) for c in correlations]
        e = t.executions
        with self.db.write() as conn:
            insert = (postgresql.insert(e) if conn.dialect.name == "postgresql"
                      else sqlite.insert(e))
            conn.execute(insert.on_conflict_do_nothing(index_elements=["execution_id"]), rows)
            size = conn.execute(sa.select(sa.func.count()).select_from(e)
                                .where(e.c.run_batch_id == batch_id)).scalar_one()
            if not size:
                return None
            return self._insert(conn, batch_id, environment, KIND_SCHEDULE, size, now)

    def _insert(self, conn: sa.Connection, batch_id: str, environment: str, kind: str,
                size: int, now: datetime) -> RunBatch:
        batch = RunBatch(batch_id=batch_id, environment=environment, kind=kind, size=size,
                         created_at=now)
        conn.execute(t.run_batches.insert().values(
            batch_id=batch_id, environment=environment, kind=kind, size=size, created_at=now))
        return batch

    @translated("read pending batches")
    def pending(self, kind: str, limit: int) -> list[RunBatch]:
        """Batches whose run has not been seen in Dagster yet, oldest first."""
        b = t.run_batches
        with self.db.read() as conn:
            rows = conn.execute(sa.select(b).where(b.c.kind == kind, b.c.dispatched_at.is_(None))
                                .order_by(b.c.created_at, b.c.batch_id).limit(limit))
            return [RunBatch(**r._asdict()) for r in rows]

    @translated("mark the batch dispatched")
    def mark_dispatched(self, batch_ids: Sequence[str], now: datetime) -> None:
        """The batches' runs exist: stop requesting them, and mark their queue rows."""
        if not batch_ids:
            return
        b, q = t.run_batches, t.queued_triggers
        with self.db.write() as conn:
            conn.execute(b.update().where(b.c.batch_id.in_(list(batch_ids)),
                                          b.c.dispatched_at.is_(None))
                         .values(dispatched_at=now))
            conn.execute(q.update().where(q.c.run_batch_id.in_(list(batch_ids)),
                                          q.c.status == TriggerStatus.QUEUED.value)
                         .values(status=TriggerStatus.DISPATCHED.value, dispatched_at=now))

    @translated("read batches")
    def get(self, batch_ids: Sequence[str]) -> dict[str, RunBatch]:
        b = t.run_batches
        if not batch_ids:
            return {}
        with self.db.read() as conn:
            return {r.batch_id: RunBatch(**r._asdict()) for r in conn.execute(
                sa.select(b).where(b.c.batch_id.in_(list(batch_ids))))}

    # ------------------------------------------------------------------ the batch run

    @translated("read the batch's executions")
    def members(self, batch_id: str) -> list[ExecutionRecord]:
        e = t.executions
        with self.db.read() as conn:
            return [execution_record(r, ()) for r in conn.execute(
                sa.select(e).where(e.c.run_batch_id == batch_id)
                .order_by(e.c.created_at, e.c.execution_id))]

    @translated("start the batch")
    def open(self, batch_id: str, *, dagster_run_id: str, now: datetime) -> BatchOpening:
        """Begin an attempt of the batch in one transaction: every open member is marked
        running by this run (attempt + 1) with its workflow's current version."""
        e, w = t.executions, t.workflows
        with self.db.write() as conn:
            expire_overdue(conn, e.c.run_batch_id == batch_id, now)  # not started by their TTL
            pairs = [(r.environment, r.workflow) for r in conn.execute(
                sa.select(e.c.environment, e.c.workflow).distinct()
                .where(e.c.run_batch_id == batch_id, e.c.status.in_(OPEN)))]
            workflows: dict[tuple[str, str], WorkflowRecord | None] = {}
            for environment, name in pairs:
                deleted = conn.execute(sa.select(w.c.deleted_at).where(
                    w.c.environment == environment, w.c.name == name)).first()
                record = (None if deleted is None or deleted.deleted_at is not None
                          else read_workflow(conn, environment, name))
                workflows[(environment, name)] = record
                conn.execute(e.update().where(
                    e.c.run_batch_id == batch_id, e.c.status.in_(OPEN),
                    e.c.environment == environment, e.c.workflow == name)
                    .values(status=ExecutionStatus.RUNNING.value, attempts=e.c.attempts + 1,
                            dagster_run_id=dagster_run_id, started_at=now, heartbeat_at=now,
                            workflow_version=(record.version if record is not None
                                              else e.c.workflow_version)))
            rows = [execution_record(r, ()) for r in conn.execute(
                sa.select(e).where(e.c.run_batch_id == batch_id)
                .order_by(e.c.created_at, e.c.execution_id))]
        running = [r for r in rows if r.status is ExecutionStatus.RUNNING
                   and r.dagster_run_id == dagster_run_id]
        finalized = [r for r in rows if r.status.terminal]
        return BatchOpening(running=running, finalized=finalized, workflows=workflows)

    @translated("renew the batch's heartbeat")
    def heartbeat(self, batch_id: str, dagster_run_id: str, now: datetime) -> bool:
        """Renew the lease of every member this run is running; False once none is left."""
        e = t.executions
        with self.db.write() as conn:
            return conn.execute(e.update().where(
                e.c.run_batch_id == batch_id, e.c.dagster_run_id == dagster_run_id,
                e.c.status == ExecutionStatus.RUNNING.value).values(heartbeat_at=now)
            ).rowcount > 0

    # ------------------------------------------------------------------ settling

    @translated("finalize the batch's open executions")
    def finish_open(self, batch_id: str, *, run_id: str | None, status: ExecutionStatus,
                    outcome: Outcome, error: dict[str, Any], finalized_by: str,
                    now: datetime) -> tuple[list[ExecutionRecord], list[ExecutionRecord]]:
        """The terminal write of every member still open that no later run took over (one
        conditional update). Returns (the members this call finalized, every member)."""
        e = t.executions
        owned: Any = e.c.dagster_run_id.is_(None)
        if run_id is not None:
            owned = owned | (e.c.dagster_run_id == run_id)
        with self.db.write() as conn:
            ids = [r.execution_id for r in conn.execute(sa.select(e.c.execution_id).where(
                e.c.run_batch_id == batch_id, e.c.status.in_(OPEN), owned))]
            if ids:
                conn.execute(e.update().where(e.c.execution_id.in_(ids), e.c.status.in_(OPEN))
                             .values(status=status.value, outcome=outcome.value,
                                     finalized_by=finalized_by, finished_at=now, error=error,
                                     dagster_run_id=sa.func.coalesce(e.c.dagster_run_id,
                                                                     run_id)))
            rows = [execution_record(r, ()) for r in conn.execute(
                sa.select(e).where(e.c.run_batch_id == batch_id)
                .order_by(e.c.created_at, e.c.execution_id))]
        won = set(ids)
        mine = [r for r in rows if r.execution_id in won and r.finalized_by == finalized_by
                and r.finished_at == now]
        return mine, rows

    @translated("read the batches in flight")
    def unfinished(self, kind: str) -> list[int]:
        e, b = t.executions, t.run_batches
        with self.db.read() as conn:
            # Open executions only (the status index): a batch's finished members are history.
            return [n for (n,) in conn.execute(
                sa.select(sa.func.count()).select_from(e)
                .join(b, b.c.batch_id == e.c.run_batch_id)
                .where(e.c.status.in_(OPEN), b.c.kind == kind)
                .group_by(e.c.run_batch_id))]

    @translated("read the workflows' batch setting")
    def batchable(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        """Whether each (environment, workflow)'s current version lets its executions share a
        run (``batch: false`` opts out; a missing workflow runs alone, to fail alone)."""
        w, v = t.workflows, t.workflow_versions
        wanted = set(pairs)
        if not wanted:
            return {}
        environments = sorted({env for env, _ in wanted})
        names = sorted({name for _, name in wanted})
        found: dict[tuple[str, str], bool] = {}
        with self.db.read() as conn:
            for row in conn.execute(
                    sa.select(w.c.environment, w.c.name, v.c.document)
                    .join(v, (v.c.workflow_id == w.c.id) & (v.c.version == w.c.current_version))
                    .where(w.c.environment.in_(environments), w.c.name.in_(names),
                           w.c.deleted_at.is_(None))):
                found[(row.environment, row.name)] = row.document.get("batch", True) is not False
        return {pair: found.get(pair, False) for pair in wanted}

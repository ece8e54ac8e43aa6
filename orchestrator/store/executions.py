"""Executions in the SQL store: the execution log (one row per execution, block entries per
attempt). Every transition is a conditional update: an attempt starts only an open execution, and
exactly one terminal write wins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from orchestrator.domain.correlation import Correlation
from orchestrator.domain.payloads import storable_json, storable_text
from orchestrator.domain.records import (
    EXPIRED_ERROR,
    FINALIZED_BY_TTL,
    BlockEntry,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    TriggerStatus,
    WorkflowRecord,
)
from orchestrator.exceptions import NotFound
from orchestrator.store import tables as t
from orchestrator.store.uow import Database, translated
from orchestrator.store.workflows import read_workflow


class SqlExecutions:
    """The executions repository on one :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @translated("record the execution")
    def create_execution(self, correlation: Correlation, now: datetime, *,
                         workflow_version: int | None = None, enqueue: bool = False,
                         priority: int = 0) -> tuple[ExecutionRecord, bool]:
        """Insert the execution (status ``queued``) unless it exists; with ``enqueue`` also its
        queued-trigger row, in the same transaction. Returns the stored record (the first
        writer's correlation wins) and whether this call created it."""
        with self.db.write() as conn:
            created = False
            if self._execution_row(conn, correlation.execution_id) is None:
                try:
                    with conn.begin_nested():
                        insert_execution(conn, correlation, now,
                                         workflow_version=workflow_version, enqueue=enqueue,
                                         priority=priority)
                    created = True
                except IntegrityError:
                    pass  # a concurrent writer inserted it first
            return self._execution(conn, correlation.execution_id), created

    def _execution_row(self, conn: sa.Connection, execution_id: str) -> Any:
        return conn.execute(sa.select(t.executions)
                            .where(t.executions.c.execution_id == execution_id)).first()

    def _execution(self, conn: sa.Connection, execution_id: str,
                   with_blocks: bool = False) -> ExecutionRecord:
        row = self._execution_row(conn, execution_id)
        if row is None:
            raise NotFound("execution", execution_id)
        blocks: tuple[BlockEntry, ...] = ()
        if with_blocks:
            b = t.execution_blocks
            blocks = tuple(
                BlockEntry(block_id=r.block_id, block_type=r.block_type, status=r.status,
                           started_at=r.started_at, finished_at=r.finished_at,
                           duration_ms=r.duration_ms, error=r.error, output_size=r.output_size)
                for r in conn.execute(sa.select(b).where(
                    b.c.execution_id == execution_id, b.c.attempt == row.attempts)
                    .order_by(b.c.started_at)))
        return execution_record(row, blocks)

    @translated("read the execution")
    def get_execution(self, execution_id: str) -> ExecutionRecord:
        with self.db.read() as conn:
            return self._execution(conn, execution_id, with_blocks=True)

    @translated("read executions")
    def executions_by_id(self, execution_ids: Sequence[str]) -> dict[str, ExecutionRecord]:
        """Many executions in one query (without block entries)."""
        if not execution_ids:
            return {}
        e = t.executions
        with self.db.read() as conn:
            rows = conn.execute(sa.select(e).where(e.c.execution_id.in_(list(execution_ids))))
            return {r.execution_id: execution_record(r, ()) for r in rows}

    @translated("list executions")
    def list_executions(self, *, workflow: str | None = None, status: str | None = None,
                        environment: str | None = None, trigger_id: str | None = None,
                        limit: int = 50) -> list[ExecutionRecord]:
        e = t.executions
        query = sa.select(e).order_by(e.c.created_at.desc(), e.c.execution_id).limit(limit)
        for column, value in ((e.c.workflow, workflow), (e.c.status, status),
                              (e.c.environment, environment), (e.c.trigger_id, trigger_id)):
            if value is not None:
                query = query.where(column == value)
        with self.db.read() as conn:
            return [execution_record(r, ()) for r in conn.execute(query)]

    @translated("start the execution")
    def start_execution(self, execution_id: str, *, dagster_run_id: str,
                        workflow_version: int | None, now: datetime) -> ExecutionRecord:
        """Mark running and count the attempt; a terminal execution is left as it is."""
        with self.db.write() as conn:
            self._start(conn, execution_id, dagster_run_id=dagster_run_id,
                        workflow_version=workflow_version, now=now)
            return self._execution(conn, execution_id)

    @translated("start the execution")
    def open_execution(self, correlation: Correlation, *, dagster_run_id: str,
                       now: datetime) -> tuple[WorkflowRecord, ExecutionRecord]:
        """Begin an attempt, in one transaction: read the workflow's current version (raises
        :class:`NotFound`, writing nothing, when it does not exist or was deleted) and mark the
        execution running with it. An execution that exists (queued by a trigger, or left
        running by an earlier attempt) counts the attempt and keeps its stored correlation; one
        that does not (a run launched by hand) is inserted running, attempt 1. A terminal
        execution is left as it is."""
        execution_id = correlation.execution_id
        with self.db.write() as conn:
            pinned = conn.execute(sa.select(t.executions.c.pinned_version).where(
                t.executions.c.execution_id == execution_id)).scalar()
            workflow = read_workflow(conn, correlation.environment, correlation.workflow,
                                     pinned)
            if workflow.deleted_at is not None:
                raise NotFound("workflow", f"{correlation.environment}/{correlation.workflow}")
            started = self._start(conn, execution_id, dagster_run_id=dagster_run_id,
                                  workflow_version=workflow.version, now=now)
            if not started and self._execution_row(conn, execution_id) is None:
                row = execution_row(correlation, now, workflow_version=workflow.version)
                row.update(status=ExecutionStatus.RUNNING.value, attempts=1,
                           dagster_run_id=dagster_run_id, started_at=now, heartbeat_at=now)
                try:
                    with conn.begin_nested():
                        conn.execute(t.executions.insert().values(row))
                except IntegrityError:  # a concurrent writer inserted it first: start that one
                    self._start(conn, execution_id, dagster_run_id=dagster_run_id,
                                workflow_version=workflow.version, now=now)
            return workflow, self._execution(conn, execution_id)

    def _start(self, conn: sa.Connection, execution_id: str, *, dagster_run_id: str,
               workflow_version: int | None, now: datetime) -> bool:
        """The conditional update to ``running`` (attempt + 1); False when no open execution
        has this id (one whose TTL has passed ends ``expired`` instead)."""
        e = t.executions
        expire_overdue(conn, e.c.execution_id == execution_id, now)
        return conn.execute(e.update().where(
            e.c.execution_id == execution_id,
            e.c.status.in_([ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value]))
            .values(status=ExecutionStatus.RUNNING.value, attempts=e.c.attempts + 1,
                    dagster_run_id=dagster_run_id, started_at=now, heartbeat_at=now,
                    workflow_version=sa.func.coalesce(workflow_version, e.c.workflow_version))
        ).rowcount == 1

    @translated("finalize the execution")
    def finish_execution(self, execution_id: str, *, status: ExecutionStatus, outcome: Outcome,
                         finalized_by: str, now: datetime, error: dict[str, Any] | None = None,
                         output: Any = None, dagster_run_id: str | None = None,
                         block: tuple[int, BlockEntry] | None = None,
                         ) -> tuple[ExecutionRecord, bool]:
        """The one terminal write: a conditional update that only a non-terminal execution
        takes. Returns the stored record and whether this call won (a second completion is a
        no-op returning the first outcome). ``dagster_run_id`` fills in the run of an execution
        that failed before it started. ``block`` (attempt, entry): the entry of the block that
        ended the execution, written in the same transaction (whether or not this call wins,
        as ``record_block`` would)."""
        e = t.executions
        with self.db.write() as conn:
            if block is not None:
                self._upsert_block(conn, execution_id, *block)
            done = conn.execute(e.update().where(
                e.c.execution_id == execution_id,
                e.c.status.in_([ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value]))
                .values(status=status.value, outcome=outcome.value, finalized_by=finalized_by,
                        finished_at=now, error=storable_json(error),
                        output=storable_json(output),
                        dagster_run_id=sa.func.coalesce(e.c.dagster_run_id, dagster_run_id)))
            return self._execution(conn, execution_id), done.rowcount == 1

    @translated("renew the execution's heartbeat")
    def heartbeat(self, execution_id: str, now: datetime) -> bool:
        """Renew a running execution's lease; False once it is no longer running."""
        e = t.executions
        with self.db.write() as conn:
            return conn.execute(e.update().where(
                e.c.execution_id == execution_id,
                e.c.status == ExecutionStatus.RUNNING.value).values(heartbeat_at=now)
            ).rowcount == 1

    @translated("read stale executions")
    def stale_executions(self, heartbeat_before: datetime,
                         limit: int = 100) -> list[ExecutionRecord]:
        """Running executions whose worker has not renewed its lease since ``heartbeat_before``
        (indexed on status and heartbeat), oldest first."""
        e = t.executions
        with self.db.read() as conn:
            rows = conn.execute(sa.select(e).where(
                e.c.status == ExecutionStatus.RUNNING.value,
                e.c.heartbeat_at < heartbeat_before).order_by(e.c.heartbeat_at).limit(limit))
            return [execution_record(r, ()) for r in rows]

    @translated("record the block")
    def record_block(self, execution_id: str, attempt: int, entry: BlockEntry) -> None:
        """Write (or overwrite) the entry of one block of one attempt."""
        with self.db.write() as conn:
            self._upsert_block(conn, execution_id, attempt, entry)

    def _upsert_block(self, conn: sa.Connection, execution_id: str, attempt: int,
                      entry: BlockEntry) -> None:
        b = t.execution_blocks
        values = dict(block_type=entry.block_type, status=entry.status,
                      started_at=entry.started_at, finished_at=entry.finished_at,
                      duration_ms=entry.duration_ms,
                      error=None if entry.error is None else storable_text(entry.error),
                      output_size=entry.output_size)
        # One statement: most entries are new (a block shows as running only when slow).
        insert = (postgresql.insert(b) if conn.dialect.name == "postgresql"
                  else sqlite.insert(b)).values(execution_id=execution_id, attempt=attempt,
                                                block_id=entry.block_id, **values)
        conn.execute(insert.on_conflict_do_update(
            index_elements=[b.c.execution_id, b.c.attempt, b.c.block_id], set_=values))


def insert_execution(conn: sa.Connection, correlation: Correlation, now: datetime, *,
                     workflow_version: int | None = None, enqueue: bool = False,
                     available_at: datetime | None = None, batch_id: str | None = None,
                     not_before: datetime | None = None, expires_at: datetime | None = None,
                     priority: int = 0, concurrency_key: str | None = None,
                     pinned_version: int | None = None,
                     held_at: datetime | None = None) -> None:
    """Insert the execution (status ``queued``) and, with ``enqueue``, its queued-trigger row
    (startable at ``available_at``, else ``not_before``, else at once), on the caller's
    connection (one transaction with whatever else the caller writes). Raises
    ``IntegrityError`` when the execution exists."""
    conn.execute(t.executions.insert().values(
        execution_row(correlation, now, workflow_version=workflow_version, batch_id=batch_id,
                      not_before=not_before, expires_at=expires_at, priority=priority,
                      concurrency_key=concurrency_key, pinned_version=pinned_version,
                      held_at=held_at)))
    if enqueue:
        conn.execute(t.queued_triggers.insert().values(
            queued_row(correlation, now, available_at=available_at or not_before,
                       priority=priority, concurrency_key=concurrency_key,
                       pinned_version=pinned_version)))


def expire_overdue(conn: sa.Connection, where: sa.ColumnElement[bool],
                   now: datetime) -> list[str]:
    """Queued executions matching ``where`` whose TTL has passed end ``expired`` (no alert) and
    leave the queue, on the caller's connection; returns their ids."""
    e, q = t.executions, t.queued_triggers
    overdue = [e.c.status == ExecutionStatus.QUEUED.value, e.c.expires_at < now]
    ids = list(conn.execute(sa.select(e.c.execution_id).where(where, *overdue)).scalars())
    if ids:
        conn.execute(e.update().where(e.c.execution_id.in_(ids), *overdue).values(
            status=ExecutionStatus.EXPIRED.value, outcome=Outcome.EXPIRED.value,
            finalized_by=FINALIZED_BY_TTL, finished_at=now, error=EXPIRED_ERROR))
        conn.execute(q.delete().where(q.c.execution_id.in_(ids)))
    return ids


def execution_row(correlation: Correlation, now: datetime, *, workflow_version: int | None = None,
                  batch_id: str | None = None, run_batch_id: str | None = None,
                  not_before: datetime | None = None, expires_at: datetime | None = None,
                  priority: int = 0, concurrency_key: str | None = None,
                  pinned_version: int | None = None, held_at: datetime | None = None,
                  backfill_id: str | None = None) -> dict[str, Any]:
    """The ``executions`` row of a new (``queued``) execution."""
    return dict(
        correlation.to_row(), workflow_version=workflow_version,
        status=ExecutionStatus.QUEUED.value, batch_id=batch_id, run_batch_id=run_batch_id,
        attempts=0, created_at=now, not_before=not_before, expires_at=expires_at,
        priority=priority, concurrency_key=concurrency_key, pinned_version=pinned_version,
        held_at=held_at, backfill_id=backfill_id)


def queued_row(correlation: Correlation, now: datetime, *,
               available_at: datetime | None = None, priority: int = 0,
               concurrency_key: str | None = None,
               pinned_version: int | None = None) -> dict[str, Any]:
    """The ``queued_triggers`` row that hands a new execution to the queued-trigger sensor."""
    return dict(execution_id=correlation.execution_id, environment=correlation.environment,
                workflow=correlation.workflow, status=TriggerStatus.QUEUED.value,
                created_at=now, available_at=available_at, priority=priority,
                concurrency_key=concurrency_key, pinned_version=pinned_version)


def execution_record(row: Any, blocks: tuple[BlockEntry, ...]) -> ExecutionRecord:
    data = row._asdict()
    data.pop("slot_at", None)  # the dispatcher's own marker (a concurrency slot granted)
    data.update(Correlation.row_values(row))
    data["status"] = ExecutionStatus(data["status"])
    data["outcome"] = Outcome(data["outcome"]) if data["outcome"] else None
    return ExecutionRecord(**data, blocks=blocks)

"""Every database operation, in domain terms.

Writes that can race (two sensor evaluations after a gRPC timeout, a retried run, the CLI beside
the daemon) are conditional: inserts that tolerate a duplicate, compare-and-set updates. A
duplicate is a normal outcome, reported in the return value.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from orchestrator.domain.correlation import Correlation, new_id
from orchestrator.domain.payloads import storable_json, storable_text
from orchestrator.domain.records import (
    AlertRecord,
    BlockEntry,
    DeliveryStatus,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    QueuedTrigger,
    ScheduleRecord,
    TriggerStatus,
    WorkflowRecord,
)
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.workflow import WorkflowSpec
from orchestrator.exceptions import NotFound, StoreError
from orchestrator.store import tables as t
from orchestrator.store.engine import READ_ONLY, engine_for

log = logging.getLogger(__name__)
P = ParamSpec("P")


@dataclass(frozen=True, kw_only=True)
class Advance:
    """One compare-and-set of a schedule's ``next_run_at`` (see :meth:`Store.advance_schedule`)."""

    schedule_id: str
    expected: datetime
    next_run_at: datetime | None
    dispatched: datetime | None = None
    superseded: int = 0
    outside_window: int = 0

R = TypeVar("R")


def _translated(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Driver exceptions become :class:`StoreError`; nothing above the store sees SQLAlchemy."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except SQLAlchemyError as exc:
                raise store_error(operation, exc) from None

        return wrapper

    return decorate


def store_error(operation: str, exc: SQLAlchemyError) -> StoreError:
    """The :class:`StoreError` for a driver exception (logged by its type, never its text)."""
    log.warning("store operation %r failed: %s", operation, type(exc).__name__)
    return StoreError(operation, transient=_transient(exc))


def _transient(exc: SQLAlchemyError) -> bool:
    """A lost or refused connection, a busy database, an exhausted pool: worth retrying. A
    constraint or SQL error is not."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout)


class Store:
    """The orchestrator store on one database URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            yield conn

    # ----------------------------------------------------------------- workflows

    @_translated("apply the workflow")
    def apply_workflow(self, spec: WorkflowSpec, now: datetime) -> tuple[WorkflowRecord, bool]:
        """Store ``spec`` as the workflow's new current version. Returns the record and whether a
        new version was written (re-applying an identical document writes nothing)."""
        with self._write() as conn:
            row = conn.execute(sa.select(t.workflows).where(
                t.workflows.c.environment == spec.environment,
                t.workflows.c.name == spec.name)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        inserted = conn.execute(t.workflows.insert().values(
                            environment=spec.environment, name=spec.name, current_version=1,
                            created_at=now, updated_at=now)).inserted_primary_key
                        assert inserted is not None
                        workflow_id = inserted[0]
                except IntegrityError:  # a concurrent apply created it; retry as an update
                    return self.apply_workflow(spec, now)
                version = 1
            else:
                current = conn.execute(sa.select(t.workflow_versions.c.digest).where(
                    t.workflow_versions.c.workflow_id == row.id,
                    t.workflow_versions.c.version == row.current_version)).scalar_one()
                if current == spec.digest and row.deleted_at is None:
                    return self._workflow(conn, spec.environment, spec.name), False
                workflow_id = row.id
                version = (conn.execute(sa.select(sa.func.max(t.workflow_versions.c.version))
                                        .where(t.workflow_versions.c.workflow_id == row.id))
                           .scalar_one() or 0) + 1
                conn.execute(t.workflows.update().where(t.workflows.c.id == row.id).values(
                    current_version=version, updated_at=now, deleted_at=None))
            conn.execute(t.workflow_versions.insert().values(
                workflow_id=workflow_id, version=version, digest=spec.digest,
                document=spec.document, created_at=now))
            return self._workflow(conn, spec.environment, spec.name), True

    @_translated("read the workflow")
    def get_workflow(self, environment: str, name: str, version: int | None = None,
                     *, include_deleted: bool = False) -> WorkflowRecord:
        with self._read() as conn:
            record = self._workflow(conn, environment, name, version)
        if record.deleted_at is not None and not include_deleted and version is None:
            raise NotFound("workflow", f"{environment}/{name}")
        return record

    def _workflow(self, conn: sa.Connection, environment: str, name: str,
                  version: int | None = None) -> WorkflowRecord:
        w, v = t.workflows, t.workflow_versions
        row = conn.execute(
            sa.select(w, v.c.version, v.c.digest, v.c.document)
            .join(v, v.c.workflow_id == w.c.id)
            .where(w.c.environment == environment, w.c.name == name,
                   v.c.version == (version if version is not None else w.c.current_version))
        ).first()
        if row is None:
            suffix = f"@v{version}" if version else ""
            raise NotFound("workflow", f"{environment}/{name}{suffix}")
        return WorkflowRecord(name=row.name, environment=row.environment, version=row.version,
                              digest=row.digest, document=row.document, created_at=row.created_at,
                              updated_at=row.updated_at, deleted_at=row.deleted_at)

    @_translated("list workflows")
    def list_workflows(self, environment: str | None = None) -> list[WorkflowRecord]:
        w, v = t.workflows, t.workflow_versions
        query = (sa.select(w, v.c.version, v.c.digest, v.c.document)
                 .join(v, (v.c.workflow_id == w.c.id) & (v.c.version == w.c.current_version))
                 .where(w.c.deleted_at.is_(None)).order_by(w.c.environment, w.c.name))
        if environment is not None:
            query = query.where(w.c.environment == environment)
        with self._read() as conn:
            return [WorkflowRecord(name=r.name, environment=r.environment, version=r.version,
                                   digest=r.digest, document=r.document, created_at=r.created_at,
                                   updated_at=r.updated_at) for r in conn.execute(query)]

    @_translated("delete the workflow")
    def delete_workflow(self, environment: str, name: str, now: datetime) -> int:
        """Soft-delete: history stays, schedules are paused. Returns schedules paused."""
        with self._write() as conn:
            done = conn.execute(t.workflows.update().where(
                t.workflows.c.environment == environment, t.workflows.c.name == name,
                t.workflows.c.deleted_at.is_(None)).values(deleted_at=now, updated_at=now))
            if done.rowcount == 0:
                raise NotFound("workflow", f"{environment}/{name}")
            paused = conn.execute(t.schedules.update().where(
                t.schedules.c.environment == environment, t.schedules.c.workflow == name,
                t.schedules.c.enabled.is_(True)).values(enabled=False, next_run_at=None,
                                                         updated_at=now))
            return paused.rowcount

    # ----------------------------------------------------------------- schedules

    @_translated("create the schedule")
    def create_schedule(self, spec: ScheduleSpec, now: datetime) -> tuple[ScheduleRecord, bool]:
        """Create a schedule (``next_run_at`` always set), or with ``spec.key`` upsert the one with
        that key. Returns the record and whether it was created."""
        self.get_workflow(spec.environment, spec.workflow)  # raises NotFound
        values = dict(environment=spec.environment, workflow=spec.workflow, cron=spec.cron,
                      timezone=spec.timezone, run_at=spec.run_at, payload=spec.payload,
                      key=spec.key, enabled=True, next_run_at=spec.first_run_at(now),
                      updated_at=now)
        with self._write() as conn:
            if spec.key is not None:
                existing = conn.execute(sa.select(t.schedules).where(
                    t.schedules.c.environment == spec.environment,
                    t.schedules.c.key == spec.key)).first()
                if existing is not None:
                    same_timing = (existing.cron == spec.cron and
                                   existing.timezone == spec.timezone and
                                   existing.run_at == spec.run_at and existing.enabled)
                    if same_timing:  # keep next_run_at: an upsert must not skip or replay
                        values.pop("next_run_at")
                    conn.execute(t.schedules.update().where(t.schedules.c.id == existing.id)
                                 .values(**values))
                    return self._schedule(conn, existing.id), False
            schedule_id = "sch_" + new_id().replace("-", "")[:20]
            try:
                with conn.begin_nested():
                    conn.execute(t.schedules.insert().values(id=schedule_id, created_at=now,
                                                             **values))
            except IntegrityError:
                if spec.key is None:
                    raise
                return self.create_schedule(spec, now)  # lost a race on the key: upsert
            return self._schedule(conn, schedule_id), True

    @_translated("read the schedule")
    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        with self._read() as conn:
            return self._schedule(conn, schedule_id)

    def _schedule(self, conn: sa.Connection, schedule_id: str) -> ScheduleRecord:
        row = conn.execute(sa.select(t.schedules).where(t.schedules.c.id == schedule_id)).first()
        if row is None:
            raise NotFound("schedule", schedule_id)
        return ScheduleRecord(**row._asdict())

    @_translated("list schedules")
    def list_schedules(self, environment: str | None = None,
                       workflow: str | None = None) -> list[ScheduleRecord]:
        query = sa.select(t.schedules).order_by(t.schedules.c.created_at, t.schedules.c.id)
        if environment is not None:
            query = query.where(t.schedules.c.environment == environment)
        if workflow is not None:
            query = query.where(t.schedules.c.workflow == workflow)
        with self._read() as conn:
            return [ScheduleRecord(**r._asdict()) for r in conn.execute(query)]

    @_translated("pause the schedule")
    def pause_schedule(self, schedule_id: str, now: datetime) -> ScheduleRecord:
        with self._write() as conn:
            self._schedule(conn, schedule_id)
            conn.execute(t.schedules.update().where(t.schedules.c.id == schedule_id)
                         .values(enabled=False, next_run_at=None, updated_at=now))
            return self._schedule(conn, schedule_id)

    @_translated("resume the schedule")
    def resume_schedule(self, schedule_id: str, next_run_at: datetime,
                        now: datetime) -> ScheduleRecord:
        """Enable with a freshly computed ``next_run_at`` (occurrences missed while paused are not
        replayed)."""
        with self._write() as conn:
            self._schedule(conn, schedule_id)
            conn.execute(t.schedules.update().where(t.schedules.c.id == schedule_id,
                                                    t.schedules.c.enabled.is_(False))
                         .values(enabled=True, next_run_at=next_run_at, updated_at=now))
            return self._schedule(conn, schedule_id)

    @_translated("delete the schedule")
    def delete_schedule(self, schedule_id: str) -> None:
        with self._write() as conn:
            if conn.execute(t.schedules.delete().where(t.schedules.c.id == schedule_id)
                            ).rowcount == 0:
                raise NotFound("schedule", schedule_id)

    @_translated("read due schedules")
    def due_schedules(self, now: datetime, limit: int, *,
                      after: tuple[datetime, str] | None = None) -> list[ScheduleRecord]:
        """Enabled schedules with ``next_run_at <= now``, oldest first; one indexed range scan.
        ``after`` continues from the last (next_run_at, id) of a previous page."""
        s = t.schedules
        query = (sa.select(s).where(s.c.next_run_at <= now, s.c.enabled.is_(True))
                 .order_by(s.c.next_run_at, s.c.id).limit(limit))
        if after is not None:
            query = query.where(sa.tuple_(s.c.next_run_at, s.c.id) >
                                sa.tuple_(sa.literal(after[0], t.UTCDateTime),
                                          sa.literal(after[1])))
        with self._read() as conn:
            return [ScheduleRecord(**r._asdict()) for r in conn.execute(query)]

    @_translated("read the next due time")
    def next_due_at(self) -> datetime | None:
        """The earliest ``next_run_at`` of an enabled schedule (one read of the index's first
        entry; disabled schedules have none)."""
        s = t.schedules
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.min(s.c.next_run_at))).scalar_one_or_none()

    @_translated("advance the schedule")
    def advance_schedule(self, schedule_id: str, *, expected: datetime,
                         next_run_at: datetime | None, now: datetime,
                         dispatched: datetime | None = None, superseded: int = 0,
                         outside_window: int = 0) -> bool:
        """Compare-and-set ``next_run_at`` from ``expected``. ``None`` disables the schedule (a
        dispatched one-time trigger). False when another evaluation already moved it."""
        return self.advance_schedules([Advance(
            schedule_id=schedule_id, expected=expected, next_run_at=next_run_at,
            dispatched=dispatched, superseded=superseded, outside_window=outside_window)],
            now) == 1

    @_translated("advance the schedules")
    def advance_schedules(self, advances: Sequence[Advance], now: datetime) -> int:
        """Many :meth:`advance_schedule` compare-and-sets in one transaction; returns how many
        took (the others were moved by another evaluation)."""
        s = t.schedules
        done = 0
        with self._write() as conn:
            for a in advances:
                values: dict[str, Any] = dict(
                    next_run_at=a.next_run_at, updated_at=now,
                    skipped_superseded=s.c.skipped_superseded + a.superseded,
                    skipped_outside_window=s.c.skipped_outside_window + a.outside_window)
                if a.next_run_at is None:
                    values["enabled"] = False
                if a.dispatched is not None:
                    values["last_scheduled_for"] = a.dispatched
                done += conn.execute(s.update().where(
                    s.c.id == a.schedule_id, s.c.enabled.is_(True),
                    s.c.next_run_at == a.expected).values(**values)).rowcount
        return done

    @_translated("read schedules")
    def schedules_by_id(self, schedule_ids: Sequence[str]) -> dict[str, ScheduleRecord]:
        if not schedule_ids:
            return {}
        s = t.schedules
        with self._read() as conn:
            return {r.id: ScheduleRecord(**r._asdict()) for r in conn.execute(
                sa.select(s).where(s.c.id.in_(list(schedule_ids))))}

    # ----------------------------------------------------------------- executions

    @_translated("record the execution")
    def create_execution(self, correlation: Correlation, now: datetime, *,
                         workflow_version: int | None = None,
                         enqueue: bool = False) -> tuple[ExecutionRecord, bool]:
        """Insert the execution (status ``queued``) unless it exists; with ``enqueue`` also its
        queued-trigger row, in the same transaction. Returns the stored record (the first
        writer's correlation wins) and whether this call created it."""
        with self._write() as conn:
            created = False
            if self._execution_row(conn, correlation.execution_id) is None:
                try:
                    with conn.begin_nested():
                        insert_execution(conn, correlation, now,
                                         workflow_version=workflow_version, enqueue=enqueue)
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
        return _execution_record(row, blocks)

    @_translated("read the execution")
    def get_execution(self, execution_id: str) -> ExecutionRecord:
        with self._read() as conn:
            return self._execution(conn, execution_id, with_blocks=True)

    @_translated("read executions")
    def executions_by_id(self, execution_ids: Sequence[str]) -> dict[str, ExecutionRecord]:
        """Many executions in one query (without block entries)."""
        if not execution_ids:
            return {}
        e = t.executions
        with self._read() as conn:
            rows = conn.execute(sa.select(e).where(e.c.execution_id.in_(list(execution_ids))))
            return {r.execution_id: _execution_record(r, ()) for r in rows}

    @_translated("list executions")
    def list_executions(self, *, workflow: str | None = None, status: str | None = None,
                        environment: str | None = None, trigger_id: str | None = None,
                        limit: int = 50) -> list[ExecutionRecord]:
        e = t.executions
        query = sa.select(e).order_by(e.c.created_at.desc(), e.c.execution_id).limit(limit)
        for column, value in ((e.c.workflow, workflow), (e.c.status, status),
                              (e.c.environment, environment), (e.c.trigger_id, trigger_id)):
            if value is not None:
                query = query.where(column == value)
        with self._read() as conn:
            return [_execution_record(r, ()) for r in conn.execute(query)]

    @_translated("start the execution")
    def start_execution(self, execution_id: str, *, dagster_run_id: str,
                        workflow_version: int | None, now: datetime) -> ExecutionRecord:
        """Mark running and count the attempt; a terminal execution is left as it is."""
        with self._write() as conn:
            self._start(conn, execution_id, dagster_run_id=dagster_run_id,
                        workflow_version=workflow_version, now=now)
            return self._execution(conn, execution_id)

    @_translated("start the execution")
    def open_execution(self, correlation: Correlation, *, dagster_run_id: str,
                       now: datetime) -> tuple[WorkflowRecord, ExecutionRecord]:
        """Begin an attempt, in one transaction: read the workflow's current version (raises
        :class:`NotFound`, writing nothing, when it does not exist or was deleted) and mark the
        execution running with it. An execution that exists (queued by a trigger, or left
        running by an earlier attempt) counts the attempt and keeps its stored correlation; one
        that does not (a run launched by hand) is inserted running, attempt 1. A terminal
        execution is left as it is."""
        execution_id = correlation.execution_id
        with self._write() as conn:
            workflow = self._workflow(conn, correlation.environment, correlation.workflow)
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
        has this id."""
        e = t.executions
        return conn.execute(e.update().where(
            e.c.execution_id == execution_id,
            e.c.status.in_([ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value]))
            .values(status=ExecutionStatus.RUNNING.value, attempts=e.c.attempts + 1,
                    dagster_run_id=dagster_run_id, started_at=now, heartbeat_at=now,
                    workflow_version=sa.func.coalesce(workflow_version, e.c.workflow_version))
        ).rowcount == 1

    @_translated("finalize the execution")
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
        with self._write() as conn:
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

    @_translated("renew the execution's heartbeat")
    def heartbeat(self, execution_id: str, now: datetime) -> bool:
        """Renew a running execution's lease; False once it is no longer running."""
        e = t.executions
        with self._write() as conn:
            return conn.execute(e.update().where(
                e.c.execution_id == execution_id,
                e.c.status == ExecutionStatus.RUNNING.value).values(heartbeat_at=now)
            ).rowcount == 1

    @_translated("read stale executions")
    def stale_executions(self, heartbeat_before: datetime,
                         limit: int = 100) -> list[ExecutionRecord]:
        """Running executions whose worker has not renewed its lease since ``heartbeat_before``
        (indexed on status and heartbeat), oldest first."""
        e = t.executions
        with self._read() as conn:
            rows = conn.execute(sa.select(e).where(
                e.c.status == ExecutionStatus.RUNNING.value,
                e.c.heartbeat_at < heartbeat_before).order_by(e.c.heartbeat_at).limit(limit))
            return [_execution_record(r, ()) for r in rows]

    @_translated("record the block")
    def record_block(self, execution_id: str, attempt: int, entry: BlockEntry) -> None:
        """Write (or overwrite) the entry of one block of one attempt."""
        with self._write() as conn:
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

    # ----------------------------------------------------------------- queued triggers

    @_translated("read queued triggers")
    def queued_triggers(self, limit: int) -> list[QueuedTrigger]:
        q = t.queued_triggers
        with self._read() as conn:
            rows = conn.execute(sa.select(q).where(q.c.status == TriggerStatus.QUEUED.value)
                                .order_by(q.c.created_at, q.c.execution_id).limit(limit))
            return [QueuedTrigger(**{**r._asdict(), "status": TriggerStatus(r.status)})
                    for r in rows]

    @_translated("mark triggers dispatched")
    def mark_dispatched(self, execution_ids: Sequence[str], now: datetime) -> int:
        if not execution_ids:
            return 0
        q = t.queued_triggers
        with self._write() as conn:
            return conn.execute(q.update().where(
                q.c.execution_id.in_(list(execution_ids)),
                q.c.status == TriggerStatus.QUEUED.value)
                .values(status=TriggerStatus.DISPATCHED.value, dispatched_at=now)).rowcount

    # ----------------------------------------------------------------- alerts

    @_translated("record the alert")
    def record_alert(self, *, execution_id: str | None, kind: str, message: str,
                     details: dict[str, Any], environment: str | None, workflow: str | None,
                     now: datetime, deliver: bool, incident: str | None = None,
                     executions: Sequence[str] = ()) -> tuple[AlertRecord, bool]:
        """Insert the alert unless this execution already has one of this kind, or this
        ``incident`` one (the hook and the reconciler may both try). ``executions``: every
        execution an incident affected (findable from each). Returns the stored alert and
        whether this call created it."""
        a = t.alerts
        with self._write() as conn:
            created = False
            try:
                with conn.begin_nested():
                    inserted = conn.execute(a.insert().values(
                        execution_id=execution_id, kind=kind, message=storable_text(message),
                        details=storable_json(details),
                        environment=environment, workflow=workflow, created_at=now,
                        delivery_status=(DeliveryStatus.PENDING if deliver
                                         else DeliveryStatus.NONE).value,
                        delivery_attempts=0, next_delivery_at=now if deliver else None,
                        incident=incident))
                    alert_id = inserted.inserted_primary_key[0]  # type: ignore[index]
                    if executions:
                        conn.execute(t.alert_executions.insert(), [
                            {"alert_id": alert_id, "execution_id": e} for e in executions])
                created = True
            except IntegrityError:
                same = (a.c.incident == incident if incident is not None else
                        (a.c.execution_id == execution_id) & (a.c.kind == kind))
                alert_id = conn.execute(sa.select(a.c.id).where(same)).scalar_one()
            row = conn.execute(sa.select(a).where(a.c.id == alert_id)).one()
            return _alert_record(row), created

    @_translated("list alerts")
    def list_alerts(self, *, environment: str | None = None, execution_id: str | None = None,
                    limit: int = 50) -> list[AlertRecord]:
        a = t.alerts
        query = sa.select(a).order_by(a.c.created_at.desc(), a.c.id.desc()).limit(limit)
        if environment is not None:
            query = query.where(a.c.environment == environment)
        if execution_id is not None:  # its own alerts and the incidents that name it
            query = query.where((a.c.execution_id == execution_id) | a.c.id.in_(
                sa.select(t.alert_executions.c.alert_id)
                .where(t.alert_executions.c.execution_id == execution_id)))
        with self._read() as conn:
            return [_alert_record(r) for r in conn.execute(query)]

    @_translated("read alerts to deliver")
    def alerts_to_deliver(self, now: datetime, limit: int = 20) -> list[AlertRecord]:
        a = t.alerts
        with self._read() as conn:
            rows = conn.execute(sa.select(a).where(
                a.c.delivery_status == DeliveryStatus.PENDING.value,
                a.c.next_delivery_at <= now).order_by(a.c.next_delivery_at).limit(limit))
            return [_alert_record(r) for r in rows]

    @_translated("claim the alert delivery")
    def claim_alert_delivery(self, alert_id: int, *, now: datetime, lease_until: datetime) -> bool:
        """Take the right to POST this alert now (compare-and-set on ``next_delivery_at``), so
        the hook and the reconciler never deliver one alert twice at once."""
        a = t.alerts
        with self._write() as conn:
            return conn.execute(a.update().where(
                a.c.id == alert_id, a.c.delivery_status == DeliveryStatus.PENDING.value,
                a.c.next_delivery_at <= now).values(next_delivery_at=lease_until)).rowcount == 1

    @_translated("record the alert delivery")
    def record_alert_delivery(self, alert_id: int, *, now: datetime, error: str | None,
                              retry_at: datetime | None) -> None:
        """After one POST: delivered (``error`` None), to retry at ``retry_at``, or given up
        (``retry_at`` None)."""
        a = t.alerts
        if error is None:
            values: dict[str, Any] = dict(delivery_status=DeliveryStatus.DELIVERED.value,
                                          delivered_at=now, next_delivery_at=None,
                                          last_delivery_error=None)
        else:
            values = dict(delivery_status=(DeliveryStatus.PENDING if retry_at
                                           else DeliveryStatus.FAILED).value,
                          next_delivery_at=retry_at, last_delivery_error=error[:500])
        with self._write() as conn:
            conn.execute(a.update().where(a.c.id == alert_id).values(
                delivery_attempts=a.c.delivery_attempts + 1, **values))


def _alert_record(row: Any) -> AlertRecord:
    data = row._asdict()
    data["delivery_status"] = DeliveryStatus(data["delivery_status"])
    return AlertRecord(**data)


def insert_execution(conn: sa.Connection, correlation: Correlation, now: datetime, *,
                     workflow_version: int | None = None, enqueue: bool = False,
                     available_at: datetime | None = None, batch_id: str | None = None) -> None:
    """Insert the execution (status ``queued``) and, with ``enqueue``, its queued-trigger row, on
    the caller's connection (one transaction with whatever else the caller writes). Raises
    ``IntegrityError`` when the execution exists."""
    conn.execute(t.executions.insert().values(
        execution_row(correlation, now, workflow_version=workflow_version, batch_id=batch_id)))
    if enqueue:
        conn.execute(t.queued_triggers.insert().values(
            queued_row(correlation, now, available_at=available_at)))


def execution_row(correlation: Correlation, now: datetime, *, workflow_version: int | None = None,
                  batch_id: str | None = None, run_batch_id: str | None = None) -> dict[str, Any]:
    """The ``executions`` row of a new (``queued``) execution."""
    return dict(
        correlation.to_row(), workflow_version=workflow_version,
        status=ExecutionStatus.QUEUED.value, batch_id=batch_id, run_batch_id=run_batch_id,
        attempts=0, created_at=now)


def queued_row(correlation: Correlation, now: datetime, *,
               available_at: datetime | None = None) -> dict[str, Any]:
    """The ``queued_triggers`` row that hands a new execution to the queued-trigger sensor."""
    return dict(execution_id=correlation.execution_id, environment=correlation.environment,
                workflow=correlation.workflow, status=TriggerStatus.QUEUED.value,
                created_at=now, available_at=available_at)


def _execution_record(row: Any, blocks: tuple[BlockEntry, ...]) -> ExecutionRecord:
    data = row._asdict()
    data.update(Correlation.row_values(row))
    data["status"] = ExecutionStatus(data["status"])
    data["outcome"] = Outcome(data["outcome"]) if data["outcome"] else None
    return ExecutionRecord(**data, blocks=blocks)

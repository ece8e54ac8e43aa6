"""Schedules in the SQL store: cron or one-time, ``next_run_at`` stored and indexed, advanced by
compare-and-set (start before advance: a crash can at most repeat a dispatch)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orchestrator.domain.correlation import new_id
from orchestrator.domain.records import ExecutionStatus, Outcome, ScheduleRecord
from orchestrator.domain.schedules import FINALIZED_BY_PAUSE, PAUSED_ERROR, ScheduleSpec
from orchestrator.exceptions import NotFound
from orchestrator.store import tables as t
from orchestrator.store.interfaces import Advance, WorkflowRepository, schedule_controls
from orchestrator.store.uow import Database, translated


class SqlSchedules:
    """The schedules repository on one :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database, workflows: WorkflowRepository) -> None:
        self.db = db
        self.workflows = workflows  # a schedule names a workflow that must exist

    @translated("create the schedule")
    def create_schedule(self, spec: ScheduleSpec, now: datetime) -> tuple[ScheduleRecord, bool]:
        """Create a schedule (``next_run_at`` always set), or with ``spec.key`` upsert the one with
        that key. Returns the record and whether it was created."""
        self.workflows.get_workflow(spec.environment, spec.workflow)  # raises NotFound
        values = dict(environment=spec.environment, workflow=spec.workflow, cron=spec.cron,
                      timezone=spec.timezone, run_at=spec.run_at, payload=spec.payload,
                      key=spec.key, enabled=True, next_run_at=spec.first_run_at(now),
                      updated_at=now, **schedule_controls(spec))
        with self.db.write() as conn:
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

    @translated("read the schedule")
    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        with self.db.read() as conn:
            return self._schedule(conn, schedule_id)

    def _schedule(self, conn: sa.Connection, schedule_id: str) -> ScheduleRecord:
        row = conn.execute(sa.select(t.schedules).where(t.schedules.c.id == schedule_id)).first()
        if row is None:
            raise NotFound("schedule", schedule_id)
        return ScheduleRecord(**row._asdict())

    @translated("list schedules")
    def list_schedules(self, environment: str | None = None,
                       workflow: str | None = None) -> list[ScheduleRecord]:
        query = sa.select(t.schedules).order_by(t.schedules.c.created_at, t.schedules.c.id)
        if environment is not None:
            query = query.where(t.schedules.c.environment == environment)
        if workflow is not None:
            query = query.where(t.schedules.c.workflow == workflow)
        with self.db.read() as conn:
            return [ScheduleRecord(**r._asdict()) for r in conn.execute(query)]

    @translated("pause the schedule")
    def pause_schedule(self, schedule_id: str, now: datetime) -> ScheduleRecord:
        e, q = t.executions, t.queued_triggers
        with self.db.write() as conn:
            self._schedule(conn, schedule_id)
            conn.execute(t.schedules.update().where(t.schedules.c.id == schedule_id)
                         .values(enabled=False, next_run_at=None, updated_at=now))
            waiting = sa.select(e.c.execution_id).where(
                e.c.status == ExecutionStatus.QUEUED.value, e.c.trigger_id == schedule_id)
            ids = list(conn.execute(waiting).scalars())
            if ids:
                conn.execute(q.delete().where(q.c.execution_id.in_(ids)))
                conn.execute(e.update().where(
                    e.c.execution_id.in_(ids), e.c.status == ExecutionStatus.QUEUED.value)
                    .values(status=ExecutionStatus.CANCELLED.value,
                            outcome=Outcome.CANCELLED.value, finalized_by=FINALIZED_BY_PAUSE,
                            finished_at=now, error=PAUSED_ERROR))
            return self._schedule(conn, schedule_id)

    @translated("resume the schedule")
    def resume_schedule(self, schedule_id: str, next_run_at: datetime,
                        now: datetime) -> ScheduleRecord:
        """Enable with a freshly computed ``next_run_at`` (occurrences missed while paused are not
        replayed)."""
        with self.db.write() as conn:
            self._schedule(conn, schedule_id)
            conn.execute(t.schedules.update().where(t.schedules.c.id == schedule_id,
                                                    t.schedules.c.enabled.is_(False))
                         .values(enabled=True, next_run_at=next_run_at, updated_at=now))
            return self._schedule(conn, schedule_id)

    @translated("delete the schedule")
    def delete_schedule(self, schedule_id: str) -> None:
        with self.db.write() as conn:
            if conn.execute(t.schedules.delete().where(t.schedules.c.id == schedule_id)
                            ).rowcount == 0:
                raise NotFound("schedule", schedule_id)

    @translated("read due schedules")
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
        with self.db.read() as conn:
            return [ScheduleRecord(**r._asdict()) for r in conn.execute(query)]

    @translated("read the next due time")
    def next_due_at(self) -> datetime | None:
        """The earliest ``next_run_at`` of an enabled schedule (one read of the index's first
        entry; disabled schedules have none)."""
        s = t.schedules
        with self.db.read() as conn:
            return conn.execute(sa.select(sa.func.min(s.c.next_run_at))).scalar_one_or_none()

    @translated("advance the schedule")
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

    @translated("advance the schedules")
    def advance_schedules(self, advances: Sequence[Advance], now: datetime) -> int:
        """Many :meth:`advance_schedule` compare-and-sets in one transaction; returns how many
        took (the others were moved by another evaluation)."""
        with self.db.write() as conn:
            return sum(apply_advance(conn, a, now) for a in advances)

    @translated("read schedules")
    def schedules_by_id(self, schedule_ids: Sequence[str]) -> dict[str, ScheduleRecord]:
        if not schedule_ids:
            return {}
        s = t.schedules
        with self.db.read() as conn:
            return {r.id: ScheduleRecord(**r._asdict()) for r in conn.execute(
                sa.select(s).where(s.c.id.in_(list(schedule_ids))))}


def apply_advance(conn: sa.Connection, a: Advance, now: datetime) -> int:
    """One :class:`Advance` compare-and-set on the caller's connection (its transaction);
    1 when it took, 0 when another evaluation already moved the schedule."""
    s = t.schedules
    values: dict[str, Any] = dict(
        next_run_at=a.next_run_at, updated_at=now,
        skipped_superseded=s.c.skipped_superseded + a.superseded,
        skipped_outside_window=s.c.skipped_outside_window + a.outside_window,
        skipped_overlap=s.c.skipped_overlap + a.skipped_overlap,
        buffered_overlap=s.c.buffered_overlap + a.buffered_overlap)
    if a.next_run_at is None:
        values["enabled"] = False
    if a.dispatched is not None:
        values["last_scheduled_for"] = a.dispatched
    return conn.execute(s.update().where(
        s.c.id == a.schedule_id, s.c.enabled.is_(True),
        s.c.next_run_at == a.expected).values(**values)).rowcount

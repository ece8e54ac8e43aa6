"""Schedule occurrences beyond the tick's own dispatch, on SQL: those held by an overlap policy
(``held_at`` set, no queue row) and backfills (bulk inserts through the queue).

A held execution joins the queue only when nothing else of its schedule is running or queued
(not held): the release clears ``held_at`` and inserts the queue row in one transaction, so a
held occurrence is never lost and never started twice. A backfill's executions are inserted in
bulk with the ids of their occurrences (insert-or-skip on the primary key: one execution per
occurrence, ever) and their queue rows with one ``INSERT ... SELECT``; the queued-trigger
sensor then starts them like any burst: batched, round robin across environments, by priority.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from orchestrator.domain.backfills import BackfillSpec
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.records import (
    BackfillRecord,
    ExecutionStatus,
    ScheduleRecord,
    TriggerStatus,
)
from orchestrator.domain.schedules import plan_overlap
from orchestrator.exceptions import NotFound
from orchestrator.store import tables as t
from orchestrator.store.executions import execution_row, insert_execution
from orchestrator.store.interfaces import Advance, OverlapState
from orchestrator.store.schedules import apply_advance
from orchestrator.store.uow import Database, translated

CHUNK = 500  # ids per IN (...) and rows per insert statement
QUEUED, RUNNING = ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value


def new_backfill_id() -> str:
    return "bf_" + new_id().replace("-", "")[:24]


def backfill_correlations(schedule: ScheduleRecord,
                          occurrences: Sequence[datetime]) -> list[Correlation]:
    """The correlation of each backfilled occurrence (the ids the schedule's own dispatch
    would give it)."""
    return [Correlation.for_schedule(schedule_id=schedule.id, scheduled_for=o,
                                     workflow=schedule.workflow,
                                     environment=schedule.environment,
                                     payload=schedule.payload, source=Source.BACKFILL)
            for o in occurrences]


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


class SqlOccurrences:
    """The occurrences repository on one :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @translated("read the schedule's open executions")
    def overlap_state(self, schedule_id: str, *, exclude: str | None = None) -> OverlapState:
        with self.db.read() as conn:
            return _overlap_state(conn, schedule_id, exclude)

    @translated("hold the occurrence")
    def hold(self, correlation: Correlation, now: datetime, *, priority: int = 0) -> bool:
        with self.db.write() as conn:
            try:
                with conn.begin_nested():
                    insert_execution(conn, correlation, now, priority=priority, held_at=now)
            except IntegrityError:
                return False  # an earlier evaluation held (or started) it
            return True

    @translated("queue the occurrence")
    def enqueue(self, correlation: Correlation, now: datetime, advance: Advance, *,
                priority: int = 0) -> bool:
        with self.db.write() as conn:
            try:
                with conn.begin_nested():
                    insert_execution(conn, correlation, now, priority=priority, enqueue=True)
            except IntegrityError:
                return False  # dispatched (or held) by an earlier evaluation
            apply_advance(conn, advance, now)
            return True

    @translated("release held occurrences")
    def release_held(self, now: datetime, limit: int) -> list[str]:
        e, q = t.executions, t.queued_triggers
        held = (e.c.held_at.is_not(None)) & (e.c.status == QUEUED)
        with self.db.read() as conn:  # every tick: no write transaction unless one is held
            waiting = list(conn.execute(sa.select(e.c.trigger_id).where(held).distinct()
                                        .limit(limit * 4)).scalars())
        if not waiting:
            return []
        released: list[str] = []
        with self.db.write() as conn:
            blocked = set(conn.execute(sa.select(e.c.trigger_id).distinct().where(
                e.c.trigger_id.in_(waiting),
                (e.c.status == RUNNING) | ((e.c.status == QUEUED) & e.c.held_at.is_(None))
            )).scalars())
            for schedule_id in [s for s in waiting if s not in blocked][:limit]:
                row = conn.execute(sa.select(e).where(held, e.c.trigger_id == schedule_id)
                                   .order_by(e.c.scheduled_for, e.c.execution_id)
                                   .limit(1)).first()
                if row is None or conn.execute(e.update().where(
                        e.c.execution_id == row.execution_id, held)
                        .values(held_at=None)).rowcount != 1:
                    continue
                conn.execute(q.insert().values(
                    execution_id=row.execution_id, environment=row.environment,
                    workflow=row.workflow, status=TriggerStatus.QUEUED.value, created_at=now,
                    available_at=row.not_before, priority=row.priority))
                released.append(row.execution_id)
        return released

    @translated("create the backfill")
    def create_backfill(self, schedule: ScheduleRecord, spec: BackfillSpec,
                        now: datetime) -> tuple[BackfillRecord, tuple[str, ...]]:
        e, q = t.executions, t.queued_triggers
        backfill_id = new_backfill_id()
        correlations = backfill_correlations(schedule, spec.occurrences)
        with self.db.write() as conn:
            existing: set[str] = set()
            for chunk in _chunks([c.execution_id for c in correlations]):
                existing.update(conn.execute(sa.select(e.c.execution_id).where(
                    e.c.execution_id.in_(list(chunk)))).scalars())
            new = [c for c in correlations if c.execution_id not in existing]
            state = _overlap_state(conn, schedule.id, None)
            plan = plan_overlap(spec.overlap, len(new), open_=len(state.open),
                                waiting=state.waiting)
            held, start = set(plan.hold), set(plan.start)
            rows = [execution_row(c, now, priority=schedule.priority, backfill_id=backfill_id,
                                  held_at=now if i in held else None)
                    for i, c in enumerate(new) if i in held or i in start]
            insert = (postgresql.insert(e) if conn.dialect.name == "postgresql"
                      else sqlite.insert(e)).on_conflict_do_nothing(index_elements=["execution_id"])
            for chunk in _chunks(rows):
                conn.execute(insert, list(chunk))
            started = sa.select(e.c.execution_id, e.c.environment, e.c.workflow,
                                sa.literal(TriggerStatus.QUEUED.value), sa.literal(now,
                                                                                   t.UTCDateTime),
                                e.c.priority).where(e.c.backfill_id == backfill_id,
                                                    e.c.held_at.is_(None))
            conn.execute(q.insert().from_select(
                ["execution_id", "environment", "workflow", "status", "created_at", "priority"],
                started))
            created = conn.execute(sa.select(sa.func.count()).select_from(e).where(
                e.c.backfill_id == backfill_id)).scalar_one()
            values = dict(id=backfill_id, schedule_id=schedule.id,
                          environment=schedule.environment, start=spec.start, end=spec.end,
                          overlap=spec.overlap.value, occurrences=len(correlations),
                          created=created, existing=len(correlations) - plan.skipped - created,
                          skipped=plan.skipped, created_at=now)
            conn.execute(t.backfills.insert().values(values))
            return _backfill(conn, values), state.open if plan.cancel_open else ()

    @translated("read the backfill")
    def get_backfill(self, backfill_id: str) -> BackfillRecord:
        b = t.backfills
        with self.db.read() as conn:
            row = conn.execute(sa.select(b).where(b.c.id == backfill_id)).first()
            if row is None:
                raise NotFound("backfill", backfill_id)
            return _backfill(conn, row._asdict())

    @translated("list backfills")
    def list_backfills(self, schedule_id: str, limit: int = 50) -> list[BackfillRecord]:
        b = t.backfills
        with self.db.read() as conn:
            rows = conn.execute(sa.select(b).where(b.c.schedule_id == schedule_id)
                                .order_by(b.c.created_at.desc(), b.c.id).limit(limit)).all()
            return [_backfill(conn, r._asdict()) for r in rows]


def _overlap_state(conn: sa.Connection, schedule_id: str, exclude: str | None) -> OverlapState:
    e = t.executions
    query = sa.select(e.c.execution_id, e.c.status, e.c.held_at).where(
        e.c.trigger_id == schedule_id, e.c.status.in_([QUEUED, RUNNING]))
    if exclude is not None:
        query = query.where(e.c.execution_id != exclude)
    rows = conn.execute(query.order_by(e.c.created_at, e.c.execution_id)).all()
    return OverlapState(open=tuple(r.execution_id for r in rows),
                        waiting=sum(1 for r in rows if r.held_at is not None))


def _backfill(conn: sa.Connection, values: dict[str, Any]) -> BackfillRecord:
    e = t.executions
    statuses = {status: n for status, n in conn.execute(
        sa.select(e.c.status, sa.func.count()).where(e.c.backfill_id == values["id"])
        .group_by(e.c.status))}
    return BackfillRecord(**values, statuses=dict(sorted(statuses.items())))

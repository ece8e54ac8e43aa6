"""Held occurrences and backfills in memory (the SQL twin: ``occurrences.py``)."""

from __future__ import annotations

from datetime import datetime

from orchestrator.domain.backfills import BackfillSpec
from orchestrator.domain.correlation import Correlation
from orchestrator.domain.records import (
    BackfillRecord,
    ExecutionStatus,
    ScheduleRecord,
    TriggerStatus,
)
from orchestrator.domain.schedules import plan_overlap
from orchestrator.exceptions import NotFound
from orchestrator.store.interfaces import Advance, OverlapState
from orchestrator.store.memory.catalog import apply_advance
from orchestrator.store.memory.executions import execution_row, insert_execution
from orchestrator.store.memory.state import Duplicate, MemoryState, Row, refused_as
from orchestrator.store.occurrences import backfill_correlations, new_backfill_id

QUEUED, RUNNING = ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value


def _held(row: Row) -> bool:
    return row["held_at"] is not None and row["status"] == QUEUED


class MemoryOccurrences:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def overlap_state(self, schedule_id: str, *, exclude: str | None = None) -> OverlapState:
        with self.state.lock:
            return _overlap_state(self.state, schedule_id, exclude)

    @refused_as("hold the occurrence")
    def hold(self, correlation: Correlation, now: datetime, *, priority: int = 0) -> bool:
        with self.state.transaction() as s:
            try:
                insert_execution(s, correlation, now, priority=priority, held_at=now)
            except Duplicate:
                return False
            return True

    @refused_as("queue the occurrence")
    def enqueue(self, correlation: Correlation, now: datetime, advance: Advance, *,
                priority: int = 0) -> bool:
        with self.state.transaction() as s:
            try:
                insert_execution(s, correlation, now, priority=priority, enqueue=True)
            except Duplicate:
                return False
            apply_advance(s, advance, now)
            return True

    @refused_as("release held occurrences")
    def release_held(self, now: datetime, limit: int) -> list[str]:
        released: list[str] = []
        with self.state.transaction() as s:
            rows = list(s.table("executions").values())
            blocked = {r["trigger_id"] for r in rows if r["status"] == RUNNING
                       or (r["status"] == QUEUED and r["held_at"] is None)}
            oldest: dict[str, Row] = {}
            for row in sorted((r for r in rows if _held(r)),
                              key=lambda r: (r["scheduled_for"], r["execution_id"])):
                oldest.setdefault(row["trigger_id"], row)
            for schedule_id, row in list(oldest.items()):
                if schedule_id in blocked or len(released) == limit:
                    continue
                s.update("executions", row["execution_id"], held_at=None)
                s.insert("queued", row["execution_id"], dict(
                    execution_id=row["execution_id"], environment=row["environment"],
                    workflow=row["workflow"], status=TriggerStatus.QUEUED.value,
                    created_at=now, dispatched_at=None, available_at=row["not_before"],
                    run_batch_id=None, priority=row["priority"]))
                released.append(row["execution_id"])
        return released

    @refused_as("create the backfill")
    def create_backfill(self, schedule: ScheduleRecord, spec: BackfillSpec,
                        now: datetime) -> tuple[BackfillRecord, tuple[str, ...]]:
        backfill_id = new_backfill_id()
        correlations = backfill_correlations(schedule, spec.occurrences)
        with self.state.transaction() as s:
            executions = s.table("executions")
            new = [c for c in correlations if c.execution_id not in executions]
            state = _overlap_state(s, schedule.id, None)
            plan = plan_overlap(spec.overlap, len(new), open_=len(state.open),
                                waiting=state.waiting)
            held, start = set(plan.hold), set(plan.start)
            for i, c in enumerate(new):
                if i in held or i in start:
                    s.insert("executions", c.execution_id, execution_row(
                        c, now, priority=schedule.priority, backfill_id=backfill_id,
                        held_at=now if i in held else None))
                if i in start:
                    s.insert("queued", c.execution_id, dict(
                        execution_id=c.execution_id, environment=c.environment,
                        workflow=c.workflow, status=TriggerStatus.QUEUED.value,
                        created_at=now, dispatched_at=None, available_at=None,
                        run_batch_id=None, priority=schedule.priority))
            created = len(held) + len(start)
            values = dict(id=backfill_id, schedule_id=schedule.id,
                          environment=schedule.environment, start=spec.start, end=spec.end,
                          overlap=spec.overlap.value, occurrences=len(correlations),
                          created=created, existing=len(correlations) - plan.skipped - created,
                          skipped=plan.skipped, created_at=now)
            s.insert("backfills", backfill_id, values)
            return _backfill(s, values), state.open if plan.cancel_open else ()

    def get_backfill(self, backfill_id: str) -> BackfillRecord:
        with self.state.lock:
            row = self.state.table("backfills").get(backfill_id)
            if row is None:
                raise NotFound("backfill", backfill_id)
            return _backfill(self.state, row)

    def list_backfills(self, schedule_id: str, limit: int = 50) -> list[BackfillRecord]:
        with self.state.lock:
            rows = sorted((r for r in self.state.table("backfills").values()
                           if r["schedule_id"] == schedule_id), key=lambda r: r["id"])
            rows.sort(key=lambda r: r["created_at"], reverse=True)
            return [_backfill(self.state, r) for r in rows[:limit]]


def _overlap_state(state: MemoryState, schedule_id: str, exclude: str | None) -> OverlapState:
    rows = sorted((r for r in state.table("executions").values()
                   if r["trigger_id"] == schedule_id and r["status"] in (QUEUED, RUNNING)
                   and r["execution_id"] != exclude),
                  key=lambda r: (r["created_at"], r["execution_id"]))
    return OverlapState(open=tuple(r["execution_id"] for r in rows),
                        waiting=sum(1 for r in rows if r["held_at"] is not None))


def _backfill(state: MemoryState, values: Row) -> BackfillRecord:
    statuses: dict[str, int] = {}
    for row in state.table("executions").values():
        if row["backfill_id"] == values["id"]:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return BackfillRecord(**values, statuses=dict(sorted(statuses.items())))

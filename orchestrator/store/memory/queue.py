"""The queue, the burst buffer and batch runs in memory (the SQL twins: ``fairness.py``,
``batches.py``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.records import (
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    QueuedTrigger,
    TriggerStatus,
    WorkflowRecord,
)
from orchestrator.store.batches import new_batch_id
from orchestrator.store.interfaces import (
    BUFFER_STUCK_KIND,
    KIND_QUEUE,
    KIND_SCHEDULE,
    BatchOpening,
    BufferedTrigger,
    RunBatch,
)
from orchestrator.store.memory.catalog import read_workflow
from orchestrator.store.memory.executions import (
    OPEN,
    execution_record,
    execution_row,
    expire_overdue,
    insert_execution,
)
from orchestrator.store.memory.state import Duplicate, MemoryState, Row, refused_as


def round_robin(rows: list[Row], limit: int, block: int = 1) -> list[Row]:
    """At most ``limit`` rows interleaved by environment in blocks of ``block`` (every
    environment's ``block`` first: highest priority, then oldest; the environment waiting
    longest first, ...)."""
    by_env: dict[str, list[Row]] = {}
    for row in sorted(rows, key=lambda r: (-r["priority"], r["created_at"], r["execution_id"])):
        by_env.setdefault(row["environment"], []).append(row)
    heads = {env: min(r["created_at"] for r in env_rows) for env, env_rows in by_env.items()}
    ranked = [((rank // block), heads[env], env, rank, row)
              for env, env_rows in by_env.items()
              for rank, row in enumerate(env_rows[:limit])]
    ranked.sort(key=lambda x: x[:4])
    return [x[4] for x in ranked[:limit]]


def _queued(row: Row) -> QueuedTrigger:
    return QueuedTrigger(**{**row, "status": TriggerStatus(row["status"])})


def _startable(row: Row, now: datetime) -> bool:
    return row["status"] == TriggerStatus.QUEUED.value and (
        row["available_at"] is None or row["available_at"] <= now)


def buffered_correlation(row: Row) -> Correlation:
    """The correlation a burst-buffer row carries (assigned at ingestion)."""
    return Correlation.from_row(SimpleNamespace(**row))


class MemoryQueue:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def queued_triggers(self, limit: int) -> list[QueuedTrigger]:
        with self.state.lock:
            rows = [r for r in self.state.table("queued").values()
                    if r["status"] == TriggerStatus.QUEUED.value]
        rows.sort(key=lambda r: (r["created_at"], r["execution_id"]))
        return [_queued(r) for r in rows[:limit]]

    def mark_dispatched(self, execution_ids: Sequence[str], now: datetime) -> int:
        done = 0
        with self.state.transaction() as s:
            for execution_id in set(execution_ids):
                row = s.table("queued").get(execution_id)
                if row is not None and row["status"] == TriggerStatus.QUEUED.value:
                    s.update("queued", execution_id, status=TriggerStatus.DISPATCHED.value,
                             dispatched_at=now)
                    done += 1
        return done

    def queued(self, now: datetime, limit: int, block: int = 1) -> list[QueuedTrigger]:
        with self.state.lock:
            rows = [r for r in self.state.table("queued").values()
                    if _startable(r, now) and r["run_batch_id"] is None]
        return [_queued(r) for r in round_robin(rows, limit, block)]

    @refused_as("drain the burst buffer")
    def drain(self, limit: int) -> list[str]:
        with self.state.transaction() as s:
            rows = round_robin(list(s.table("buffer").values()), limit)
            for row in rows:
                try:
                    with s.transaction():
                        insert_execution(s, buffered_correlation(row), row["created_at"],
                                         enqueue=True, not_before=row["not_before"],
                                         expires_at=row["expires_at"],
                                         priority=row["priority"],
                                         concurrency_key=row["concurrency_key"],
                                         batch_id=row["batch_id"])
                except Duplicate:
                    pass  # already materialized by an overlapping evaluation
                del s.table("buffer")[row["execution_id"]]
            return [r["execution_id"] for r in rows]

    @refused_as("expire queued triggers")
    def expire(self, now: datetime, limit: int) -> list[str]:
        with self.state.transaction() as s:
            overdue = sorted((r for r in s.table("executions").values()
                              if r["status"] == ExecutionStatus.QUEUED.value
                              and r["expires_at"] is not None and r["expires_at"] < now),
                             key=lambda r: r["expires_at"])
            return expire_overdue(s, overdue[:limit], now)

    def stuck(self, now: datetime, older_than: timedelta,
              limit: int = 100) -> list[BufferedTrigger]:
        with self.state.lock:
            alerted = {a["execution_id"] for a in self.state.table("alerts").values()
                       if a["kind"] == BUFFER_STUCK_KIND}
            rows = [r for r in self.state.table("buffer").values()
                    if r["created_at"] < now - older_than and r["execution_id"] not in alerted]
        rows.sort(key=lambda r: r["created_at"])
        return [BufferedTrigger(
            execution_id=r["execution_id"], request_id=r["request_id"],
            source=Source(r["source"]), environment=r["environment"], workflow=r["workflow"],
            trigger_id=r["trigger_id"], idempotency_key=r["idempotency_key"],
            parent_execution_id=r["parent_execution_id"], batch_id=r["batch_id"],
            created_at=r["created_at"]) for r in rows[:limit]]

    def lag(self, now: datetime) -> dict[str, float]:
        oldest: dict[str, datetime] = {}
        with self.state.lock:
            waiting = [r for r in self.state.table("queued").values() if _startable(r, now)]
            waiting += list(self.state.table("buffer").values())
        for row in waiting:
            env = row["environment"]
            oldest[env] = min(row["created_at"], oldest.get(env, row["created_at"]))
        return {env: max(0.0, (now - first).total_seconds()) for env, first in oldest.items()}

    def next_startable_at(self, now: datetime) -> datetime | None:
        with self.state.lock:
            queued = [r for r in self.state.table("queued").values()
                      if r["status"] == TriggerStatus.QUEUED.value and r["run_batch_id"] is None]
            if (any(_startable(r, now) for r in queued) or self.state.table("buffer")
                    or any(b["kind"] == KIND_QUEUE and b["dispatched_at"] is None
                           for b in self.state.table("run_batches").values())):
                return now
        debounced = [r["available_at"] for r in queued
                     if r["available_at"] is not None and r["available_at"] > now]
        return min(debounced, default=None)


class MemoryBatches:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def claim_queued(self, environment: str, execution_ids: Sequence[str],
                     now: datetime) -> RunBatch | None:
        batch_id = new_batch_id()
        with self.state.transaction() as s:
            claimed = [i for i in dict.fromkeys(execution_ids)
                       if (q := s.table("queued").get(i)) is not None
                       and q["run_batch_id"] is None and q["status"] == TriggerStatus.QUEUED.value]
            if not claimed:
                return None
            for execution_id in claimed:
                s.update("queued", execution_id, run_batch_id=batch_id)
                if execution_id in s.table("executions"):
                    s.update("executions", execution_id, run_batch_id=batch_id)
            return self._insert(batch_id, environment, KIND_QUEUE, len(claimed), now)

    @refused_as("create a batch of scheduled executions")
    def create_scheduled(self, environment: str, correlations: Sequence[Correlation],
                         now: datetime, *,
                         priorities: Mapping[str, int] | None = None) -> RunBatch | None:
        batch_id = new_batch_id()
        priorities = priorities or {}
        with self.state.transaction() as s:
            size = 0
            for c in correlations:
                if c.execution_id not in s.table("executions"):
                    s.insert("executions", c.execution_id, execution_row(
                        c, now, run_batch_id=batch_id,
                        priority=priorities.get(c.execution_id, 0)))
                    size += 1
            if not size:
                return None
            return self._insert(batch_id, environment, KIND_SCHEDULE, size, now)

    def _insert(self, batch_id: str, environment: str, kind: str, size: int,
                now: datetime) -> RunBatch:
        batch = RunBatch(batch_id=batch_id, environment=environment, kind=kind, size=size,
                         created_at=now)
        self.state.insert("run_batches", batch_id, dict(batch.__dict__))
        return batch

    def pending(self, kind: str, limit: int) -> list[RunBatch]:
        with self.state.lock:
            rows = [r for r in self.state.table("run_batches").values()
                    if r["kind"] == kind and r["dispatched_at"] is None]
        rows.sort(key=lambda r: (r["created_at"], r["batch_id"]))
        return [RunBatch(**r) for r in rows[:limit]]

    def mark_dispatched(self, batch_ids: Sequence[str], now: datetime) -> None:
        wanted = set(batch_ids)
        with self.state.transaction() as s:
            for batch_id in wanted & set(s.table("run_batches")):
                if s.table("run_batches")[batch_id]["dispatched_at"] is None:
                    s.update("run_batches", batch_id, dispatched_at=now)
            for execution_id, q in list(s.table("queued").items()):
                if q["run_batch_id"] in wanted and q["status"] == TriggerStatus.QUEUED.value:
                    s.update("queued", execution_id, status=TriggerStatus.DISPATCHED.value,
                             dispatched_at=now)

    def get(self, batch_ids: Sequence[str]) -> dict[str, RunBatch]:
        rows = self.state.table("run_batches")
        return {i: RunBatch(**rows[i]) for i in batch_ids if i in rows}

    def _rows(self, batch_id: str) -> list[Row]:
        rows = [r for r in self.state.table("executions").values()
                if r["run_batch_id"] == batch_id]
        return sorted(rows, key=lambda r: (r["created_at"], r["execution_id"]))

    def members(self, batch_id: str) -> list[ExecutionRecord]:
        with self.state.lock:
            return [execution_record(r) for r in self._rows(batch_id)]

    @refused_as("start the batch")
    def open(self, batch_id: str, *, dagster_run_id: str, now: datetime) -> BatchOpening:
        with self.state.transaction() as s:
            expire_overdue(s, self._rows(batch_id), now)  # not started by their TTL
            workflows: dict[tuple[str, str], WorkflowRecord | None] = {}
            for row in self._rows(batch_id):
                if row["status"] not in OPEN:
                    continue
                pair = (row["environment"], row["workflow"])
                if pair not in workflows:
                    found = s.table("workflows").get(pair)
                    workflows[pair] = (None if found is None or found["deleted_at"] is not None
                                       else read_workflow(s, *pair))
                record = workflows[pair]
                s.update("executions", row["execution_id"], status=ExecutionStatus.RUNNING.value,
                         attempts=row["attempts"] + 1, dagster_run_id=dagster_run_id,
                         started_at=now, heartbeat_at=now,
                         workflow_version=(record.version if record is not None
                                           else row["workflow_version"]))
            rows = [execution_record(r) for r in self._rows(batch_id)]
        running = [r for r in rows if r.status is ExecutionStatus.RUNNING
                   and r.dagster_run_id == dagster_run_id]
        finalized = [r for r in rows if r.status.terminal]
        return BatchOpening(running=running, finalized=finalized, workflows=workflows)

    def heartbeat(self, batch_id: str, dagster_run_id: str, now: datetime) -> bool:
        with self.state.transaction() as s:
            mine = [r["execution_id"] for r in self._rows(batch_id)
                    if r["dagster_run_id"] == dagster_run_id
                    and r["status"] == ExecutionStatus.RUNNING.value]
            for execution_id in mine:
                s.update("executions", execution_id, heartbeat_at=now)
            return bool(mine)

    @refused_as("finalize the batch's open executions")
    def finish_open(self, batch_id: str, *, run_id: str | None, status: ExecutionStatus,
                    outcome: Outcome, error: dict[str, Any], finalized_by: str,
                    now: datetime) -> tuple[list[ExecutionRecord], list[ExecutionRecord]]:
        with self.state.transaction() as s:
            ids = [r["execution_id"] for r in self._rows(batch_id) if r["status"] in OPEN
                   and (r["dagster_run_id"] is None or
                        (run_id is not None and r["dagster_run_id"] == run_id))]
            for execution_id in ids:
                row = s.table("executions")[execution_id]
                s.update("executions", execution_id, status=status.value, outcome=outcome.value,
                         finalized_by=finalized_by, finished_at=now, error=error,
                         dagster_run_id=row["dagster_run_id"] or run_id)
            rows = [execution_record(r) for r in self._rows(batch_id)]
        won = set(ids)
        mine = [r for r in rows if r.execution_id in won and r.finalized_by == finalized_by
                and r.finished_at == now]
        return mine, rows

    def unfinished(self, kind: str) -> list[int]:
        with self.state.lock:
            batches = self.state.table("run_batches")
            counts = Counter(r["run_batch_id"] for r in self.state.table("executions").values()
                             if r["run_batch_id"] in batches and r["status"] in OPEN
                             and batches[r["run_batch_id"]]["kind"] == kind)
            return list(counts.values())

    def batchable(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        found: dict[tuple[str, str], bool] = {}
        with self.state.lock:
            for pair in set(pairs):
                row = self.state.table("workflows").get(pair)
                if row is not None and row["deleted_at"] is None:
                    document = read_workflow(self.state, *pair).document
                    found[pair] = document.get("batch", True) is not False
        return {pair: found.get(pair, False) for pair in set(pairs)}

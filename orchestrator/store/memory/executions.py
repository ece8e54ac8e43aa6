"""Executions and alerts in memory (the SQL twins: ``executions.py``, ``alerts.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.payloads import storable_json, storable_text
from orchestrator.domain.records import (
    EXPIRED_ERROR,
    FINALIZED_BY_TTL,
    AlertRecord,
    BlockEntry,
    DeliveryStatus,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    TriggerStatus,
    WorkflowRecord,
)
from orchestrator.exceptions import NotFound
from orchestrator.store.memory.catalog import read_workflow
from orchestrator.store.memory.state import MemoryState, Refused, Row, fresh, refused_as

OPEN = (ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value)


def execution_row(correlation: Correlation, now: datetime, *, workflow_version: int | None = None,
                  batch_id: str | None = None, run_batch_id: str | None = None,
                  not_before: datetime | None = None, expires_at: datetime | None = None,
                  priority: int = 0, concurrency_key: str | None = None,
                  pinned_version: int | None = None, held_at: datetime | None = None,
                  backfill_id: str | None = None) -> Row:
    """A new (``queued``) execution, every column present."""
    c = correlation
    return dict(
        execution_id=c.execution_id, request_id=c.request_id, source=c.source.value,
        workflow=c.workflow, environment=c.environment, workflow_version=workflow_version,
        status=ExecutionStatus.QUEUED.value, outcome=None, trigger_id=c.trigger_id,
        scheduled_for=c.scheduled_for, idempotency_key=c.idempotency_key,
        parent_execution_id=c.parent_execution_id, replayed_from=c.replayed_from,
        payload=c.payload, dagster_run_id=None,
        attempts=0, error=None, output=None, finalized_by=None, created_at=now,
        started_at=None, finished_at=None, heartbeat_at=None, batch_id=batch_id,
        run_batch_id=run_batch_id, cancel_requested_at=None, not_before=not_before,
        expires_at=expires_at, priority=priority, concurrency_key=concurrency_key,
        pinned_version=pinned_version, slot_at=None, held_at=held_at, backfill_id=backfill_id)


def insert_execution(state: MemoryState, correlation: Correlation, now: datetime, *,
                     workflow_version: int | None = None, enqueue: bool = False,
                     available_at: datetime | None = None, batch_id: str | None = None,
                     not_before: datetime | None = None, expires_at: datetime | None = None,
                     priority: int = 0, concurrency_key: str | None = None,
                     pinned_version: int | None = None,
                     held_at: datetime | None = None) -> None:
    """The execution and, with ``enqueue``, its queue row (startable at ``available_at``, else
    ``not_before``); ``Duplicate`` when it exists."""
    state.insert("executions", correlation.execution_id, execution_row(
        correlation, now, workflow_version=workflow_version, batch_id=batch_id,
        not_before=not_before, expires_at=expires_at, priority=priority,
        concurrency_key=concurrency_key, pinned_version=pinned_version, held_at=held_at))
    if enqueue:
        state.insert("queued", correlation.execution_id, dict(
            execution_id=correlation.execution_id, environment=correlation.environment,
            workflow=correlation.workflow, status=TriggerStatus.QUEUED.value, created_at=now,
            dispatched_at=None, available_at=available_at or not_before, run_batch_id=None,
            priority=priority, concurrency_key=concurrency_key, pinned_version=pinned_version))


def expire_overdue(state: MemoryState, rows: Sequence[Row], now: datetime) -> list[str]:
    """Of ``rows``, the queued ones whose TTL has passed end ``expired`` and leave the queue."""
    ids = [r["execution_id"] for r in rows if r["status"] == ExecutionStatus.QUEUED.value
           and r["expires_at"] is not None and r["expires_at"] < now]
    for execution_id in ids:
        state.update("executions", execution_id, status=ExecutionStatus.EXPIRED.value,
                     outcome=Outcome.EXPIRED.value, finalized_by=FINALIZED_BY_TTL,
                     finished_at=now, error=dict(EXPIRED_ERROR))
        state.table("queued").pop(execution_id, None)
    return ids


def execution_record(row: Row, blocks: tuple[BlockEntry, ...] = ()) -> ExecutionRecord:
    row = {k: v for k, v in row.items() if k != "slot_at"}
    return ExecutionRecord(**{
        **row, "source": Source(row["source"]), "status": ExecutionStatus(row["status"]),
        "outcome": Outcome(row["outcome"]) if row["outcome"] else None,
        "payload": fresh(row["payload"]), "error": fresh(row["error"]),
        "output": fresh(row["output"])}, blocks=blocks)


def newest_first(rows: Any) -> list[Row]:
    """``ORDER BY created_at DESC, execution_id`` (ascending ids within one instant)."""
    ordered = sorted(rows, key=lambda r: r["execution_id"])
    return sorted(ordered, key=lambda r: r["created_at"], reverse=True)


class MemoryExecutions:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    @refused_as("record the execution")
    def create_execution(self, correlation: Correlation, now: datetime, *,
                         workflow_version: int | None = None, enqueue: bool = False,
                         priority: int = 0) -> tuple[ExecutionRecord, bool]:
        with self.state.transaction() as s:
            created = correlation.execution_id not in s.table("executions")
            if created:
                insert_execution(s, correlation, now, workflow_version=workflow_version,
                                 enqueue=enqueue, priority=priority)
            return self._execution(correlation.execution_id), created

    def _execution(self, execution_id: str, with_blocks: bool = False) -> ExecutionRecord:
        row = self.state.table("executions").get(execution_id)
        if row is None:
            raise NotFound("execution", execution_id)
        blocks: tuple[BlockEntry, ...] = ()
        if with_blocks:
            entries = [b for (e, attempt, _), b in self.state.table("blocks").items()
                       if e == execution_id and attempt == row["attempts"]]
            blocks = tuple(BlockEntry(**b) for b in sorted(entries,
                                                           key=lambda b: b["started_at"]))
        return execution_record(row, blocks)

    def get_execution(self, execution_id: str) -> ExecutionRecord:
        with self.state.lock:
            return self._execution(execution_id, with_blocks=True)

    def executions_by_id(self, execution_ids: Sequence[str]) -> dict[str, ExecutionRecord]:
        rows = self.state.table("executions")
        return {i: execution_record(rows[i]) for i in execution_ids if i in rows}

    def list_executions(self, *, workflow: str | None = None, status: str | None = None,
                        environment: str | None = None, trigger_id: str | None = None,
                        limit: int = 50) -> list[ExecutionRecord]:
        wanted = {"workflow": workflow, "status": status, "environment": environment,
                  "trigger_id": trigger_id}
        with self.state.lock:
            rows = [r for r in self.state.table("executions").values()
                    if all(v is None or r[k] == v for k, v in wanted.items())]
        return [execution_record(r) for r in newest_first(rows)[:limit]]

    @refused_as("start the execution")
    def start_execution(self, execution_id: str, *, dagster_run_id: str,
                        workflow_version: int | None, now: datetime) -> ExecutionRecord:
        with self.state.transaction():
            self._start(execution_id, dagster_run_id=dagster_run_id,
                        workflow_version=workflow_version, now=now)
            return self._execution(execution_id)

    @refused_as("start the execution")
    def open_execution(self, correlation: Correlation, *, dagster_run_id: str,
                       now: datetime) -> tuple[WorkflowRecord, ExecutionRecord]:
        execution_id = correlation.execution_id
        with self.state.transaction() as s:
            existing = s.table("executions").get(execution_id)
            workflow = read_workflow(s, correlation.environment, correlation.workflow,
                                     existing["pinned_version"] if existing else None)
            if workflow.deleted_at is not None:
                raise NotFound("workflow", f"{correlation.environment}/{correlation.workflow}")
            started = self._start(execution_id, dagster_run_id=dagster_run_id,
                                  workflow_version=workflow.version, now=now)
            if not started and execution_id not in s.table("executions"):
                row = execution_row(correlation, now, workflow_version=workflow.version)
                row.update(status=ExecutionStatus.RUNNING.value, attempts=1,
                           dagster_run_id=dagster_run_id, started_at=now, heartbeat_at=now)
                s.insert("executions", execution_id, row)
            return workflow, self._execution(execution_id)

    def _start(self, execution_id: str, *, dagster_run_id: str, workflow_version: int | None,
               now: datetime) -> bool:
        row = self.state.table("executions").get(execution_id)
        if row is not None:
            expire_overdue(self.state, [row], now)
            row = self.state.table("executions")[execution_id]
        if row is None or row["status"] not in OPEN:
            return False
        self.state.update("executions", execution_id, status=ExecutionStatus.RUNNING.value,
                          attempts=row["attempts"] + 1, dagster_run_id=dagster_run_id,
                          started_at=now, heartbeat_at=now,
                          workflow_version=(workflow_version if workflow_version is not None
                                            else row["workflow_version"]))
        return True

    @refused_as("finalize the execution")
    def finish_execution(self, execution_id: str, *, status: ExecutionStatus, outcome: Outcome,
                         finalized_by: str, now: datetime, error: dict[str, Any] | None = None,
                         output: Any = None, dagster_run_id: str | None = None,
                         block: tuple[int, BlockEntry] | None = None,
                         ) -> tuple[ExecutionRecord, bool]:
        with self.state.transaction() as s:
            if block is not None:
                self._upsert_block(execution_id, *block)
            row = s.table("executions").get(execution_id)
            won = row is not None and row["status"] in OPEN
            if won:
                assert row is not None
                s.update("executions", execution_id, status=status.value,
                         outcome=outcome.value, finalized_by=finalized_by, finished_at=now,
                         error=storable_json(error), output=storable_json(output),
                         dagster_run_id=row["dagster_run_id"] or dagster_run_id)
            return self._execution(execution_id), won

    def heartbeat(self, execution_id: str, now: datetime) -> bool:
        with self.state.transaction() as s:
            row = s.table("executions").get(execution_id)
            if row is None or row["status"] != ExecutionStatus.RUNNING.value:
                return False
            s.update("executions", execution_id, heartbeat_at=now)
            return True

    def stale_executions(self, heartbeat_before: datetime,
                         limit: int = 100) -> list[ExecutionRecord]:
        with self.state.lock:
            rows = [r for r in self.state.table("executions").values()
                    if r["status"] == ExecutionStatus.RUNNING.value
                    and r["heartbeat_at"] is not None and r["heartbeat_at"] < heartbeat_before]
        return [execution_record(r) for r in sorted(rows, key=lambda r: r["heartbeat_at"])
                ][:limit]

    @refused_as("record the block")
    def record_block(self, execution_id: str, attempt: int, entry: BlockEntry) -> None:
        with self.state.transaction():
            self._upsert_block(execution_id, attempt, entry)

    def _upsert_block(self, execution_id: str, attempt: int, entry: BlockEntry) -> None:
        if execution_id not in self.state.table("executions"):
            raise Refused(f"no execution {execution_id!r}")  # the foreign key
        values = dict(entry.__dict__)
        values["error"] = None if entry.error is None else storable_text(entry.error)
        self.state.put("blocks", (execution_id, attempt, entry.block_id), values)


def _alert(row: Row) -> AlertRecord:
    return AlertRecord(**{**row, "details": fresh(row["details"]),
                          "delivery_status": DeliveryStatus(row["delivery_status"])})


class MemoryAlerts:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    @refused_as("record the alert")
    def record_alert(self, *, execution_id: str | None, kind: str, message: str,
                     details: dict[str, Any], environment: str | None, workflow: str | None,
                     now: datetime, deliver: bool, incident: str | None = None,
                     executions: Sequence[str] = ()) -> tuple[AlertRecord, bool]:
        with self.state.transaction() as s:
            for row in s.table("alerts").values():
                same = (row["incident"] == incident if incident is not None else
                        execution_id is not None and (row["execution_id"], row["kind"]) ==
                        (execution_id, kind))
                if same:
                    return _alert(row), False
            alert_id = s.next_id()
            s.insert("alerts", alert_id, dict(
                id=alert_id, execution_id=execution_id, kind=kind,
                message=storable_text(message), details=storable_json(details),
                environment=environment, workflow=workflow, created_at=now,
                delivery_status=(DeliveryStatus.PENDING if deliver
                                 else DeliveryStatus.NONE).value,
                delivery_attempts=0, next_delivery_at=now if deliver else None,
                delivered_at=None, last_delivery_error=None, incident=incident))
            for e in executions:
                s.insert("alert_executions", (alert_id, e), {})
            return _alert(s.table("alerts")[alert_id]), True

    def list_alerts(self, *, environment: str | None = None, execution_id: str | None = None,
                    limit: int = 50) -> list[AlertRecord]:
        with self.state.lock:
            named = {a for a, e in self.state.table("alert_executions") if e == execution_id}
            rows = [r for r in self.state.table("alerts").values()
                    if environment in (None, r["environment"])
                    and (execution_id is None or r["execution_id"] == execution_id
                         or r["id"] in named)]
        rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return [_alert(r) for r in rows[:limit]]

    def alerts_to_deliver(self, now: datetime, limit: int = 20) -> list[AlertRecord]:
        with self.state.lock:
            rows = [r for r in self.state.table("alerts").values()
                    if r["delivery_status"] == DeliveryStatus.PENDING.value
                    and r["next_delivery_at"] is not None and r["next_delivery_at"] <= now]
        return [_alert(r) for r in sorted(rows, key=lambda r: r["next_delivery_at"])[:limit]]

    def claim_alert_delivery(self, alert_id: int, *, now: datetime, lease_until: datetime) -> bool:
        with self.state.transaction() as s:
            row = s.table("alerts").get(alert_id)
            if row is None or row["delivery_status"] != DeliveryStatus.PENDING.value \
                    or row["next_delivery_at"] is None or row["next_delivery_at"] > now:
                return False
            s.update("alerts", alert_id, next_delivery_at=lease_until)
            return True

    def record_alert_delivery(self, alert_id: int, *, now: datetime, error: str | None,
                              retry_at: datetime | None) -> None:
        if error is None:
            values: dict[str, Any] = dict(delivery_status=DeliveryStatus.DELIVERED.value,
                                          delivered_at=now, next_delivery_at=None,
                                          last_delivery_error=None)
        else:
            values = dict(delivery_status=(DeliveryStatus.PENDING if retry_at
                                           else DeliveryStatus.FAILED).value,
                          next_delivery_at=retry_at, last_delivery_error=error[:500])
        with self.state.transaction() as s:
            row = s.table("alerts").get(alert_id)
            if row is not None:
                s.update("alerts", alert_id, delivery_attempts=row["delivery_attempts"] + 1,
                         **values)

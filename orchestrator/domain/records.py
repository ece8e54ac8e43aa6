"""Records read from the store: frozen keyword-only dataclasses; statuses are string enums."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from orchestrator.domain.correlation import Correlation, iso_utc


class ExecutionStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # its TTL passed before it started

    @property
    def terminal(self) -> bool:
        return self in (ExecutionStatus.SUCCESS, ExecutionStatus.ERROR, ExecutionStatus.CANCELLED,
                        ExecutionStatus.EXPIRED)


class Outcome(str, Enum):
    SUCCESS = "success"
    USER_ERROR = "user_error"
    PIPELINE_FAULT = "pipeline_fault"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not started before its TTL: no alert


class CancelOutcome(str, Enum):
    """What a cancel request did: ``cancelled`` (it had not started: it ends ``cancelled``, no
    run), ``requested`` (it is running: the reconciler stops it, it ends ``cancelled``),
    ``finished`` (it had ended: nothing changed)."""

    CANCELLED = "cancelled"
    REQUESTED = "requested"
    FINISHED = "finished"


# Who finalized an execution cancelled on request, and what it says.
FINALIZED_BY_CANCEL = "cancel"
CANCELLED_ERROR = {"message": "cancelled on request"}
# ... and one whose TTL passed before it started.
FINALIZED_BY_TTL = "ttl"
EXPIRED_ERROR = {"message": "expired: its ttl passed before it started"}


class DeliveryStatus(str, Enum):
    """An alert's webhook delivery: ``none`` when no webhook is configured."""

    NONE = "none"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class TriggerStatus(str, Enum):
    QUEUED = "queued"
    DISPATCHED = "dispatched"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Enum):
        return value.value
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True, kw_only=True)
class WorkflowRecord(_Record):
    name: str
    environment: str
    version: int
    digest: str
    document: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ScheduleRecord(_Record):
    id: str
    environment: str
    workflow: str
    cron: str | None
    timezone: str
    run_at: datetime | None
    payload: dict[str, Any]
    key: str | None
    enabled: bool
    next_run_at: datetime | None
    last_scheduled_for: datetime | None
    skipped_superseded: int
    skipped_outside_window: int
    created_at: datetime
    updated_at: datetime
    # Controls (as Temporal names them): what happens to an occurrence while the previous
    # execution still runs, a deterministic start offset, the executions' priority.
    overlap: str = "allow_all"
    jitter_seconds: float | None = None
    priority: int = 0
    skipped_overlap: int = 0  # occurrences the overlap policy skipped
    buffered_overlap: int = 0  # occurrences it held to start after the previous one

    @property
    def one_time(self) -> bool:
        return self.cron is None


@dataclass(frozen=True, kw_only=True)
class ExecutionRecord(Correlation, _Record):
    """One execution of the log: its correlation (the fields of :class:`Correlation`, as first
    stored and never regenerated downstream; :meth:`correlation` gives it alone) and its
    state."""

    workflow_version: int | None
    status: ExecutionStatus
    outcome: Outcome | None
    dagster_run_id: str | None
    attempts: int
    error: dict[str, Any] | None
    output: Any
    finalized_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None = None
    batch_id: str | None = None  # the trigger-batch request (POST .../trigger-batch) it came in
    run_batch_id: str | None = None  # the batch run that carried it (many executions, one run)
    # A cancel asked for while it ran: the reconciler stops its run (or it alone, in a batch).
    cancel_requested_at: datetime | None = None
    not_before: datetime | None = None  # a delayed trigger: it starts no earlier
    expires_at: datetime | None = None  # its TTL: not started by then, it ends `expired`
    priority: int = 0  # higher starts first within its environment
    # Executions sharing a key (per workflow) run at most the workflow's key_limit at once.
    concurrency_key: str | None = None
    pinned_version: int | None = None  # a replay with same_version runs this version
    # Held by its schedule's overlap policy: it joins the queue once nothing of its schedule
    # runs (it stays set afterwards, as a record of the wait).
    held_at: datetime | None = None
    backfill_id: str | None = None  # the backfill that created it
    blocks: tuple[BlockEntry, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["blocks"] = [b.to_dict() for b in self.blocks]
        # The record's established key order (`executions show`, JSON): identity
        # (execution_id ... environment), then the version and state, then the other fields.
        keys = list(data)
        state = ["workflow_version", "status", "outcome"]
        rest = [k for k in keys if k not in state]
        at = rest.index("environment") + 1
        return {k: data[k] for k in (*rest[:at], *state, *rest[at:])}


@dataclass(frozen=True, kw_only=True)
class BackfillRecord(_Record):
    """One backfill of a schedule: its range and policy, what it found (``occurrences`` in the
    range: ``created`` executions, ``existing`` ones it left alone, ``skipped`` by its overlap
    policy) and its progress, its executions counted by status."""

    id: str
    schedule_id: str
    environment: str
    start: datetime
    end: datetime
    overlap: str
    occurrences: int
    created: int
    existing: int
    skipped: int
    created_at: datetime
    statuses: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["statuses"] = dict(self.statuses)
        return data


@dataclass(frozen=True, kw_only=True)
class BlockEntry(_Record):
    block_id: str
    block_type: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    output_size: int | None


@dataclass(frozen=True, kw_only=True)
class QueuedTrigger(_Record):
    execution_id: str
    environment: str
    workflow: str
    status: TriggerStatus
    created_at: datetime
    dispatched_at: datetime | None
    available_at: datetime | None = None
    run_batch_id: str | None = None
    priority: int = 0
    concurrency_key: str | None = None
    pinned_version: int | None = None  # runs alone, at this workflow version (a replay)


@dataclass(frozen=True, kw_only=True)
class AlertRecord(_Record):
    id: int
    execution_id: str | None
    kind: str
    message: str
    details: dict[str, Any]
    environment: str | None
    workflow: str | None
    created_at: datetime
    delivery_status: DeliveryStatus
    delivery_attempts: int
    next_delivery_at: datetime | None
    delivered_at: datetime | None
    last_delivery_error: str | None
    incident: str | None = None  # one alert per incident (a batch run): ``run:<run id>``

"""The store's interfaces: one small repository per aggregate, and the records they exchange.

Services depend on these :class:`~typing.Protocol`\\ s, never on a backend. Two implementations
ship in the package: the SQL one (``orchestrator.store.workflows`` … ``access``, on SQLite or
PostgreSQL through :class:`~orchestrator.store.uow.Database`) and the in-memory one
(:mod:`orchestrator.store.memory`). One contract suite (``tests/store``) runs on all three.

==============  ======================================================================
repository      aggregate
==============  ======================================================================
workflows       versioned workflow definitions per environment
schedules       cron / one-time schedules and their ``next_run_at`` compare-and-set
executions      the execution log: attempts, block entries, the one terminal write
queue           queued triggers and the burst buffer, read fairly across environments
batches         many executions carried by one Dagster run
admission       trigger admission (idempotency, debounce, buffer) and reads with buffer fallback
alerts          alerts and their outbound delivery
access          API keys (hashed) and webhooks
retention       per-environment retention and pruning of what nobody can see any more
cancellation    cancelling an execution, whatever its state
concurrency     limits of executions in flight (per environment, per key) and their slots
occurrences     schedule occurrences held by an overlap policy, and backfills
==============  ======================================================================

Every method raises :class:`~orchestrator.exceptions.StoreError` for a failure of the store,
:class:`~orchestrator.exceptions.NotFound` for a missing record, and nothing from a driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from orchestrator.domain.access import ApiKeyRecord, KeyGrant, WebhookRecord
from orchestrator.domain.backfills import BackfillSpec
from orchestrator.domain.correlation import Correlation
from orchestrator.domain.ingest import Admission, AdmissionJob, TriggerRequest
from orchestrator.domain.records import (
    AlertRecord,
    BackfillRecord,
    BlockEntry,
    CancelOutcome,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    QueuedTrigger,
    ScheduleRecord,
    WorkflowRecord,
)
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.workflow import WorkflowSpec
from orchestrator.exceptions import OrchestratorError

BUFFER_STUCK_KIND = "buffer_stuck"
KIND_QUEUE = "queue"
KIND_SCHEDULE = "schedule"

JobResult = list[Admission] | OrchestratorError


# ------------------------------------------------------------------------------------ records

@dataclass(frozen=True, kw_only=True)
class Advance:
    """One compare-and-set of a schedule's ``next_run_at`` (see
    :meth:`ScheduleRepository.advance_schedule`)."""

    schedule_id: str
    expected: datetime
    next_run_at: datetime | None
    dispatched: datetime | None = None
    superseded: int = 0
    outside_window: int = 0
    skipped_overlap: int = 0  # the occurrence was skipped by the overlap policy
    buffered_overlap: int = 0  # ... or held by it


def schedule_controls(spec: ScheduleSpec) -> dict[str, Any]:
    """The control columns of a schedule row (both backends write them from here)."""
    return dict(overlap=spec.overlap.value, priority=spec.priority,
                jitter_seconds=spec.jitter.total_seconds() if spec.jitter else None)


@dataclass(frozen=True, kw_only=True)
class OverlapState:
    """A schedule's executions the overlap policy looks at: the ``open`` ones (queued or
    running) by id, and how many of them are ``waiting`` (held, not in the queue yet)."""

    open: tuple[str, ...] = ()
    waiting: int = 0


@dataclass(frozen=True, kw_only=True)
class BufferedTrigger(Correlation):
    """One burst-buffer entry: its correlation, the trigger-batch request it came in and when it
    was buffered. ``payload`` and ``idempotency_expires_at`` are filled where the entry is read
    to be shown (``AdmissionRepository``), not by ``stuck``."""

    batch_id: str | None
    created_at: datetime
    idempotency_expires_at: datetime | None = None
    not_before: datetime | None = None  # a delay: it starts no earlier
    expires_at: datetime | None = None  # its TTL
    priority: int = 0
    concurrency_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class Visible:
    """An execution as a reader may see it: in the log, or still in the burst buffer; with the
    expiry of its idempotency key, if it holds one."""

    execution: ExecutionRecord | BufferedTrigger
    key_expires_at: datetime | None = None

    @property
    def buffered(self) -> bool:
        return isinstance(self.execution, BufferedTrigger)


@dataclass(frozen=True, kw_only=True)
class RunBatch:
    batch_id: str
    environment: str
    kind: str
    size: int
    created_at: datetime
    dispatched_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class BatchOpening:
    """What a batch run starts with: its open members (now ``running``, attempt counted), the
    members already terminal (a retried run skips them) and each member workflow's current
    version (``None``: missing or deleted, a pipeline fault of those executions)."""

    running: list[ExecutionRecord]
    finalized: list[ExecutionRecord]
    workflows: dict[tuple[str, str], WorkflowRecord | None]


# ------------------------------------------------------------------------------- repositories

class WorkflowRepository(Protocol):
    def apply_workflow(self, spec: WorkflowSpec, now: datetime) -> tuple[WorkflowRecord, bool]:
        """Store ``spec`` as the new current version; (record, whether a version was written)."""

    def get_workflow(self, environment: str, name: str, version: int | None = None,
                     *, include_deleted: bool = False) -> WorkflowRecord: ...

    def list_workflows(self, environment: str | None = None) -> list[WorkflowRecord]: ...

    def delete_workflow(self, environment: str, name: str, now: datetime) -> int:
        """Soft-delete (history stays) and pause its schedules; returns schedules paused."""


class ScheduleRepository(Protocol):
    def create_schedule(self, spec: ScheduleSpec, now: datetime) -> tuple[ScheduleRecord, bool]:
        """Create, or with ``spec.key`` upsert; (record, whether created)."""

    def get_schedule(self, schedule_id: str) -> ScheduleRecord: ...

    def list_schedules(self, environment: str | None = None,
                       workflow: str | None = None) -> list[ScheduleRecord]: ...

    def pause_schedule(self, schedule_id: str, now: datetime) -> ScheduleRecord:
        """Disable, and in the same transaction cancel the schedule's executions that have not
        started (``queued``: they end ``cancelled``, finalized by ``pause``, with no alert; a
        run already requested for one finds it finalized and runs nothing)."""
        ...

    def resume_schedule(self, schedule_id: str, next_run_at: datetime,
                        now: datetime) -> ScheduleRecord: ...

    def delete_schedule(self, schedule_id: str) -> None: ...

    def due_schedules(self, now: datetime, limit: int, *,
                      after: tuple[datetime, str] | None = None) -> list[ScheduleRecord]:
        """Enabled schedules due at ``now``, oldest first, paged by (next_run_at, id)."""

    def next_due_at(self) -> datetime | None: ...

    def advance_schedule(self, schedule_id: str, *, expected: datetime,
                         next_run_at: datetime | None, now: datetime,
                         dispatched: datetime | None = None, superseded: int = 0,
                         outside_window: int = 0) -> bool:
        """Compare-and-set ``next_run_at`` from ``expected`` (``None`` disables)."""

    def advance_schedules(self, advances: Sequence[Advance], now: datetime) -> int: ...

    def schedules_by_id(self, schedule_ids: Sequence[str]) -> dict[str, ScheduleRecord]: ...


class ExecutionRepository(Protocol):
    def create_execution(self, correlation: Correlation, now: datetime, *,
                         workflow_version: int | None = None, enqueue: bool = False,
                         priority: int = 0) -> tuple[ExecutionRecord, bool]:
        """Insert ``queued`` unless it exists (and with ``enqueue`` its queue row)."""

    def get_execution(self, execution_id: str) -> ExecutionRecord: ...

    def executions_by_id(self, execution_ids: Sequence[str]) -> dict[str, ExecutionRecord]: ...

    def list_executions(self, *, workflow: str | None = None, status: str | None = None,
                        environment: str | None = None, trigger_id: str | None = None,
                        limit: int = 50) -> list[ExecutionRecord]: ...

    def start_execution(self, execution_id: str, *, dagster_run_id: str,
                        workflow_version: int | None, now: datetime) -> ExecutionRecord: ...

    def open_execution(self, correlation: Correlation, *, dagster_run_id: str,
                       now: datetime) -> tuple[WorkflowRecord, ExecutionRecord]:
        """Begin an attempt with the workflow's current version, in one transaction."""

    def finish_execution(self, execution_id: str, *, status: ExecutionStatus, outcome: Outcome,
                         finalized_by: str, now: datetime, error: dict[str, Any] | None = None,
                         output: Any = None, dagster_run_id: str | None = None,
                         block: tuple[int, BlockEntry] | None = None,
                         ) -> tuple[ExecutionRecord, bool]:
        """The one terminal write; (stored record, whether this call won)."""

    def heartbeat(self, execution_id: str, now: datetime) -> bool: ...

    def stale_executions(self, heartbeat_before: datetime,
                         limit: int = 100) -> list[ExecutionRecord]: ...

    def record_block(self, execution_id: str, attempt: int, entry: BlockEntry) -> None: ...


class QueueRepository(Protocol):
    def queued_triggers(self, limit: int) -> list[QueuedTrigger]:
        """Queued triggers, oldest first (every one, due or not, batched or not)."""

    def mark_dispatched(self, execution_ids: Sequence[str], now: datetime) -> int: ...

    def queued(self, now: datetime, limit: int, block: int = 1) -> list[QueuedTrigger]:
        """Startable unclaimed triggers, round robin across environments in ``block``\\ s."""

    def drain(self, limit: int) -> list[str]:
        """Move up to ``limit`` buffered triggers into the queue, fairly; their ids."""

    def stuck(self, now: datetime, older_than: timedelta,
              limit: int = 100) -> list[BufferedTrigger]: ...

    def lag(self, now: datetime) -> dict[str, float]: ...

    def next_startable_at(self, now: datetime) -> datetime | None:
        """``now`` when a trigger can start (queued and unclaimed, buffered, or in a batch whose
        run was not requested yet), else the earliest ``available_at`` of debounced triggers,
        else None."""


    def expire(self, now: datetime, limit: int) -> list[str]:
        """Queued triggers whose TTL passed before they started end ``expired`` (no alert),
        up to ``limit``, oldest TTL first; returns their ids."""
        ...

class BatchRepository(Protocol):
    def claim_queued(self, environment: str, execution_ids: Sequence[str],
                     now: datetime) -> RunBatch | None: ...

    def create_scheduled(self, environment: str, correlations: Sequence[Correlation],
                         now: datetime, *,
                         priorities: Mapping[str, int] | None = None) -> RunBatch | None: ...

    def pending(self, kind: str, limit: int) -> list[RunBatch]: ...

    def mark_dispatched(self, batch_ids: Sequence[str], now: datetime) -> None: ...

    def get(self, batch_ids: Sequence[str]) -> dict[str, RunBatch]: ...

    def members(self, batch_id: str) -> list[ExecutionRecord]: ...

    def open(self, batch_id: str, *, dagster_run_id: str, now: datetime) -> BatchOpening: ...

    def heartbeat(self, batch_id: str, dagster_run_id: str, now: datetime) -> bool: ...

    def finish_open(self, batch_id: str, *, run_id: str | None, status: ExecutionStatus,
                    outcome: Outcome, error: dict[str, Any], finalized_by: str,
                    now: datetime) -> tuple[list[ExecutionRecord], list[ExecutionRecord]]: ...

    def batchable(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bool]: ...

    def unfinished(self, kind: str) -> list[int]:
        """How many members each batch of ``kind`` still has to finish (queued or running), for
        every batch that has any."""
        ...


class AdmissionRepository(Protocol):
    def admit(self, requests: Sequence[TriggerRequest], now: datetime, *,
              buffer: Sequence[bool] | None = None,
              receipt: tuple[str, str] | None = None) -> list[Admission]: ...

    def admit_jobs(self, jobs: Sequence[AdmissionJob]) -> list[JobResult]:
        """Several calls' jobs in one transaction, each all or none."""

    def warm_up(self, now: datetime) -> None:
        """Prepare for the first admission (SQL: run its statements once, keeping nothing)."""

    def writer_turn(self) -> AbstractContextManager[object]:
        """Held by the API's writer while it gathers a group of jobs and admits them: on
        SQLite the file's write lock (the jobs that come while it waits for other processes'
        writers join its group), else nothing."""

    def find(self, execution_id: str, environment: str | None) -> Visible:
        """The execution of ``environment`` (None: of any), in the log or the buffer (else
        NotFound)."""

    def visible(self, environment: str, *, workflow: str | None = None,
                status: str | None = None, limit: int = 50) -> list[Visible]:
        """Most recent first, buffered executions included (as queued)."""


class AlertRepository(Protocol):
    def record_alert(self, *, execution_id: str | None, kind: str, message: str,
                     details: dict[str, Any], environment: str | None, workflow: str | None,
                     now: datetime, deliver: bool, incident: str | None = None,
                     executions: Sequence[str] = ()) -> tuple[AlertRecord, bool]: ...

    def list_alerts(self, *, environment: str | None = None, execution_id: str | None = None,
                    limit: int = 50) -> list[AlertRecord]: ...

    def alerts_to_deliver(self, now: datetime, limit: int = 20) -> list[AlertRecord]: ...

    def claim_alert_delivery(self, alert_id: int, *, now: datetime,
                             lease_until: datetime) -> bool: ...

    def record_alert_delivery(self, alert_id: int, *, now: datetime, error: str | None,
                              retry_at: datetime | None) -> None: ...


class AccessRepository(Protocol):
    def create_api_key(self, environment: str, now: datetime,
                       expires_at: datetime | None = None) -> tuple[ApiKeyRecord, str]: ...

    def check_api_key(self, key: str, now: datetime) -> KeyGrant | None:
        """What a key that is not revoked grants (expiry included), recording its use."""
        ...

    def list_api_keys(self, environment: str | None = None) -> list[ApiKeyRecord]: ...

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyRecord: ...

    def create_webhook(self, environment: str, workflow: str, now: datetime
                       ) -> WebhookRecord: ...

    def get_webhook(self, webhook_id: str) -> WebhookRecord: ...

    def list_webhooks(self, environment: str | None = None) -> list[WebhookRecord]: ...

    def delete_webhook(self, webhook_id: str) -> None: ...

    def rotate_webhook_secret(self, webhook_id: str, now: datetime,
                              grace: timedelta) -> WebhookRecord:
        """A new secret; the replaced one is still accepted for ``grace``."""
        ...


@dataclass(frozen=True, kw_only=True)
class Expired:
    """A terminal execution past its environment's retention."""

    execution_id: str
    run_batch_id: str | None


class RetentionRepository(Protocol):
    def set_retention(self, environment: str, retention: timedelta | None,
                      now: datetime) -> None:
        """Override ``environment``'s retention (None: back to the default)."""
        ...

    def retentions(self) -> dict[str, timedelta]:
        """Every override, by environment."""
        ...

    def expired(self, now: datetime, default: timedelta, limit: int) -> list[Expired]:
        """Up to ``limit`` terminal executions finished more than their environment's retention
        before ``now``, oldest-finished first; nothing else, whatever its age."""
        ...

    def count_expired(self, now: datetime, default: timedelta) -> int: ...

    def emptied_batches(self, execution_ids: Sequence[str]) -> list[str]:
        """The batches of ``execution_ids`` that no other execution belongs to."""
        ...

    def delete_executions(self, execution_ids: Sequence[str]) -> dict[str, int]:
        """Remove the executions with their block entries, queue rows, idempotency keys,
        alerts (an incident's alert once no execution of it is left) and emptied batches, in
        one transaction; returns the rows removed per kind (added to the totals)."""
        ...

    def prune_housekeeping(self, now: datetime, limit: int, *,
                           dry_run: bool = False) -> dict[str, int]:
        """Remove up to ``limit`` rows of each kind nothing can read any more: idempotency keys
        past their TTL, debounce windows whose execution left the queue, queue rows of
        terminal executions, burst-buffer rows already materialized. ``dry_run``: count all of
        them, remove nothing."""
        ...

    def prune_totals(self) -> dict[str, int]:
        """Rows removed so far, per kind."""
        ...


class OccurrenceRepository(Protocol):
    """Schedule occurrences beyond the tick's own dispatch: those held by an overlap policy,
    and backfills."""

    def overlap_state(self, schedule_id: str, *, exclude: str | None = None) -> OverlapState:
        """The schedule's open executions (``exclude``: an execution id left out)."""
        ...

    def hold(self, correlation: Correlation, now: datetime, *, priority: int = 0) -> bool:
        """Insert the occurrence's execution held (queued, no queue row) unless it exists;
        whether this call inserted it."""
        ...

    def enqueue(self, correlation: Correlation, now: datetime, advance: Advance, *,
                priority: int = 0) -> bool:
        """Insert the occurrence's execution with its queue row (the queue sensor dispatches
        it, within its environment's concurrency limit) and apply ``advance``, in one
        transaction; False (nothing written) when the execution exists already."""
        ...

    def release_held(self, now: datetime, limit: int) -> list[str]:
        """For up to ``limit`` schedules with held executions and none running or queued
        otherwise, move the oldest held one (by ``scheduled_for``) into the queue, in one
        transaction; returns their ids."""
        ...

    def create_backfill(self, schedule: ScheduleRecord, spec: BackfillSpec,
                        now: datetime) -> tuple[BackfillRecord, tuple[str, ...]]:
        """One execution (``source=backfill``) per occurrence of ``spec`` that has none yet,
        in bulk, in one transaction: started ones join the queue, held ones wait (the overlap
        plan of ``spec.overlap``); the record counts what was created, existing and
        skipped. Also returns the open executions the plan cancels (``cancel_other``: the
        caller cancels them; the occurrence kept is held until they end)."""
        ...

    def get_backfill(self, backfill_id: str) -> BackfillRecord:
        """With its executions counted by status; NotFound for an unknown id."""
        ...

    def list_backfills(self, schedule_id: str, limit: int = 50) -> list[BackfillRecord]:
        """The schedule's backfills, newest first, with their counts by status."""
        ...


class CancellationRepository(Protocol):
    def cancel(self, execution_id: str, now: datetime) -> tuple[ExecutionRecord, CancelOutcome]:
        """Cancel it in one transaction: a buffered or queued one ends ``cancelled`` at once; a
        running one gets ``cancel_requested_at`` (the reconciler stops it); a finished one is
        left as it is. :class:`NotFound` for an unknown id."""
        ...

    def cancel_requested(self, limit: int = 100) -> list[ExecutionRecord]:
        """Running executions with a cancel request, oldest request first."""
        ...


class ConcurrencyRepository(Protocol):
    """Concurrency limits. An execution is **in flight** from the moment it is handed to a run
    (a slot granted, or claimed by a batch run) until it ends; ``grant`` counts and marks in one
    transaction, so dispatchers on several machines never pass a limit."""

    def set_limit(self, environment: str, max_concurrent: int | None, now: datetime) -> None:
        """``environment``'s limit of executions in flight (None: no limit)."""
        ...

    def limits(self) -> dict[str, int]:
        """Every environment's limit, by environment (those without one are absent)."""
        ...

    def in_flight(self) -> dict[str, int]:
        """Executions in flight, per environment (environments with none are absent)."""
        ...

    def held(self, limit: int) -> list[QueuedTrigger]:
        """Queued triggers granted a slot whose run has not claimed them yet (highest priority,
        then oldest): the dispatcher hands them out before any other."""
        ...

    def grant(self, candidates: Sequence[QueuedTrigger], *, env_limits: Mapping[str, int],
              now: datetime) -> list[str]:
        """Of ``candidates`` (in dispatch order), the ids that may run now: those already
        holding a slot, then each while its environment (``env_limits``) and its concurrency
        key (the workflow's ``key_limit``, default 1) have room; those granted now are marked
        in flight. The others wait."""
        ...

"""The store facade: one object holding a repository per aggregate.

``Store(url)`` opens the SQL store (SQLite or PostgreSQL) or, for a ``memory://NAME`` URL, the
in-memory one (:mod:`orchestrator.store.memory`; one state per name per process). Services use
the repositories (``store.executions``, ``store.queue``, …), typed by the protocols of
:mod:`orchestrator.store.interfaces`.

The flat methods (``store.get_execution(...)``) are one-line forwards to those repositories,
kept so that the callers written before the split (and fault injection that wraps the facade,
``tests/dagster/faults.py``) work unchanged. They carry no logic; a new operation goes on its
repository, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa

from orchestrator.store.interfaces import (
    AccessRepository,
    AdmissionRepository,
    AlertRepository,
    BatchRepository,
    CancellationRepository,
    ConcurrencyRepository,
    ExecutionRepository,
    OccurrenceRepository,
    QueueRepository,
    RetentionRepository,
    ScheduleRepository,
    WorkflowRepository,
)
from orchestrator.store.interfaces import Advance as Advance  # re-exported: its old home
from orchestrator.store.uow import Database

P = ParamSpec("P")
R = TypeVar("R")
MEMORY_SCHEME = "memory://"


def _forward(repository: str, method: Callable[Concatenate[Any, P], R]
             ) -> Callable[Concatenate[Store, P], R]:
    """``Store.<name>`` calling ``store.<repository>.<name>`` (typed like the protocol's)."""
    name = method.__name__

    def forward(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return getattr(getattr(self, repository), name)(*args, **kwargs)  # type: ignore[no-any-return]

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = method.__doc__
    return forward


class Store:
    """The orchestrator store on one URL: SQL (SQLite, PostgreSQL) or ``memory://NAME``."""

    workflows: WorkflowRepository
    schedules: ScheduleRepository
    executions: ExecutionRepository
    queue: QueueRepository
    batches: BatchRepository
    admission: AdmissionRepository
    alerts: AlertRepository
    access: AccessRepository
    retention: RetentionRepository
    cancellation: CancellationRepository
    concurrency: ConcurrencyRepository
    occurrences: OccurrenceRepository

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith(MEMORY_SCHEME):
            from orchestrator.store.memory import memory_state, open_memory

            self._db: Database | None = None
            open_memory(self, memory_state(url))
        else:
            from orchestrator.store.sql import open_sql

            self._db = open_sql(self, url)

    @property
    def db(self) -> Database:
        """The SQL unit of work (raw SQL in tests and benchmarks); the in-memory store has none."""
        if self._db is None:
            raise TypeError(f"the in-memory store {self.url!r} has no SQL database")
        return self._db

    @property
    def engine(self) -> sa.Engine:
        return self.db.engine

    @property
    def is_sql(self) -> bool:
        return self._db is not None

    # One-line forwards (see the module docstring).
    apply_workflow = _forward("workflows", WorkflowRepository.apply_workflow)
    get_workflow = _forward("workflows", WorkflowRepository.get_workflow)
    list_workflows = _forward("workflows", WorkflowRepository.list_workflows)
    delete_workflow = _forward("workflows", WorkflowRepository.delete_workflow)

    create_schedule = _forward("schedules", ScheduleRepository.create_schedule)
    get_schedule = _forward("schedules", ScheduleRepository.get_schedule)
    list_schedules = _forward("schedules", ScheduleRepository.list_schedules)
    pause_schedule = _forward("schedules", ScheduleRepository.pause_schedule)
    resume_schedule = _forward("schedules", ScheduleRepository.resume_schedule)
    delete_schedule = _forward("schedules", ScheduleRepository.delete_schedule)
    due_schedules = _forward("schedules", ScheduleRepository.due_schedules)
    next_due_at = _forward("schedules", ScheduleRepository.next_due_at)
    advance_schedule = _forward("schedules", ScheduleRepository.advance_schedule)
    advance_schedules = _forward("schedules", ScheduleRepository.advance_schedules)
    schedules_by_id = _forward("schedules", ScheduleRepository.schedules_by_id)

    create_execution = _forward("executions", ExecutionRepository.create_execution)
    get_execution = _forward("executions", ExecutionRepository.get_execution)
    executions_by_id = _forward("executions", ExecutionRepository.executions_by_id)
    list_executions = _forward("executions", ExecutionRepository.list_executions)
    start_execution = _forward("executions", ExecutionRepository.start_execution)
    open_execution = _forward("executions", ExecutionRepository.open_execution)
    finish_execution = _forward("executions", ExecutionRepository.finish_execution)
    heartbeat = _forward("executions", ExecutionRepository.heartbeat)
    stale_executions = _forward("executions", ExecutionRepository.stale_executions)
    record_block = _forward("executions", ExecutionRepository.record_block)

    queued_triggers = _forward("queue", QueueRepository.queued_triggers)
    mark_dispatched = _forward("queue", QueueRepository.mark_dispatched)

    record_alert = _forward("alerts", AlertRepository.record_alert)
    list_alerts = _forward("alerts", AlertRepository.list_alerts)
    alerts_to_deliver = _forward("alerts", AlertRepository.alerts_to_deliver)
    claim_alert_delivery = _forward("alerts", AlertRepository.claim_alert_delivery)
    record_alert_delivery = _forward("alerts", AlertRepository.record_alert_delivery)

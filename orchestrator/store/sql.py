"""Wiring of the SQL repositories on one database (the facade's ``Store(url)`` for SQLite and
PostgreSQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.store.access import AccessStore
from orchestrator.store.alerts import SqlAlerts
from orchestrator.store.batches import RunBatches
from orchestrator.store.cancellation import SqlCancellation
from orchestrator.store.concurrency import SqlConcurrency
from orchestrator.store.executions import SqlExecutions
from orchestrator.store.fairness import FairQueue
from orchestrator.store.ingest import IngestStore
from orchestrator.store.occurrences import SqlOccurrences
from orchestrator.store.retention import SqlRetention
from orchestrator.store.schedules import SqlSchedules
from orchestrator.store.uow import Database
from orchestrator.store.workflows import SqlWorkflows

if TYPE_CHECKING:
    from orchestrator.store.store import Store


def open_sql(store: Store, url: str) -> Database:
    """Give ``store`` the SQL repositories on ``url``; returns their database."""
    db = Database(url)
    store.workflows = SqlWorkflows(db)
    store.schedules = SqlSchedules(db, store.workflows)
    store.executions = SqlExecutions(db)
    store.queue = FairQueue(db)
    store.batches = RunBatches(db)
    store.admission = IngestStore(db, store.executions)
    store.alerts = SqlAlerts(db)
    store.access = AccessStore(db, store.workflows)
    store.retention = SqlRetention(db)
    store.cancellation = SqlCancellation(db)
    store.concurrency = SqlConcurrency(db)
    store.occurrences = SqlOccurrences(db)
    return db

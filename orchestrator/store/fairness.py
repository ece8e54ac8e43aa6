"""Fair reads of the queue and the burst buffer: round robin across environments (every
environment's oldest, then every environment's second oldest, ...), oldest first within one.
One burst of one tenant cannot hold back another tenant's single trigger beyond one page.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.records import QueuedTrigger, TriggerStatus
from orchestrator.store import tables as t
from orchestrator.store.store import Store, _translated, insert_execution

BUFFER_STUCK_KIND = "buffer_stuck"
log = logging.getLogger(__name__)


def _round_robin(table: sa.Table, where: Any, limit: int) -> sa.Select[Any]:
    """Rows of ``table`` matching ``where``: at most ``limit``, interleaved by environment."""
    rank = sa.func.row_number().over(partition_by=table.c.environment,
                                     order_by=(table.c.created_at, table.c.execution_id))
    inner = sa.select(table, rank.label("rank")).where(where).subquery()
    return (sa.select(*[inner.c[c.name] for c in table.columns])
            .where(inner.c.rank <= limit)
            .order_by(inner.c.rank, inner.c.created_at, inner.c.execution_id).limit(limit))


class FairQueue:
    """The queue and buffer operations of the dispatcher, on one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @_translated("read queued triggers")
    def queued(self, now: datetime, limit: int) -> list[QueuedTrigger]:
        """Queued triggers that may start now (debounced ones wait for ``available_at``)."""
        q = t.queued_triggers
        due = (q.c.status == TriggerStatus.QUEUED.value) & (
            q.c.available_at.is_(None) | (q.c.available_at <= now))
        with self.store._read() as conn:
            return [QueuedTrigger(**{**r._asdict(), "status": TriggerStatus(r.status)})
                    for r in conn.execute(_round_robin(q, due, limit))]

    @_translated("drain the burst buffer")
    def drain(self, limit: int) -> list[str]:
        """Move up to ``limit`` buffered triggers into the queue, fairly; returns their ids.
        Each keeps the correlation and ``created_at`` it got at ingestion."""
        b = t.burst_buffer
        with self.store._write() as conn:
            rows = list(conn.execute(_round_robin(b, sa.true(), limit)))
            for row in rows:
                correlation = Correlation(
                    execution_id=row.execution_id, request_id=row.request_id,
                    source=Source(row.source), workflow=row.workflow,
                    environment=row.environment, trigger_id=row.trigger_id,
                    idempotency_key=row.idempotency_key,
                    parent_execution_id=row.parent_execution_id, payload=row.payload)
                try:
                    with conn.begin_nested():
                        insert_execution(conn, correlation, row.created_at, enqueue=True,
                                         batch_id=row.batch_id)
                except IntegrityError:
                    pass  # already materialized by an overlapping evaluation
            conn.execute(b.delete().where(b.c.execution_id.in_([r.execution_id for r in rows])))
            return [r.execution_id for r in rows]

    @_translated("check the burst buffer")
    def alert_stuck(self, now: datetime, older_than: timedelta, limit: int = 100) -> int:
        """An entry buffered longer than ``older_than`` raises one alert (it never expires).
        Returns the alerts created."""
        b, a = t.burst_buffer, t.alerts
        created = 0
        with self.store._write() as conn:
            rows = conn.execute(sa.select(b).where(
                b.c.created_at < now - older_than,
                ~sa.exists().where(a.c.execution_id == b.c.execution_id,
                                   a.c.kind == BUFFER_STUCK_KIND))
                .order_by(b.c.created_at).limit(limit)).all()
            for row in rows:
                waited = int((now - row.created_at).total_seconds())
                try:
                    with conn.begin_nested():
                        conn.execute(a.insert().values(
                            execution_id=row.execution_id, kind=BUFFER_STUCK_KIND,
                            message=(f"execution {row.execution_id} of {row.environment}/"
                                     f"{row.workflow} has waited {waited}s in the burst "
                                     "buffer; is queued_trigger_sensor running?"),
                            details={"request_id": row.request_id, "waited_seconds": waited,
                                     "source": row.source},
                            created_at=now, environment=row.environment,
                            workflow=row.workflow))
                    created += 1
                    log.error("alert %s: execution %s of %s/%s has waited %ss in the burst buffer",
                              BUFFER_STUCK_KIND, row.execution_id, row.environment, row.workflow,
                              waited, extra={"execution_id": row.execution_id,
                                             "request_id": row.request_id})
                except IntegrityError:
                    pass
        return created

    @_translated("measure dispatch lag")
    def lag(self, now: datetime) -> dict[str, float]:
        """Per environment, seconds the oldest trigger that could start has waited (queue or
        buffer); environments with nothing waiting are absent."""
        q, b = t.queued_triggers, t.burst_buffer
        oldest: dict[str, datetime] = {}
        with self.store._read() as conn:
            for env, first in conn.execute(
                    sa.select(q.c.environment, sa.func.min(q.c.created_at))
                    .where(q.c.status == TriggerStatus.QUEUED.value,
                           q.c.available_at.is_(None) | (q.c.available_at <= now))
                    .group_by(q.c.environment)):
                oldest[env] = first
            for env, first in conn.execute(sa.select(b.c.environment,
                                                     sa.func.min(b.c.created_at))
                                           .group_by(b.c.environment)):
                oldest[env] = min(first, oldest.get(env, first))
        return {env: max(0.0, (now - _aware(first)).total_seconds())
                for env, first in oldest.items()}


def _aware(value: datetime) -> datetime:
    # Aggregates bypass the column type on SQLite: min() comes back as text or naive.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value

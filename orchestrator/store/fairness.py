"""Fair reads of the queue and the burst buffer: round robin across environments (every
environment's oldest, then every environment's second oldest, ...), oldest first within one.
One burst of one tenant cannot hold back another tenant's single trigger beyond one page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orchestrator.domain.correlation import Correlation
from orchestrator.domain.records import ExecutionStatus, QueuedTrigger, TriggerStatus
from orchestrator.store import tables as t
from orchestrator.store.executions import expire_overdue, insert_execution
from orchestrator.store.interfaces import BUFFER_STUCK_KIND, KIND_QUEUE, BufferedTrigger
from orchestrator.store.uow import Database, translated

__all__ = ["BUFFER_STUCK_KIND", "BufferedTrigger", "FairQueue"]


def _round_robin(table: sa.Table, where: Any, limit: int, block: int = 1) -> sa.Select[Any]:
    """Rows of ``table`` matching ``where``: at most ``limit``, interleaved by environment in
    blocks of ``block`` (every environment's ``block`` first — highest priority, then oldest —,
    the environment waiting longest first, then every environment's next ``block``, ...).
    ``block`` > 1 lets a page fill whole batches of one environment without one tenant's burst
    holding back another's trigger; priorities order an environment's own triggers only."""
    rank = sa.func.row_number().over(partition_by=table.c.environment,
                                     order_by=(table.c.priority.desc(), table.c.created_at,
                                               table.c.execution_id))
    head = sa.func.min(table.c.created_at).over(partition_by=table.c.environment)
    inner = sa.select(table, rank.label("rank"), head.label("head")).where(where).subquery()
    return (sa.select(*[inner.c[c.name] for c in table.columns])
            .where(inner.c.rank <= limit)
            .order_by((inner.c.rank - 1) // block, inner.c.head, inner.c.environment,
                      inner.c.rank).limit(limit))


def _startable(now: datetime) -> Any:
    """Queued triggers that may start now (debounced ones wait for ``available_at``)."""
    q = t.queued_triggers
    return (q.c.status == TriggerStatus.QUEUED.value) & (
        q.c.available_at.is_(None) | (q.c.available_at <= now))


class FairQueue:
    """The queue repository (queued triggers and the burst buffer) on one
    :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @translated("read queued triggers")
    def queued_triggers(self, limit: int) -> list[QueuedTrigger]:
        q = t.queued_triggers
        with self.db.read() as conn:
            rows = conn.execute(sa.select(q).where(q.c.status == TriggerStatus.QUEUED.value)
                                .order_by(q.c.created_at, q.c.execution_id).limit(limit))
            return [QueuedTrigger(**{**r._asdict(), "status": TriggerStatus(r.status)})
                    for r in rows]

    @translated("mark triggers dispatched")
    def mark_dispatched(self, execution_ids: Sequence[str], now: datetime) -> int:
        if not execution_ids:
            return 0
        q = t.queued_triggers
        with self.db.write() as conn:
            return conn.execute(q.update().where(
                q.c.execution_id.in_(list(execution_ids)),
                q.c.status == TriggerStatus.QUEUED.value)
                .values(status=TriggerStatus.DISPATCHED.value, dispatched_at=now)).rowcount

    @translated("read queued triggers")
    def queued(self, now: datetime, limit: int, block: int = 1) -> list[QueuedTrigger]:
        """Queued triggers that may start now (debounced ones wait for ``available_at``) and
        that no batch has claimed."""
        unclaimed = _startable(now) & t.queued_triggers.c.run_batch_id.is_(None)
        with self.db.read() as conn:
            return [QueuedTrigger(**{**r._asdict(), "status": TriggerStatus(r.status)})
                    for r in conn.execute(_round_robin(t.queued_triggers, unclaimed, limit,
                                                       block))]

    @translated("drain the burst buffer")
    def drain(self, limit: int) -> list[str]:
        """Move up to ``limit`` buffered triggers into the queue, fairly; returns their ids.
        Each keeps the correlation and ``created_at`` it got at ingestion."""
        b = t.burst_buffer
        with self.db.write() as conn:
            rows = list(conn.execute(_round_robin(b, sa.true(), limit)))
            for row in rows:
                correlation = Correlation.from_row(row)
                try:
                    with conn.begin_nested():
                        insert_execution(conn, correlation, row.created_at, enqueue=True,
                                         batch_id=row.batch_id, not_before=row.not_before,
                                         expires_at=row.expires_at, priority=row.priority,
                                         concurrency_key=row.concurrency_key)
                except IntegrityError:
                    pass  # already materialized by an overlapping evaluation
            conn.execute(b.delete().where(b.c.execution_id.in_([r.execution_id for r in rows])))
            return [r.execution_id for r in rows]

    @translated("expire queued triggers")
    def expire(self, now: datetime, limit: int) -> list[str]:
        """Queued triggers whose TTL passed before they started end ``expired`` (up to
        ``limit``, oldest first); returns their ids."""
        e = t.executions
        overdue = sa.select(e.c.execution_id).where(
            e.c.status == ExecutionStatus.QUEUED.value, e.c.expires_at < now
        ).order_by(e.c.expires_at).limit(limit)
        with self.db.read() as conn:  # every tick: no write transaction unless one is due
            ids = list(conn.execute(overdue).scalars())
        if not ids:
            return []
        with self.db.write() as conn:  # expire_overdue re-checks each one is still queued
            return expire_overdue(conn, e.c.execution_id.in_(ids), now)

    @translated("check the burst buffer")
    def stuck(self, now: datetime, older_than: timedelta,
              limit: int = 100) -> list[BufferedTrigger]:
        """Entries buffered longer than ``older_than`` that have no ``buffer_stuck`` alert yet,
        oldest first (an entry never expires; the caller raises the alert through the
        :class:`~orchestrator.alerts.Alerter`)."""
        b, a = t.burst_buffer, t.alerts
        with self.db.read() as conn:
            rows = conn.execute(sa.select(b).where(
                b.c.created_at < now - older_than,
                ~sa.exists().where(a.c.execution_id == b.c.execution_id,
                                   a.c.kind == BUFFER_STUCK_KIND))
                .order_by(b.c.created_at).limit(limit)).all()
        return [BufferedTrigger(**Correlation.row_values(r), payload=r.payload,
                                batch_id=r.batch_id, created_at=r.created_at) for r in rows]

    @translated("look for queued triggers")
    def next_startable_at(self, now: datetime) -> datetime | None:
        """When the queue dispatcher next has work: ``now`` when a trigger can start (queued and
        unclaimed, buffered, or in a batch whose run was not requested yet), the earliest
        ``available_at`` of debounced triggers, or None: nothing waits. One round trip."""
        q, b, batches = t.queued_triggers, t.burst_buffer, t.run_batches
        unclaimed = (q.c.status == TriggerStatus.QUEUED.value) & q.c.run_batch_id.is_(None)
        with self.db.read() as conn:
            ready, debounced = conn.execute(sa.select(
                sa.or_(sa.exists().where(_startable(now), q.c.run_batch_id.is_(None)),
                       sa.exists().where(b.c.execution_id.is_not(None)),
                       sa.exists().where(batches.c.kind == KIND_QUEUE,
                                         batches.c.dispatched_at.is_(None))),
                sa.select(sa.func.min(q.c.available_at)).where(
                    unclaimed, q.c.available_at > now).scalar_subquery())).one()
        if ready:
            return now
        return _aware(debounced) if debounced is not None else None

    @translated("measure dispatch lag")
    def lag(self, now: datetime) -> dict[str, float]:
        """Per environment, seconds the oldest trigger that could start has waited (queue or
        buffer); environments with nothing waiting are absent."""
        q, b = t.queued_triggers, t.burst_buffer
        oldest: dict[str, datetime] = {}
        with self.db.read() as conn:
            for env, first in conn.execute(
                    sa.select(q.c.environment, sa.func.min(q.c.created_at))
                    .where(_startable(now)).group_by(q.c.environment)):
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

"""Fair reads of the queue and the burst buffer: round robin across environments (every
environment's oldest, then every environment's second oldest, ...), oldest first within one.
One burst of one tenant cannot hold back another tenant's single trigger beyond one page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orchestrator.domain.correlation import Correlation
from orchestrator.domain.records import QueuedTrigger, TriggerStatus
from orchestrator.store import tables as t
from orchestrator.store.store import Store, _translated, insert_execution

BUFFER_STUCK_KIND = "buffer_stuck"


def _round_robin(table: sa.Table, where: Any, limit: int, block: int = 1) -> sa.Select[Any]:
    """Rows of ``table`` matching ``where``: at most ``limit``, interleaved by environment in
    blocks of ``block`` (every environment's ``block`` oldest, the environment waiting longest
    first, then every environment's next ``block``, ...). ``block`` > 1 lets a page fill whole
    batches of one environment without one tenant's burst holding back another's trigger."""
    rank = sa.func.row_number().over(partition_by=table.c.environment,
                                     order_by=(table.c.created_at, table.c.execution_id))
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


@dataclass(frozen=True, kw_only=True)
class BufferedTrigger(Correlation):
    """One burst-buffer entry: its correlation, the trigger-batch request it came in and when it
    was buffered."""

    batch_id: str | None
    created_at: datetime


class FairQueue:
    """The queue and buffer operations of the dispatcher, on one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @_translated("read queued triggers")
    def queued(self, now: datetime, limit: int, block: int = 1) -> list[QueuedTrigger]:
        """Queued triggers that may start now (debounced ones wait for ``available_at``) and
        that no batch has claimed."""
        unclaimed = _startable(now) & t.queued_triggers.c.run_batch_id.is_(None)
        with self.store._read() as conn:
            return [QueuedTrigger(**{**r._asdict(), "status": TriggerStatus(r.status)})
                    for r in conn.execute(_round_robin(t.queued_triggers, unclaimed, limit,
                                                       block))]

    @_translated("drain the burst buffer")
    def drain(self, limit: int) -> list[str]:
        """Move up to ``limit`` buffered triggers into the queue, fairly; returns their ids.
        Each keeps the correlation and ``created_at`` it got at ingestion."""
        b = t.burst_buffer
        with self.store._write() as conn:
            rows = list(conn.execute(_round_robin(b, sa.true(), limit)))
            for row in rows:
                correlation = Correlation.from_row(row)
                try:
                    with conn.begin_nested():
                        insert_execution(conn, correlation, row.created_at, enqueue=True,
                                         batch_id=row.batch_id)
                except IntegrityError:
                    pass  # already materialized by an overlapping evaluation
            conn.execute(b.delete().where(b.c.execution_id.in_([r.execution_id for r in rows])))
            return [r.execution_id for r in rows]

    @_translated("check the burst buffer")
    def stuck(self, now: datetime, older_than: timedelta,
              limit: int = 100) -> list[BufferedTrigger]:
        """Entries buffered longer than ``older_than`` that have no ``buffer_stuck`` alert yet,
        oldest first (an entry never expires; the caller raises the alert through the
        :class:`~orchestrator.alerts.Alerter`)."""
        b, a = t.burst_buffer, t.alerts
        with self.store._read() as conn:
            rows = conn.execute(sa.select(b).where(
                b.c.created_at < now - older_than,
                ~sa.exists().where(a.c.execution_id == b.c.execution_id,
                                   a.c.kind == BUFFER_STUCK_KIND))
                .order_by(b.c.created_at).limit(limit)).all()
        return [BufferedTrigger(**Correlation.row_values(r), payload=r.payload,
                                batch_id=r.batch_id, created_at=r.created_at) for r in rows]

    @_translated("measure dispatch lag")
    def lag(self, now: datetime) -> dict[str, float]:
        """Per environment, seconds the oldest trigger that could start has waited (queue or
        buffer); environments with nothing waiting are absent."""
        q, b = t.queued_triggers, t.burst_buffer
        oldest: dict[str, datetime] = {}
        with self.store._read() as conn:
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

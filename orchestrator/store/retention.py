"""Retention on SQL: per-environment overrides, the terminal executions past them, and the rows
nothing can read any more. Every delete is bounded (``limit`` rows, or the ids given), so a
backlog of millions drains in short transactions that never hold up admission or dispatch.

Only terminal executions (``success``, ``error``, ``cancelled``) are ever selected, by
``finished_at`` (indexed); a queued or running execution is never touched, whatever its age.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.domain.burst import MAX_WINDOW
from orchestrator.domain.records import ExecutionStatus, TriggerStatus
from orchestrator.store import tables as t
from orchestrator.store.interfaces import Expired
from orchestrator.store.uow import Database, translated

TERMINAL = [s.value for s in ExecutionStatus if s.terminal]


class SqlRetention:
    def __init__(self, db: Database) -> None:
        self.db = db

    @translated("set the environment's retention")
    def set_retention(self, environment: str, retention: timedelta | None,
                      now: datetime) -> None:
        env = t.environments
        seconds = None if retention is None else int(retention.total_seconds())
        with self.db.write() as conn:
            updated = conn.execute(env.update().where(env.c.environment == environment)
                                   .values(retention_seconds=seconds, updated_at=now)).rowcount
            if not updated:
                conn.execute(env.insert().values(environment=environment,
                                                 retention_seconds=seconds, updated_at=now))

    @translated("read retention settings")
    def retentions(self) -> dict[str, timedelta]:
        env = t.environments
        with self.db.read() as conn:
            rows = conn.execute(sa.select(env.c.environment, env.c.retention_seconds).where(
                env.c.retention_seconds.is_not(None)).order_by(env.c.environment))
            return {r.environment: timedelta(seconds=r.retention_seconds) for r in rows}

    def _past_retention(self, conn: sa.Connection, now: datetime,
                        default: timedelta) -> sa.ColumnElement[bool]:
        e, env = t.executions, t.environments
        overrides = {r.environment: timedelta(seconds=r.retention_seconds)
                     for r in conn.execute(sa.select(env).where(
                         env.c.retention_seconds.is_not(None)))}
        ages = [sa.and_(e.c.environment == name, e.c.finished_at < now - keep)
                for name, keep in overrides.items()]
        ages.append(sa.and_(e.c.environment.not_in(list(overrides)),
                            e.c.finished_at < now - default) if overrides
                    else e.c.finished_at < now - default)
        return sa.and_(e.c.status.in_(TERMINAL), sa.or_(*ages))

    @translated("read expired executions")
    def expired(self, now: datetime, default: timedelta, limit: int) -> list[Expired]:
        e = t.executions
        with self.db.read() as conn:
            rows = conn.execute(sa.select(e.c.execution_id, e.c.run_batch_id)
                                .where(self._past_retention(conn, now, default))
                                .order_by(e.c.finished_at).limit(limit))
            return [Expired(execution_id=r.execution_id, run_batch_id=r.run_batch_id)
                    for r in rows]

    @translated("count expired executions")
    def count_expired(self, now: datetime, default: timedelta) -> int:
        e = t.executions
        with self.db.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(e).where(
                self._past_retention(conn, now, default))).scalar_one()

    @translated("read emptied batches")
    def emptied_batches(self, execution_ids: Sequence[str]) -> list[str]:
        with self.db.read() as conn:
            return self._emptied(conn, list(execution_ids))

    @translated("prune executions")
    def delete_executions(self, execution_ids: Sequence[str]) -> dict[str, int]:
        ids = list(execution_ids)
        if not ids:
            return {}
        e, b, q, k = t.executions, t.execution_blocks, t.queued_triggers, t.idempotency_keys
        a, links, batches = t.alerts, t.alert_executions, t.run_batches
        counts: Counter[str] = Counter()
        with self.db.write() as conn:
            emptied = self._emptied(conn, ids)
            incidents = list(conn.execute(sa.select(links.c.alert_id).distinct().where(
                links.c.execution_id.in_(ids))).scalars())
            counts["alert_links"] = conn.execute(
                links.delete().where(links.c.execution_id.in_(ids))).rowcount
            # An incident's alert goes with the last execution it names.
            counts["alerts"] = conn.execute(a.delete().where(sa.or_(
                a.c.execution_id.in_(ids),
                sa.and_(a.c.id.in_(incidents),
                        ~sa.exists().where(links.c.alert_id == a.c.id))))).rowcount
            counts["blocks"] = conn.execute(b.delete().where(b.c.execution_id.in_(ids))).rowcount
            counts["queue"] = conn.execute(q.delete().where(q.c.execution_id.in_(ids))).rowcount
            # By the key's primary key (the execution's key), still only the execution's own.
            keys = sa.select(e.c.environment, e.c.workflow, e.c.idempotency_key).where(
                e.c.execution_id.in_(ids), e.c.idempotency_key.is_not(None))
            counts["idempotency_keys"] = conn.execute(k.delete().where(
                sa.tuple_(k.c.environment, k.c.workflow, k.c.key).in_(keys),
                k.c.execution_id.in_(ids))).rowcount
            counts["executions"] = conn.execute(
                e.delete().where(e.c.execution_id.in_(ids))).rowcount
            if emptied:
                counts["batches"] = conn.execute(
                    batches.delete().where(batches.c.batch_id.in_(emptied))).rowcount
            self._count(conn, counts)
        return {kind: n for kind, n in counts.items() if n}

    def _emptied(self, conn: sa.Connection, ids: list[str]) -> list[str]:
        e = t.executions
        batches = set(conn.execute(sa.select(e.c.run_batch_id).where(
            e.c.execution_id.in_(ids), e.c.run_batch_id.is_not(None))).scalars())
        if not batches:
            return []
        kept = set(conn.execute(sa.select(e.c.run_batch_id).distinct().where(
            e.c.run_batch_id.in_(batches), e.c.execution_id.not_in(ids))).scalars())
        return sorted(batches - kept)

    @translated("prune housekeeping rows")
    def prune_housekeeping(self, now: datetime, limit: int, *,
                           dry_run: bool = False) -> dict[str, int]:
        e, q, k = t.executions, t.queued_triggers, t.idempotency_keys
        d, buf, bc = t.debounces, t.burst_buffer, t.burst_counts
        kinds: list[tuple[str, sa.Table, list[sa.Column], sa.ColumnElement[bool]]] = [
            ("idempotency_keys", k, [k.c.environment, k.c.workflow, k.c.key],
             k.c.expires_at < now),
            # A window is joined only while its execution waits in the queue (store/ingest.py).
            ("debounces", d, [d.c.environment, d.c.workflow, d.c.key],
             ~sa.exists().where(q.c.execution_id == d.c.execution_id,
                                q.c.status == TriggerStatus.QUEUED.value)),
            ("queue", q, [q.c.execution_id],
             sa.and_(q.c.status == TriggerStatus.DISPATCHED.value, sa.exists().where(
                 e.c.execution_id == q.c.execution_id, e.c.status.in_(TERMINAL)))),
            ("buffer", buf, [buf.c.execution_id],
             sa.exists().where(e.c.execution_id == buf.c.execution_id)),
            # (an environment admitting again sweeps its own; these are the ones that stopped)
            ("burst_counts", bc, [bc.c.environment, bc.c.bucket, bc.c.server],
             bc.c.bucket < now - MAX_WINDOW),
        ]
        counts: Counter[str] = Counter()
        with self.db.write() as conn:
            for kind, table, key, gone in kinds:
                if dry_run:
                    counts[kind] = conn.execute(sa.select(sa.func.count()).select_from(table)
                                                .where(gone)).scalar_one()
                    continue
                page = sa.select(*key).where(gone).limit(limit)
                target = key[0] if len(key) == 1 else sa.tuple_(*key)
                counts[kind] = conn.execute(table.delete().where(target.in_(page))).rowcount
            if not dry_run:
                self._count(conn, counts)
        return {kind: n for kind, n in counts.items() if n}

    def _count(self, conn: sa.Connection, counts: Counter[str]) -> None:
        totals = t.prune_totals
        for kind, n in counts.items():
            if not n:
                continue
            if not conn.execute(totals.update().where(totals.c.kind == kind)
                                .values(count=totals.c.count + n)).rowcount:
                conn.execute(totals.insert().values(kind=kind, count=n))

    @translated("read prune totals")
    def prune_totals(self) -> dict[str, int]:
        totals = t.prune_totals
        with self.db.read() as conn:
            return {kind: count for kind, count in conn.execute(
                sa.select(totals.c.kind, totals.c.count).order_by(totals.c.kind)).tuples()}

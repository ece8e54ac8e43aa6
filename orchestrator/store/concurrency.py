"""Concurrency limits on SQL: an environment's ``max_concurrent`` (``orch_environments``), the
executions in flight (the partial index ``orch_ix_executions_in_flight``), and the grant of
concurrency slots to waiting triggers, counted and marked in one transaction.

Dispatchers on several machines (or overlapping sensor evaluations) never grant past a limit:
on PostgreSQL a grant holds a transaction-scoped advisory lock per environment (taken in name
order, so two grants cannot deadlock) while it counts and marks; on SQLite the write
transaction (``BEGIN IMMEDIATE``) is the database's single writer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from orchestrator.domain.concurrency import Candidate, KeyScope, grantable, key_limit
from orchestrator.domain.records import ExecutionStatus, QueuedTrigger, TriggerStatus
from orchestrator.store import tables as t
from orchestrator.store.uow import Database, translated

IN_FLIGHT = sa.text(t.IN_FLIGHT_SQL)


class SqlConcurrency:
    """The concurrency repository on one :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @translated("set the environment's concurrency limit")
    def set_limit(self, environment: str, max_concurrent: int | None, now: datetime) -> None:
        env = t.environments
        with self.db.write() as conn:
            updated = conn.execute(env.update().where(env.c.environment == environment)
                                   .values(max_concurrent=max_concurrent, updated_at=now)
                                   ).rowcount
            if not updated:
                conn.execute(env.insert().values(environment=environment,
                                                 max_concurrent=max_concurrent, updated_at=now))

    @translated("read concurrency limits")
    def limits(self) -> dict[str, int]:
        env = t.environments
        with self.db.read() as conn:
            return {r.environment: r.max_concurrent for r in conn.execute(
                sa.select(env.c.environment, env.c.max_concurrent)
                .where(env.c.max_concurrent.is_not(None)))}

    @translated("count executions in flight")
    def in_flight(self) -> dict[str, int]:
        e = t.executions
        with self.db.read() as conn:
            return {r.environment: r.n for r in conn.execute(
                sa.select(e.c.environment, sa.func.count().label("n")).where(IN_FLIGHT)
                .group_by(e.c.environment))}

    @translated("read triggers holding a concurrency slot")
    def held(self, limit: int) -> list[QueuedTrigger]:
        e, q = t.executions, t.queued_triggers
        holding = sa.select(e.c.execution_id).where(
            IN_FLIGHT, e.c.status == ExecutionStatus.QUEUED.value, e.c.slot_at.is_not(None),
            e.c.run_batch_id.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(sa.select(q).where(
                q.c.execution_id.in_(holding), q.c.status == TriggerStatus.QUEUED.value,
                q.c.run_batch_id.is_(None))
                .order_by(q.c.priority.desc(), q.c.created_at, q.c.execution_id).limit(limit))
            return [QueuedTrigger(**{**r._asdict(), "status": TriggerStatus(r.status)})
                    for r in rows]

    @translated("grant concurrency slots")
    def grant(self, candidates: Sequence[QueuedTrigger], *, env_limits: Mapping[str, int],
              now: datetime) -> list[str]:
        if not candidates:
            return []
        e = t.executions
        ids = [c.execution_id for c in candidates]
        environments = sorted({c.environment for c in candidates})
        with self.db.write() as conn:
            if conn.dialect.name == "postgresql":
                for name in environments:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
                        sa.func.hashtext("orch_concurrency:" + name))))
            rows = {r.execution_id: r for r in conn.execute(
                sa.select(e.c.execution_id, e.c.status, e.c.slot_at)
                .where(e.c.execution_id.in_(ids)))}
            waiting = [Candidate(execution_id=c.execution_id, environment=c.environment,
                                 workflow=c.workflow, concurrency_key=c.concurrency_key,
                                 holds_slot=rows[c.execution_id].slot_at is not None)
                       for c in candidates if c.execution_id in rows
                       and rows[c.execution_id].status == ExecutionStatus.QUEUED.value]
            scopes = sorted({(c.environment, c.workflow, c.concurrency_key) for c in waiting
                             if c.concurrency_key is not None})
            granted = grantable(
                waiting, env_limits={k: v for k, v in env_limits.items() if k in environments},
                key_limits=_key_limits(conn, {(env, wf) for env, wf, _ in scopes}),
                env_in_flight=_env_counts(conn, [n for n in environments if n in env_limits]),
                key_in_flight=_key_counts(conn, scopes))
            fresh = [c.execution_id for c in waiting if not c.holds_slot
                     and c.execution_id in set(granted)]
            if fresh:
                conn.execute(e.update().where(e.c.execution_id.in_(fresh),
                                              e.c.status == ExecutionStatus.QUEUED.value,
                                              e.c.slot_at.is_(None)).values(slot_at=now))
        return granted


def _env_counts(conn: sa.Connection, environments: Sequence[str]) -> dict[str, int]:
    if not environments:
        return {}
    e = t.executions
    return {r.environment: r.n for r in conn.execute(
        sa.select(e.c.environment, sa.func.count().label("n"))
        .where(IN_FLIGHT, e.c.environment.in_(list(environments)))
        .group_by(e.c.environment))}


def _key_counts(conn: sa.Connection, scopes: Sequence[KeyScope]) -> dict[KeyScope, int]:
    if not scopes:
        return {}
    e = t.executions
    return {(r.environment, r.workflow, r.concurrency_key): r.n for r in conn.execute(
        sa.select(e.c.environment, e.c.workflow, e.c.concurrency_key,
                  sa.func.count().label("n"))
        .where(IN_FLIGHT, sa.tuple_(e.c.environment, e.c.workflow, e.c.concurrency_key)
               .in_(list(scopes)))
        .group_by(e.c.environment, e.c.workflow, e.c.concurrency_key))}


def _key_limits(conn: sa.Connection, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Each workflow's ``concurrency.key_limit`` (its current version)."""
    if not pairs:
        return {}
    w, v = t.workflows, t.workflow_versions
    rows: Any = conn.execute(
        sa.select(w.c.environment, w.c.name, v.c.document)
        .join(v, (v.c.workflow_id == w.c.id) & (v.c.version == w.c.current_version))
        .where(sa.tuple_(w.c.environment, w.c.name).in_(sorted(pairs))))
    return {(r.environment, r.name): key_limit(r.document) for r in rows}

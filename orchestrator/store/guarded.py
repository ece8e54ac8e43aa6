"""Admissions written by one guarded statement in autocommit: one round trip, where the full
admission transaction (``ingest.IngestStore``) takes four (begin, the workflows with the burst
gate's window, the inserts, commit). Each statement carries as its condition what the full
path would read, and writes all of its rows or none; when it writes none, the full path
decides (it trips, buffers or refuses). Two of them:

- :func:`buffer_while_tripped`: while an environment is tripped with more than half its hold
  to go, its plain triggers go to the burst buffer (SQLite and PostgreSQL);
- :func:`queue_while_open` (PostgreSQL): while nothing trips, a plain group is queued (its
  executions and queue entries) and added to this server's counter of the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from orchestrator.domain.burst import BurstPolicy
from orchestrator.store import prepared
from orchestrator.store import tables as t
from orchestrator.store.burst import (
    COUNT_COLUMNS,
    adding,
    count_parameters,
    window_bounds,
    window_count,
)
from orchestrator.store.workflows import live_workflows, pair_parameters, pair_values


def _all_live(pairs: int) -> sa.ColumnElement[bool]:
    """Every one of ``pairs`` (environment, workflow) parameters is a live workflow."""
    return sa.select(sa.func.count()).select_from(t.workflows).where(
        live_workflows(pair_parameters(pairs))).scalar_subquery() == pairs


def tripped_beyond(environments: Sequence[sa.BindParameter[str]]) -> sa.ColumnElement[bool]:
    """Every one of ``environments`` is tripped beyond the parameter ``until``: the guard of an
    admission that buffers without counting."""
    trips = t.burst_trips
    return sa.select(sa.func.count()).select_from(trips).where(
        trips.c.environment.in_(environments),
        trips.c.tripped_until > sa.bindparam("until")).scalar_subquery() == len(environments)


# Rows and (environment, workflow) pairs buffered at most by one guarded statement (more take
# the full path). Its parameters cost more Python than a multi-row insert's: in-process on
# PostgreSQL it took less CPU per group of 16 (4.4 against 5.2 ms), more per group of 40 (10.4
# against 8.5 ms), where the round trips it saves weigh less.
GUARDED_ROWS_MAX = 16
GUARDED_PAIRS_MAX = 4
_BUFFER_COLUMNS = tuple(column.name for column in t.burst_buffer.columns)


def _guarded_insert(dialect: sa.Dialect, rows: int, pairs: int, environments: int
                    ) -> sa.Insert:
    """``INSERT INTO orch_burst_buffer SELECT * FROM (VALUES <rows>) WHERE <all pairs live> AND
    <all environments tripped beyond until>`` (:func:`prepared.values_insert
    <orchestrator.store.prepared.values_insert>`), with parameters ``<column>_<row>``,
    ``live_environment_<i>``, ``live_workflow_<i>``, ``tripped_<i>`` and ``until`` (none of them
    a row's ``<column>_<row>``: a name shared is one parameter)."""
    live = _all_live(pairs)
    tripped = tripped_beyond([sa.bindparam(f"tripped_{i}") for i in range(environments)])
    return prepared.values_insert(t.burst_buffer, _BUFFER_COLUMNS, rows, dialect, live, tripped)


@lru_cache(maxsize=64)
def _guarded(dialect: sa.Dialect, rows: int, pairs: int, environments: int
             ) -> prepared.Prepared:
    return prepared.Prepared("buffer", _guarded_insert(dialect, rows, pairs, environments))


def buffer_while_tripped(conn: sa.Connection, rows: Sequence[dict[str, Any]],
                         pairs: Sequence[tuple[str, str]], until: datetime) -> bool:
    """Insert burst-buffer ``rows`` (at most :data:`GUARDED_ROWS_MAX`) in one statement if
    every (environment, workflow) of ``pairs`` is live and each of their environments is
    tripped beyond ``until``; whether it did (all of them, or none)."""
    environments = sorted({environment for environment, _ in pairs})
    slots = prepared.slots_for(len(rows))
    params = prepared.values_parameters(_BUFFER_COLUMNS, rows, slots)
    params.update(pair_values(pairs))
    params.update((f"tripped_{i}", environment) for i, environment in enumerate(environments))
    params["until"] = until
    statement = _guarded(conn.dialect, slots, len(pairs), len(environments))
    return prepared.execute(conn, statement, params).rowcount == len(rows)


# A plain group queued by one statement (PostgreSQL), guarded by what the full path would
# read: every workflow live and, where an environment is gated, the environment not
# tripped and its window with room for the whole group (the window's count plus the group at
# most the threshold); the statement also adds the group to this server's counter. When the
# guard does not hold, nothing is written and the full path decides (it trips, buffers or
# refuses). One round trip, where the full path's transaction takes four (begin, the workflows
# with the window, the inserts, commit).
def _open_guard(pairs: int, gated: bool) -> sa.ColumnElement[bool]:
    live = _all_live(pairs)
    if not gated:
        return live
    trips = t.burst_trips
    environment = sa.bindparam("open_env", type_=sa.String)
    counted = sa.func.floor(window_count(environment))  # (BurstWindow.count's int())
    tripped = sa.exists().where(trips.c.environment == environment,
                                trips.c.tripped_until > sa.bindparam("open_now",
                                                                     type_=t.UTCDateTime))
    room = counted + sa.cast(sa.bindparam("open_n", type_=sa.Integer), sa.Integer) \
        <= sa.cast(sa.bindparam("open_threshold", type_=sa.Integer), sa.Integer)
    return sa.and_(live, ~tripped, room)


def _guarded_count(guard: sa.ColumnElement[bool]) -> postgresql.Insert:
    """Add ``count_n`` to this server's counter (:func:`count_parameters`, prefix ``count_``)
    if ``guard`` holds."""
    values = sa.select(*(sa.cast(sa.bindparam(f"count_{name}", type_=kind), kind)
                         for name, kind in (("env", sa.String()), ("at", t.UTCDateTime()),
                                            ("by", sa.String()), ("n", sa.Integer())))
                       ).where(guard)
    return adding(postgresql.insert(t.burst_counts).from_select(list(COUNT_COLUMNS), values))


@lru_cache(maxsize=64)
def _opened(dialect: sa.Dialect, execution_columns: tuple[str, ...],
            queue_columns: tuple[str, ...], rows: int, pairs: int, gated: bool
            ) -> prepared.Prepared:
    guard = _open_guard(pairs, gated)
    executions: sa.Insert = prepared.values_insert(
        t.executions, execution_columns, rows, dialect, guard, prefix="t0_")
    statement: sa.Insert = prepared.values_insert(
        t.queued_triggers, queue_columns, rows, dialect, guard, prefix="t1_"
    ).add_cte(executions.cte("opened"))
    if gated:
        statement = statement.add_cte(_guarded_count(guard).cte("opened_count"))
    return prepared.Prepared("open", statement)


def queue_while_open(conn: sa.Connection, executions: Sequence[dict[str, Any]],
                     queued: Sequence[dict[str, Any]], pairs: Sequence[tuple[str, str]],
                     gate: tuple[str, BurstPolicy, int] | None, now: datetime,
                     server: str) -> bool:
    """Insert the executions and queue rows of a plain group (at most :data:`GUARDED_ROWS_MAX`,
    each row's columns the same) in one statement, if every (environment, workflow) of
    ``pairs`` is live and, where ``gate`` = (environment, policy, triggers of that environment)
    is given, the environment is not tripped and its window has room for the triggers (then
    counted for ``server``); whether it did (all of them, or none)."""
    slots = prepared.slots_for(len(executions))
    execution_columns, queue_columns = tuple(executions[0]), tuple(queued[0])
    params = prepared.values_parameters(execution_columns, executions, slots, "t0_")
    params.update(prepared.values_parameters(queue_columns, queued, slots, "t1_"))
    params.update(pair_values(pairs))
    if gate is not None:
        environment, policy, n = gate
        params.update(open_env=environment, open_now=now, open_n=n,
                      open_threshold=policy.threshold, **window_bounds(policy, now),
                      **count_parameters(environment, policy.bucket(now), server, n, "count_"))
    statement = _opened(conn.dialect, execution_columns, queue_columns, slots, len(pairs),
                        gate is not None)
    return prepared.execute(conn, statement, params).rowcount == len(queued)

"""The burst gate's window and trip, in the store (SQLite and PostgreSQL alike): every API server
process counts the same window. Read and written inside the admission transaction
(:mod:`orchestrator.store.ingest`), so the count includes every trigger committed before it.

The window is counted from the triggers themselves, with no counter to keep: the environment's
executions and burst-buffer entries created within it (each index range read stops at
``threshold + 1`` rows, in one statement, so one snapshot sees a buffered trigger that is being
moved to the queue exactly once). The trip is a row of ``orch_burst_trips`` per environment,
read with the transaction's workflows (:func:`with_trips`: no round trip of its own); the
statements are built once, not per transaction. While an environment is tripped with more than
half its hold to go, nothing is counted and its plain triggers are buffered by one guarded
statement (:func:`buffer_while_tripped`, used by ``ingest.IngestStore``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.domain.burst import BurstPolicy, BurstWindow
from orchestrator.domain.ingest import AdmissionJob
from orchestrator.store import prepared
from orchestrator.store import tables as t
from orchestrator.store.workflows import live_workflows, pair_parameters, pair_values


def with_trips(query: sa.Select[Any], environment: sa.ColumnElement[str]) -> sa.Select[Any]:
    """``query`` with each row's environment's trip end, ``burst_tripped_until`` (None: not
    tripped), as :func:`read_windows` wants the rows."""
    trips = t.burst_trips
    return query.outerjoin(trips, trips.c.environment == environment).add_columns(
        trips.c.tripped_until.label("burst_tripped_until"))


def tripped_beyond(environments: Sequence[sa.BindParameter[str]]) -> sa.ColumnElement[bool]:
    """Every one of ``environments`` is tripped beyond the parameter ``until``: the guard of an
    admission that buffers without counting."""
    trips = t.burst_trips
    return sa.select(sa.func.count()).select_from(trips).where(
        trips.c.environment.in_(environments),
        trips.c.tripped_until > sa.bindparam("until")).scalar_subquery() == len(environments)


def _counted(table: sa.Table) -> sa.ScalarSelect[int]:
    rows = (sa.select(sa.literal(1)).where(table.c.environment == sa.bindparam("environment"),
                                           table.c.created_at > sa.bindparam("horizon"))
            .limit(sa.bindparam("cap", type_=sa.Integer)).subquery())
    return sa.select(sa.func.count()).select_from(rows).scalar_subquery()


# The triggers of an environment in its window, up to the threshold + 1 in each table.
_COUNT = prepared.Prepared("window", sa.select(_counted(t.executions) + _counted(t.burst_buffer)))


def read_windows(conn: sa.Connection, rows: Iterable[Any], jobs: Sequence[AdmissionJob],
                 now: datetime) -> dict[str, BurstWindow]:
    """The window of every environment of ``rows`` (of :func:`with_trips`: the transaction's
    live workflows) in which a job is gated; its count is read only where it decides something.
    """
    policies: dict[str, BurstPolicy] = {job.environment: job.gate for job in jobs
                                        if job.gate is not None}
    trips = {row.environment: row.burst_tripped_until for row in rows
             if row.environment in policies}
    return {environment: _window(conn, environment, policies[environment], tripped_until, now)
            for environment, tripped_until in sorted(trips.items())}


def _window(conn: sa.Connection, environment: str, policy: BurstPolicy,
            tripped_until: datetime | None, now: datetime) -> BurstWindow:
    if tripped_until is not None and tripped_until - now > policy.hold / 2:
        # Tripped with more than half the hold to go: every gated trigger goes to the buffer
        # whatever the count, and a trip is only extended in its last half (trip_to_store), so
        # the window is not counted (a quarter of the admission writer's time in a burst).
        return BurstWindow(policy, now, counted=policy.threshold, tripped_until=tripped_until)
    count = prepared.execute(conn, _COUNT, {
        "environment": environment, "cap": policy.threshold + 1,
        "horizon": BurstWindow.horizon(policy, now)}).scalar()
    return BurstWindow(policy, now, counted=int(count or 0), tripped_until=tripped_until)


def store_trips(conn: sa.Connection, windows: dict[str, BurstWindow]) -> None:
    """Write the trips these windows started or extended (a later one stored meanwhile by
    another server is kept)."""
    trips = t.burst_trips
    for environment, window in windows.items():
        until = window.trip_to_store()
        if until is None:
            continue
        insert = (postgresql.insert(trips) if conn.dialect.name == "postgresql"
                  else sqlite.insert(trips)).values(environment=environment,
                                                    tripped_until=until)
        conn.execute(insert.on_conflict_do_update(
            index_elements=["environment"], set_={"tripped_until": insert.excluded.tripped_until},
            where=trips.c.tripped_until < insert.excluded.tripped_until))


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
    live = sa.select(sa.func.count()).select_from(t.workflows).where(
        live_workflows(pair_parameters(pairs))).scalar_subquery() == pairs
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

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
from orchestrator.store import tables as t
from orchestrator.store.workflows import live_workflows


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
_COUNT = sa.select(_counted(t.executions) + _counted(t.burst_buffer))


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
    count = conn.execute(_COUNT, {"environment": environment, "cap": policy.threshold + 1,
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
_BUFFER_COLUMNS = tuple(t.burst_buffer.columns)  # in the guarded statement's order


def slots_for(rows: int) -> int:
    """The rows of the guarded statement that holds ``rows``: the next power of two, so a few
    shapes serve every group (building and compiling one takes 7-15 ms, a stall of the writer
    and of its process's event loop, were each group size its own)."""
    return 1 << (rows - 1).bit_length()


@lru_cache(maxsize=64)
def _guarded_insert(dialect: sa.Dialect, rows: int, pairs: int, environments: int
                    ) -> sa.Insert:
    """``INSERT INTO orch_burst_buffer SELECT * FROM (VALUES <rows>) WHERE <all pairs live> AND
    <all environments tripped beyond until>``, with parameters ``<column>_<row>``,
    ``live_environment_<i>``, ``live_workflow_<i>``, ``tripped_<i>`` and ``until`` (none of them
    a row's ``<column>_<row>``: a name shared is one parameter): built once per shape.
    Rows whose ``execution_id`` is NULL are slots left empty (:func:`slots_for`).

    VALUES, not a UNION of SELECTs: PostgreSQL plans a UNION of 8 rows in 0.9 ms, VALUES in
    0.2 ms. Its first row tells PostgreSQL each column's type (a string without its length:
    the column checks it); SQLite takes the values as given. No expanding parameter: each
    execution would render the whole statement again."""
    postgres = dialect.name == "postgresql"

    def placeholder(column: sa.Column[Any], row: int) -> str:
        if not postgres or row:
            return f":{column.name}_{row}"
        kind = sa.String() if isinstance(column.type, sa.String) else column.type
        return f"CAST(:{column.name}_{row} AS {kind.compile(dialect=dialect)})"

    text = sa.text("VALUES " + ", ".join(
        "(" + ", ".join(placeholder(column, row) for column in _BUFFER_COLUMNS) + ")"
        for row in range(rows))).bindparams(*(
            sa.bindparam(f"{column.name}_{row}", type_=column.type)
            for row in range(rows) for column in _BUFFER_COLUMNS))
    values = text.columns(*(sa.column(f"column{i + 1}", column.type)
                            for i, column in enumerate(_BUFFER_COLUMNS))).subquery("v")
    live = sa.select(sa.func.count()).select_from(t.workflows).where(live_workflows([
        sa.tuple_(sa.bindparam(f"live_environment_{i}"), sa.bindparam(f"live_workflow_{i}"))
        for i in range(pairs)])).scalar_subquery() == pairs
    tripped = tripped_beyond([sa.bindparam(f"tripped_{i}") for i in range(environments)])
    filled = values.c[_BUFFER_COLUMNS.index(t.burst_buffer.c.execution_id)]
    return t.burst_buffer.insert().from_select(
        [column.name for column in _BUFFER_COLUMNS],
        sa.select(*values.c).where(filled.is_not(None), live, tripped))


def buffer_while_tripped(conn: sa.Connection, rows: Sequence[dict[str, Any]],
                         pairs: Sequence[tuple[str, str]], until: datetime) -> bool:
    """Insert burst-buffer ``rows`` (at most :data:`GUARDED_ROWS_MAX`) in one statement if
    every (environment, workflow) of ``pairs`` is live and each of their environments is
    tripped beyond ``until``; whether it did (all of them, or none)."""
    environments = sorted({environment for environment, _ in pairs})
    slots = slots_for(len(rows))
    params: dict[str, Any] = {f"{column.name}_{i}": row.get(column.name)
                              for i, row in enumerate(rows) for column in _BUFFER_COLUMNS}
    params.update((f"{column.name}_{i}", None)
                  for i in range(len(rows), slots) for column in _BUFFER_COLUMNS)
    for i, (environment, workflow) in enumerate(pairs):
        params[f"live_environment_{i}"], params[f"live_workflow_{i}"] = environment, workflow
    params.update((f"tripped_{i}", environment) for i, environment in enumerate(environments))
    params["until"] = until
    statement = _guarded_insert(conn.dialect, slots, len(pairs), len(environments))
    return conn.execute(statement, params).rowcount == len(rows)

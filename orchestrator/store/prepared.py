"""Statements prepared once per PostgreSQL connection, for the admission path's hot shapes.

psycopg2 sends each statement as text, and PostgreSQL parses, analyses and plans it every time:
the guarded buffer statement cost its backend 0.38 ms a time (one row), and 0.16 ms as
``EXECUTE`` of a statement ``PREPARE``d once on the connection (backend CPU from /proc over
3,000 statements; Python 0.15 against 0.10 ms). A :class:`Prepared` is one statement of a fixed
shape (no expanding parameter); :func:`execute` runs it as ``EXECUTE`` on PostgreSQL, preparing
it first on a connection that has not, and as itself on SQLite (whose driver keeps compiled
statements already).

Where a connection cannot keep prepared statements (behind a pooler in transaction mode, each
transaction may reach another server connection; or after ``DEALLOCATE ALL``), the first
``EXECUTE`` that finds none stops preparing on that connection, and the statement runs as itself
there from then on (so does a ``PREPARE`` that finds the name taken). In autocommit the
statement is then run as itself; inside a
transaction, which PostgreSQL has aborted, the error is raised (that transaction fails, once per
connection). ``PREPARE`` outlives a rollback, so a warm-up's rolled-back transaction prepares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property, lru_cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg2

InsertT = TypeVar("InsertT", bound=sa.Insert)
_KEPT = "orchestrator_prepared"  # the pooled connection's info: (DBAPI connection, names | None)
_DUPLICATE = "42P05"  # duplicate_prepared_statement
_UNKNOWN = "26000"  # invalid_sql_statement_name: no such prepared statement


class Prepared:
    """``statement`` (a fixed shape: every parameter named, none expanding), with its
    ``PREPARE`` text and the ``EXECUTE`` clause that runs it, built once. Its name is
    ``orch_<label>_`` and a digest of the statement's text, so a server connection shared by
    servers of different versions never runs another's statement.

    A statement that returns no rows (the admission's inserts) is executed as the driver's own
    ``EXECUTE`` text, its values put through their types' bind processors here
    (:meth:`driver`): SQLAlchemy's execution of the clause (its compiled cache, the
    parameters' processing, the compiled execution context) was a fifth of the admission
    writer's CPU for a group of one or two triggers (in-process, CPU per group of 1 and 2:
    0.24-0.26 and 0.31-0.33 ms through the clause, 0.22-0.24 and 0.21-0.28 ms so). A
    statement that returns rows keeps the clause: SQLAlchemy types its results."""

    def __init__(self, label: str, statement: sa.Insert | sa.Select[Any]) -> None:
        self.label = label
        self.statement = statement
        self._drivers: dict[type[sa.Dialect], tuple[str, list[_Bind]]] = {}

    @cached_property
    def _forms(self) -> tuple[str, str, sa.Executable, list[tuple[str, sa.BindParameter[Any]]]]:
        """(name, ``PREPARE`` text, ``EXECUTE`` clause, its parameters in order): compiled on
        first use on PostgreSQL (not at import, and never on SQLite)."""
        compiled = self.statement.compile(dialect=psycopg2.dialect(paramstyle="numeric_dollar"))
        text = str(compiled)
        name = f"orch_{self.label}_" + hashlib.sha256(text.encode()).hexdigest()[:16]
        binds = [(n, compiled.binds[n]) for n in dict.fromkeys(compiled.positiontup or [])]
        # A constant of the statement (a count compared with) carries its value.
        execute = sa.text(f"EXECUTE {name} (" + ", ".join(f":{n}" for n, _ in binds) + ")")
        execute = execute.bindparams(*(sa.bindparam(n, value=bind.value, type_=bind.type)
                                       for n, bind in binds))
        selected = getattr(self.statement, "selected_columns", None)
        if selected is None:
            return name, f"PREPARE {name} AS {text}", execute, binds
        return name, f"PREPARE {name} AS {text}", execute.columns(*(
            sa.column(column.key or f"column_{i}", column.type)
            for i, column in enumerate(selected))), binds

    @property
    def name(self) -> str:
        return self._forms[0]

    @property
    def prepare(self) -> str:
        return self._forms[1]

    @property
    def execute(self) -> sa.Executable:
        return self._forms[2]

    def driver(self, dialect: sa.Dialect) -> tuple[str, list[_Bind]] | None:
        """(the driver's ``EXECUTE`` text, each parameter's name, bind processor, constant and
        whether it is required) for a statement that returns no rows; None otherwise."""
        if getattr(self.statement, "selected_columns", None) is not None:
            return None
        driver = self._drivers.get(type(dialect))
        if driver is None:
            binds: list[_Bind] = [
                (n, bind.type.bind_processor(dialect), bind.value, bind.required)  # type: ignore[misc]
                for n, bind in self._forms[3]]
            sql = f"EXECUTE {self.name} (" + ", ".join("%s" for _ in binds) + ")"
            driver = self._drivers[type(dialect)] = (sql, binds)
        return driver


_Bind = tuple[str, Callable[[Any], Any] | None, Any, bool]


def _driver_values(binds: Sequence[_Bind], params: Mapping[str, Any]) -> tuple[Any, ...]:
    values = []
    for name, process, constant, required in binds:
        if name in params:
            value = params[name]
        elif required:
            raise sa.exc.InvalidRequestError(f"A value is required for bind parameter {name!r}")
        else:
            value = constant
        values.append(value if process is None else process(value))
    return tuple(values)


def execute(conn: sa.Connection, prepared: Prepared,
            params: Mapping[str, Any] | None = None) -> sa.CursorResult[Any]:
    """Run ``prepared`` with ``params`` on ``conn``: as ``EXECUTE`` on PostgreSQL (preparing
    it on this connection first if needed), as the statement itself elsewhere."""
    if conn.dialect.name == "postgresql":
        names = _names(conn)
        if names is not None:
            result = _executed(conn, prepared, params or {}, names)
            if result is not None:
                return result
    return conn.execute(prepared.statement, params)


# ------------------------------------------------------------------------ multi-row inserts
INSERT_ROWS_MAX = 16  # rows inserted by one prepared statement (more: a plain multi-row insert)


def slots_for(rows: int) -> int:
    """The rows of the :func:`values_insert` that holds ``rows``: the next power of two, so a
    few shapes serve every group (building and compiling one takes 7-15 ms, a stall of the
    writer and of its process's event loop, were each group size its own)."""
    return 1 << (rows - 1).bit_length()


def values_insert(table: sa.Table, columns: Sequence[str], rows: int, dialect: sa.Dialect,
                  *where: sa.ColumnElement[bool], prefix: str = "",
                  insert: Callable[[sa.Table], InsertT] = sa.insert) -> InsertT:  # type: ignore[assignment]
    """``INSERT INTO <table> (<columns>) SELECT * FROM (VALUES <rows>) WHERE <where>``, with
    parameters ``<prefix><column>_<row>`` (:func:`values_parameters`); rows whose first NOT NULL
    column is NULL are slots left empty (:func:`slots_for`).

    VALUES, not a UNION of SELECTs: PostgreSQL plans a UNION of 8 rows in 0.9 ms, VALUES in
    0.2 ms. ``insert`` makes the insert (a dialect's, for its ``ON CONFLICT``). Its first row
    tells PostgreSQL each column's type (a string without its length:
    the column checks it); SQLite takes the values as given. No expanding parameter: each
    execution would render the whole statement again."""
    postgres = dialect.name == "postgresql"
    types = [table.c[column].type for column in columns]

    def placeholder(column: str, kind: Any, row: int) -> str:
        if not postgres or row:
            return f":{prefix}{column}_{row}"
        kind = sa.String() if isinstance(kind, sa.String) else kind
        return f"CAST(:{prefix}{column}_{row} AS {kind.compile(dialect=dialect)})"

    text = sa.text("VALUES " + ", ".join(
        "(" + ", ".join(placeholder(column, kind, row) for column, kind in zip(
            columns, types, strict=True)) + ")" for row in range(rows))).bindparams(*(
            sa.bindparam(f"{prefix}{column}_{row}", type_=kind)
            for row in range(rows) for column, kind in zip(columns, types, strict=True)))
    values = text.columns(*(sa.column(f"column{i + 1}", kind)
                            for i, kind in enumerate(types))).subquery(f"{prefix}v")
    filled = values.c[_required(table, columns)]
    return insert(table).from_select(list(columns),
                                     sa.select(*values.c).where(filled.is_not(None), *where))


def _required(table: sa.Table, columns: Sequence[str]) -> int:
    """The index of the first of ``columns`` that ``table`` holds NOT NULL (-1: none)."""
    return next((i for i, column in enumerate(columns) if not table.c[column].nullable), -1)


def values_parameters(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], slots: int,
                      prefix: str = "") -> dict[str, Any]:
    """The parameters of a :func:`values_insert` of ``slots`` rows holding ``rows``."""
    params = {f"{prefix}{column}_{i}": row.get(column) for i, row in enumerate(rows)
              for column in columns}
    params.update((f"{prefix}{column}_{i}", None) for i in range(len(rows), slots)
                  for column in columns)
    return params


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each of the same columns) into ``table``: on PostgreSQL, up to
    :data:`INSERT_ROWS_MAX`, by a prepared :func:`values_insert`; otherwise one multi-row
    insert."""
    insert_tables(conn, [(table, rows)])


def insert_tables(conn: sa.Connection,
                  inserts: Sequence[tuple[sa.Table, Sequence[Mapping[str, Any]]]]) -> None:
    """Insert rows into several tables (each table's rows of the same columns). On PostgreSQL,
    where each holds up to :data:`INSERT_ROWS_MAX` rows, one prepared statement writes them all
    (every insert but the last a data-modifying ``WITH``: one round trip, where an admission
    inserting its executions and their queue entries took two); otherwise an insert per table
    (:func:`insert_rows`' rules)."""
    inserts = [(table, rows) for table, rows in inserts if rows]
    shapes = [(table, tuple(rows[0])) for table, rows in inserts]
    if conn.dialect.name != "postgresql" or any(
            len(rows) > INSERT_ROWS_MAX or _required(table, columns) < 0
            or any(tuple(row) != columns for row in rows)
            for (table, rows), (_, columns) in zip(inserts, shapes, strict=True)):
        for table, rows in inserts:
            conn.execute(table.insert(), list(rows))
        return
    if not inserts:
        return
    slots = tuple(slots_for(len(rows)) for _, rows in inserts)
    params: dict[str, Any] = {}
    for i, ((_, rows), (_, columns)) in enumerate(zip(inserts, shapes, strict=True)):
        params.update(values_parameters(columns, rows, slots[i], _prefix(i, len(inserts))))
    execute(conn, _insert(tuple(shapes), slots, conn.dialect), params)


def _prefix(i: int, inserts: int) -> str:
    return "" if inserts == 1 else f"t{i}_"


@lru_cache(maxsize=64)
def _insert(shapes: tuple[tuple[sa.Table, tuple[str, ...]], ...], slots: tuple[int, ...],
            dialect: sa.Dialect) -> Prepared:
    statements: list[sa.Insert] = [
        values_insert(table, columns, rows, dialect, prefix=_prefix(i, len(shapes)))
        for i, ((table, columns), rows) in enumerate(zip(shapes, slots, strict=True))]
    *first, last = statements
    for i, statement in enumerate(first):
        last = last.add_cte(statement.cte(f"inserted_{i}"))
    label = "insert_" + "_".join(map(str, slots))
    return Prepared(label, last)


def _names(conn: sa.Connection) -> set[str] | None:
    """The statements prepared on ``conn``'s DBAPI connection (None: it keeps none)."""
    fairy = conn.connection
    raw = fairy.dbapi_connection
    kept = fairy.info.get(_KEPT)
    if kept is None or kept[0] is not raw:  # a new connection, or one made again
        kept = fairy.info[_KEPT] = (raw, set())
    names: set[str] | None = kept[1]
    return names


def _executed(conn: sa.Connection, prepared: Prepared, params: Mapping[str, Any],
              names: set[str]) -> sa.CursorResult[Any] | None:
    try:
        if prepared.name not in names:
            conn.exec_driver_sql(prepared.prepare)
            names.add(prepared.name)
        driver = prepared.driver(conn.dialect)
        if driver is None:
            return conn.execute(prepared.execute, params)
        sql, binds = driver
        return conn.exec_driver_sql(sql, _driver_values(binds, params))
    except sa.exc.DBAPIError as exc:
        if _sqlstate(exc) not in (_DUPLICATE, _UNKNOWN):
            raise
        # The server connection is not the one this connection prepared on (a pooler): stop
        # preparing here. In a transaction, which PostgreSQL has aborted, that one fails.
        raw = conn.connection.dbapi_connection
        conn.connection.info[_KEPT] = (raw, None)
        if not getattr(raw, "autocommit", False):
            raise
        return None


def _sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    return getattr(exc.orig, "pgcode", None)

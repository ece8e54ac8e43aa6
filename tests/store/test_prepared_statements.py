"""Admission's hot statements prepared once per PostgreSQL connection: the second run sends
only ``EXECUTE``; a connection that loses its prepared statements (a pooler in transaction mode
hands it another server connection; ``DEALLOCATE ALL``) stops preparing and runs the statement
itself, losing nothing; SQLite runs the statement itself. Rows come back typed either way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from orchestrator.store import prepared
from orchestrator.store import tables as t
from orchestrator.store.engine import dispose_all, engine_for
from tests.conftest import NOW, SQL_BACKENDS

pytestmark = pytest.mark.backends(*SQL_BACKENDS)

_WORKFLOW = {"environment": "acme", "current_version": 1, "created_at": NOW, "updated_at": NOW}


def _rows(n: int, first: int = 0) -> list[dict[str, object]]:
    return [{**_WORKFLOW, "name": f"w{first + i}"} for i in range(n)]


def _names(conn: sa.Connection) -> list[str]:
    return sorted(conn.exec_driver_sql("SELECT name FROM pg_prepared_statements").scalars())


@pytest.fixture
def engine(store_url: str, store: object) -> Iterator[sa.Engine]:  # the store migrates
    dispose_all()  # new connections: none has prepared anything, or stopped preparing
    yield engine_for(store_url)
    dispose_all()


@contextmanager
def _autocommit(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in autocommit, as the guarded buffer statement runs (``Database.single``)."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.autocommit = True
        try:
            yield conn
        finally:
            raw.autocommit = False


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.workflows)).scalar_one())


def _sent(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: seen.append(statement.split()[0]))
    return seen


def test_rows_are_inserted_and_read_back_the_same_on_every_backend(engine: sa.Engine) -> None:
    read = prepared.Prepared("test_read", sa.select(t.workflows.c.name, t.workflows.c.created_at)
                             .where(t.workflows.c.environment == sa.bindparam("environment"))
                             .order_by(t.workflows.c.name))
    with engine.begin() as conn:
        prepared.insert_rows(conn, t.workflows, _rows(3))  # padded to 4 slots: one stays empty
        prepared.insert_rows(conn, t.workflows, _rows(1, first=3))
        rows = prepared.execute(conn, read, {"environment": "acme"}).all()
    assert [(row.name, row.created_at) for row in rows] == [(f"w{i}", NOW) for i in range(4)]


@pytest.mark.backends("postgres")
def test_a_statement_is_prepared_once_per_connection_then_only_executed(
        engine: sa.Engine) -> None:
    sent = _sent(engine)
    with engine.begin() as conn:
        prepared.insert_rows(conn, t.workflows, _rows(2))
        prepared.insert_rows(conn, t.workflows, _rows(2, first=2))
        assert [name for name in _names(conn) if name.startswith("orch_insert_2_")]
    assert sent[:3] == ["PREPARE", "EXECUTE", "EXECUTE"], sent
    assert _count(engine) == 4


@pytest.mark.backends("postgres")
def test_a_connection_that_lost_its_statements_runs_them_itself_and_stops_preparing(
        engine: sa.Engine) -> None:
    with _autocommit(engine) as conn:
        prepared.insert_rows(conn, t.workflows, _rows(1))
        conn.exec_driver_sql("DEALLOCATE ALL")  # what another server connection looks like
        sent = _sent(engine)
        prepared.insert_rows(conn, t.workflows, _rows(1, first=1))  # autocommit: run again
        prepared.insert_rows(conn, t.workflows, _rows(1, first=2))
        assert sent[0] == "EXECUTE" and sent[1:] == ["INSERT", "INSERT"], sent
        assert _names(conn) == []
    assert _count(engine) == 3


@pytest.mark.backends("postgres")
def test_a_connection_finding_its_statement_name_taken_runs_the_statement_itself(
        engine: sa.Engine) -> None:
    with _autocommit(engine) as conn:
        prepared.insert_rows(conn, t.workflows, _rows(1))
        del conn.connection.info["orchestrator_prepared"]  # another client's, on a pooler
        sent = _sent(engine)
        prepared.insert_rows(conn, t.workflows, _rows(1, first=1))
        prepared.insert_rows(conn, t.workflows, _rows(1, first=2))
        assert sent == ["PREPARE", "INSERT", "INSERT"], sent
    assert _count(engine) == 3


@pytest.mark.backends("postgres")
def test_inside_a_transaction_the_lost_statement_fails_that_transaction_once(
        engine: sa.Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            prepared.insert_rows(conn, t.workflows, _rows(1))
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()
        with pytest.raises(sa.exc.DBAPIError), conn.begin():
            prepared.insert_rows(conn, t.workflows, _rows(1, first=1))
        with conn.begin():  # the same connection: the statement itself now
            prepared.insert_rows(conn, t.workflows, _rows(1, first=1))
        names = conn.execute(sa.select(t.workflows.c.name).order_by(t.workflows.c.name))
        assert names.scalars().all() == ["w0", "w1"]


def test_more_rows_than_one_prepared_statement_holds_are_one_plain_insert(
        engine: sa.Engine) -> None:
    sent = _sent(engine)
    with engine.begin() as conn:
        prepared.insert_rows(conn, t.workflows, _rows(prepared.INSERT_ROWS_MAX + 1))
    assert sent[-1] == "INSERT" and "EXECUTE" not in sent
    assert _count(engine) == prepared.INSERT_ROWS_MAX + 1


def _trips(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(t.burst_trips.c.environment)).scalars())


def test_rows_of_two_tables_are_one_statement_on_postgresql_and_all_or_none(
        engine: sa.Engine, store_url: str) -> None:
    """The executions of an admission and their queue entries are one insert: on PostgreSQL one
    ``EXECUTE`` (the first table's rows a data-modifying ``WITH``), elsewhere one insert per
    table; a row either table refuses leaves both as they were."""
    trips = [{"environment": e, "tripped_until": NOW} for e in ("acme", "beta")]
    sent = _sent(engine)
    with engine.begin() as conn:
        prepared.insert_tables(conn, [(t.workflows, _rows(3)), (t.burst_trips, trips)])
    postgres = store_url.startswith("postgresql")
    assert [s for s in sent if s not in ("PREPARE", "BEGIN")] == (
        ["EXECUTE"] if postgres else ["INSERT", "INSERT"])
    assert _count(engine) == 3 and _trips(engine) == ["acme", "beta"]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        prepared.insert_tables(conn, [(t.workflows, _rows(2, first=3)),
                                      (t.burst_trips, [{"environment": "acme",
                                                        "tripped_until": NOW}])])
    assert _count(engine) == 3 and _trips(engine) == ["acme", "beta"]


def test_a_parameter_left_out_is_refused_by_name_and_nothing_is_written(
        engine: sa.Engine) -> None:
    statement = prepared.Prepared("test_missing", t.workflows.insert().values(
        environment=sa.bindparam("env"), name=sa.bindparam("workflow"), current_version=1,
        created_at=sa.bindparam("at", type_=t.UTCDateTime),
        updated_at=sa.bindparam("at", type_=t.UTCDateTime)))
    with pytest.raises(sa.exc.SQLAlchemyError, match="required for bind parameter 'workflow'"), \
            engine.begin() as conn:
        prepared.execute(conn, statement, {"env": "acme", "at": NOW})
    assert _count(engine) == 0

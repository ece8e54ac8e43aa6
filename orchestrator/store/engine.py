"""Engines: SQLite in WAL mode with a busy timeout (several processes write at once), PostgreSQL
with a small pre-pinged pool (many short-lived run processes)."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
POOL_SIZE = 4  # PostgreSQL connections kept per process, and as many more at busy moments
POOL_MAX_OVERFLOW = 4
POOL_TIMEOUT_SECONDS = 60
READ_ONLY = "orchestrator_read_only"
_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """One engine per URL per process (sensors evaluate every few seconds in a long-lived code
    server; rebuilding the pool each time would reconnect on every tick)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def _create(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's implicit BEGIN breaks SERIALIZABLE semantics; we issue BEGIN ourselves
            # (IMMEDIATE, so writers queue on the busy timeout instead of failing on upgrade).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            # Readers take no write lock (WAL lets them run beside a writer).
            read_only = connection.get_execution_options().get(READ_ONLY, False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    # PostgreSQL's connections are a budget shared by every process of the deployment (the
    # daemon, its code server, the API, each worker's pool processes: 100 by default). Up to 8
    # per process here; a thread that finds them all busy waits for one (pool_timeout) rather
    # than failing. 20 per process exhausted a 100-connection server at the top of the hour on
    # one machine (bench/top_of_hour.py, "too many clients", 31 executions faulted).
    return sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_MAX_OVERFLOW,
                            pool_timeout=POOL_TIMEOUT_SECONDS, pool_pre_ping=True,
                            pool_recycle=1800)


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()

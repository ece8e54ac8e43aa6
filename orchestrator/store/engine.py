"""Engines: SQLite in WAL mode with a busy timeout (several processes write at once), PostgreSQL
with a small pool whose idle connections are pinged (many short-lived run processes); and
:func:`sqlite_write_lock`, which queues a SQLite file's writers promptly."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
POOL_SIZE = 4  # PostgreSQL connections kept per process, and as many more at busy moments
POOL_MAX_OVERFLOW = 4
POOL_TIMEOUT_SECONDS = 60
# A pooled PostgreSQL connection used this recently is handed out without a ping. Pinging on
# every checkout (pool_pre_ping) cost the admission writer a round trip per transaction, 13% of
# its time in a gated burst; HikariCP makes the same trade (aliveBypassWindowMs, 500 ms). A
# connection that died within the window fails its statement, and SQLAlchemy then drops every
# connection of the pool, as after a failed ping.
PING_AFTER_IDLE_SECONDS = 0.5
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
    engine = sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_MAX_OVERFLOW,
                              pool_timeout=POOL_TIMEOUT_SECONDS, pool_recycle=1800)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: sa.Engine) -> None:
    """Ping a pooled connection at checkout when it has been idle ``PING_AFTER_IDLE_SECONDS``
    or more; one that fails is replaced (the pool's own retry on
    :class:`~sqlalchemy.exc.DisconnectionError`)."""

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["orchestrator_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("orchestrator_idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if not engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            raise sa.exc.DisconnectionError("the pooled connection is gone")


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


# ------------------------------------------------------------------------- SQLite write lock

class _WriteLock:
    """Writers of one SQLite file, one at a time and woken promptly: the threads of a process
    queue on a thread lock, and the one at its head takes an ``flock`` on ``<file>-writer.lock``;
    when another process holds it, a blocking ``flock`` (:class:`_FlockWaiter`) waits, which the
    kernel wakes the moment the holder lets go. Held again by the thread that holds it, it is
    not taken twice (the API's writer holds it while it gathers a group and opens the group's
    transaction inside: ``IngestStore.writer_turn``).

    Without it, writers of several processes (``orchestrator serve --workers 4``, the daemon's
    sensors and run workers) queue on SQLite's busy handler, which sleeps 1, 2, 5, ... up to
    100 ms between tries: a gated burst on four server processes had a p99 of 400-500 ms, a
    tenth of a second per missed wake-up; polling the ``flock`` every 0.5-2 ms instead still
    left a p99 wait of 19 ms, a waiter asleep while others took the lock in turn. Whatever
    waits here longer than the busy timeout goes on to SQLite's own locking (which then waits or
    fails as before), so a stuck holder never blocks a writer longer than it did. The kernel
    drops an flock when its holder exits, even by SIGKILL."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._owner: int | None = None  # the thread holding it
        self._fd: int | None = None
        self._pid = 0
        self._waiter = _FlockWaiter()

    def _descriptor(self) -> int:
        # A forked child (a Celery pool process) shares its parent's descriptor, and with it the
        # lock: it opens its own (and waits on a thread of its own: the parent's is not there).
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
            self._waiter = _FlockWaiter()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._owner == threading.get_ident():
            yield  # this thread holds it already
            return
        timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            yield  # SQLite's own locking decides
            return
        self._owner = threading.get_ident()
        try:
            fd = self._locked(deadline)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._owner = None
            self._threads.release()

    def _locked(self, deadline: float) -> int | None:
        try:
            fd = self._descriptor()
        except OSError:
            return None  # a read-only directory: SQLite's own locking decides
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            return fd if self._waiter.wait(fd, deadline) else None


class _FlockWaiter:
    """A thread of its own blocked in ``flock(LOCK_EX)`` for the process's next writer, which
    waits for it until a deadline: a blocking ``flock`` cannot time out, and a writer must not
    wait past its busy timeout. A lock the thread gets after its writer gave up is let go at
    once (or handed to the next writer that came meanwhile)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._wanted: int | None = None  # the descriptor a writer waits to lock
        self._taken = False  # the thread locked it for that writer
        self._thread: threading.Thread | None = None

    def wait(self, fd: int, deadline: float) -> bool:
        """Whether ``fd`` is locked for the caller by ``deadline``."""
        with self._changed:
            self._wanted = fd
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="sqlite-write-lock")
                self._thread.start()
            self._changed.notify_all()
            while not self._taken:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._wanted = None
                    return False
                self._changed.wait(remaining)
            self._taken = False
            self._wanted = None
            return True

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._wanted is None or self._taken:
                    self._changed.wait()
                fd = self._wanted
            fcntl.flock(fd, fcntl.LOCK_EX)  # (the GIL is let go while it blocks)
            with self._changed:
                if self._wanted == fd:
                    self._taken = True
                    self._changed.notify_all()
                else:  # its writer gave up: no one here wants it now
                    fcntl.flock(fd, fcntl.LOCK_UN)


_write_locks: dict[str, _WriteLock | None] = {}  # by store URL


def sqlite_write_lock(url: str) -> AbstractContextManager[None]:
    """Held around each write transaction of the store: :class:`_WriteLock` for a SQLite file,
    nothing for PostgreSQL (row locks) or an in-memory SQLite database."""
    try:
        lock = _write_locks[url]
    except KeyError:
        parsed = make_url(url)
        database = parsed.database
        lock = None
        if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
            lock = _WriteLock(os.path.abspath(database) + "-writer.lock")
        with _lock:
            lock = _write_locks.setdefault(url, lock)
    return nullcontext() if lock is None else lock.held()

"""The burst gate's window and trip, in the store (SQLite and PostgreSQL alike): every API server
process counts the same window. Read and written inside the admission transaction
(:mod:`orchestrator.store.ingest`), so the count includes every trigger committed before it.

The window is the sum of the environment's counters in ``orch_burst_counts`` (one per tenth of
the window and server process: :mod:`orchestrator.domain.burst`), read in one statement; a
transaction that reads it adds what it admitted to this process's own counter, so no two
processes write one row. The trip is a row of ``orch_burst_trips`` per environment, read with
the transaction's workflows (:func:`live_with_windows`: no round trip of its own). While an
environment is tripped with more than half its hold to go, nothing is read: its plain triggers
are buffered by one guarded statement (``guarded.buffer_while_tripped``, used by
``ingest.IngestStore``) and counted in this process's memory (:class:`BurstCounts`), until the
next transaction that reads the window writes them. On PostgreSQL, a plain group of an
environment that is not tripped and whose window has room for it is queued by one guarded
statement too, which adds the group to the counter itself (both statements:
:mod:`orchestrator.store.guarded`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.domain.burst import BurstPolicy, BurstWindow
from orchestrator.domain.correlation import new_id
from orchestrator.domain.ingest import AdmissionJob
from orchestrator.store import prepared
from orchestrator.store import tables as t
from orchestrator.store.workflows import live_workflows, pair_parameters, pair_values

_Key = tuple[str, datetime]  # (environment, bucket)


class BurstCounts:
    """This server process's counters: its name in ``orch_burst_counts`` and the triggers it
    counted but has not written yet (by environment and bucket: buffered while tripped, or
    admitted by a transaction that did not read the window)."""

    def __init__(self) -> None:
        self.server = new_id().replace("-", "")
        self._pending: Counter[_Key] = Counter()
        self._lock = threading.Lock()
        self._swept: dict[str, datetime] = {}

    def pending(self, environment: str) -> list[tuple[datetime, int]]:
        with self._lock:
            return [(bucket, n) for (env, bucket), n in self._pending.items()
                    if env == environment]

    @contextmanager
    def transaction(self) -> Iterator[PendingCounts]:
        """The counts of one admission transaction: what it takes from the pending ones is
        given back, and what it leaves pending is dropped, if it does not commit."""
        counts = PendingCounts(self)
        try:
            yield counts
        except BaseException:
            with self._lock:
                self._pending.update(counts.taken)
            raise
        with self._lock:
            self._pending.update(counts.left)

    def take(self, environment: str) -> Counter[_Key]:
        with self._lock:
            taken = Counter({key: n for key, n in self._pending.items()
                             if key[0] == environment})
            for key in taken:
                del self._pending[key]
        return taken

    def sweep_due(self, environment: str, now: datetime, policy: BurstPolicy) -> bool:
        """Whether this process should delete the environment's counters that left the window
        (at most once per window)."""
        if not self.sweep_pending(environment, now, policy):
            return False
        self._swept[environment] = now
        return True

    def sweep_pending(self, environment: str, now: datetime, policy: BurstPolicy) -> bool:
        """Whether :meth:`sweep_due` would say so (nothing noted)."""
        last = self._swept.get(environment)
        return last is None or now - last >= policy.window


class PendingCounts:
    """One admission transaction's share of :class:`BurstCounts`."""

    def __init__(self, counts: BurstCounts) -> None:
        self.counts = counts
        self.taken: Counter[_Key] = Counter()  # written by the transaction
        self.left: Counter[_Key] = Counter()  # to write later
        # (bucket, triggers) by environment, written by the transaction's first statement
        self.precounted: dict[str, tuple[datetime, int]] = {}

    @property
    def server(self) -> str:
        return self.counts.server

    def pending(self, environment: str) -> list[tuple[datetime, int]]:
        return self.counts.pending(environment)

    def take(self, environment: str) -> Counter[_Key]:
        taken = self.counts.take(environment)
        self.taken.update(taken)
        return taken

    def leave(self, environment: str, bucket: datetime, n: int) -> None:
        self.left[environment, bucket] += n

    def sweep_due(self, environment: str, now: datetime, policy: BurstPolicy) -> bool:
        return self.counts.sweep_due(environment, now, policy)


_c = t.burst_counts


def _with_trips(query: sa.Select[Any], environment: sa.ColumnElement[str], *,
                counted: bool = False, precounted: bool = False) -> sa.Select[Any]:
    """``query`` with each row's environment's trip end, ``burst_tripped_until`` (None: not
    tripped), and if ``counted`` its window's count, ``burst_counted`` (parameters of
    :func:`_window_parameters`), as :func:`read_windows` wants the rows. ``precounted``
    (PostgreSQL): the statement also adds to a counter, as :func:`_precount` says (its count
    does not see that: one snapshot)."""
    trips = t.burst_trips
    query = query.outerjoin(trips, trips.c.environment == environment).add_columns(
        trips.c.tripped_until.label("burst_tripped_until"))
    if precounted:
        query = query.add_cte(_count_upsert("count_").returning(_c.c.count)
                              .cte("precounted"))
    if not counted:
        return query
    return query.add_columns(window_count(environment).label("burst_counted"))


def window_count(environment: sa.ColumnElement[str]) -> sa.ScalarSelect[Any]:
    """The count of ``environment``'s window: its counters' sum, the bucket the window starts
    in weighed by its share inside (parameters of :func:`_window_parameters`), as
    :meth:`BurstWindow.count <orchestrator.domain.burst.BurstWindow.count>` sums them."""
    first = sa.bindparam("window_first", type_=t.UTCDateTime)
    # (cast: a prepared statement would take the parameter for an integer, as the count is)
    share = sa.cast(sa.bindparam("window_first_weight", type_=sa.Float), sa.Float)
    weighed = sa.case((_c.c.bucket == first, _c.c.count * share), else_=_c.c.count)
    return sa.select(sa.func.coalesce(sa.func.sum(weighed), 0)).where(
        _c.c.environment == environment, _c.c.bucket >= first).scalar_subquery()


def _window_parameters(jobs: Sequence[AdmissionJob]) -> dict[str, Any] | None:
    """The parameters of :func:`_with_trips`'s count for ``jobs`` (the policy of every gated
    one: the window's first bucket and the share of it inside), None if no job is gated or
    their policies differ (:func:`read_windows` then reads each window on its own)."""
    policies = {job.gate for job in jobs if job.gate is not None}
    if len(policies) != 1:
        return None
    [policy] = policies
    return window_bounds(policy, jobs[0].now)


def window_bounds(policy: BurstPolicy, now: datetime) -> dict[str, Any]:
    return {"window_first": BurstWindow.first_bucket(policy, now),
            "window_first_weight": BurstWindow.first_weight(policy, now)}


def _precount(jobs: Sequence[AdmissionJob], counts: PendingCounts) -> dict[str, Any] | None:
    """The parameters of :func:`_with_trips`'s ``precounted`` for ``jobs``: when they gate one
    environment, the requests of its plain jobs (each counts if admitted, so the statement that
    reads the window also writes them, and :func:`store_windows` writes only a difference: one
    statement less per transaction); None otherwise."""
    environments = {job.environment for job in jobs if job.gate is not None}
    if len(environments) != 1:
        return None
    [environment] = environments
    n = sum(len(job.requests) for job in jobs if job.environment == environment and job.plain)
    if not n:
        return None
    policy = next(job.gate for job in jobs if job.gate is not None)
    bucket = policy.bucket(jobs[0].now)
    counts.precounted[environment] = (bucket, n)
    return count_parameters(environment, bucket, counts.server, n, "count_")


# The workflows of an admission transaction, with their environments' burst trips and (where a
# job is gated) windows: one statement, built once.
_LIVE_WORKFLOWS = {counted: _with_trips(
    sa.select(t.workflows.c.environment, t.workflows.c.name).where(
        live_workflows(sa.bindparam("pairs", expanding=True))), t.workflows.c.environment,
    counted=counted) for counted in (False, True)}
LIVE_PAIRS_PREPARED = 8  # a group of more pairs reads them with the statement above


@lru_cache(maxsize=3 * LIVE_PAIRS_PREPARED)
def _live_workflows(pairs: int, counted: bool, precounted: bool) -> prepared.Prepared:
    """:data:`_LIVE_WORKFLOWS` for ``pairs`` pairs, of a fixed shape (prepared once)."""
    return prepared.Prepared("live", _with_trips(
        sa.select(t.workflows.c.environment, t.workflows.c.name).where(
            live_workflows(pair_parameters(pairs))), t.workflows.c.environment,
        counted=counted, precounted=precounted))


def live_with_windows(conn: sa.Connection, jobs: Sequence[AdmissionJob],
                      counts: PendingCounts) -> Sequence[Any]:
    """The live workflows of ``jobs`` (rows of ``environment``, ``name``), each with its
    environment's trip and, where a job is gated, its window's count, for
    :func:`read_windows`; on PostgreSQL the same statement counts the jobs' plain triggers."""
    pairs = sorted({(job.environment, job.workflow) for job in jobs})
    window = _window_parameters(jobs) or {}
    if len(pairs) > LIVE_PAIRS_PREPARED:
        return conn.execute(_LIVE_WORKFLOWS[bool(window)], {"pairs": pairs, **window}).all()
    counting = (_precount(jobs, counts) if window and conn.dialect.name == "postgresql"
                else None)
    return prepared.execute(conn, _live_workflows(len(pairs), bool(window), bool(counting)),
                            {**pair_values(pairs), **window, **(counting or {})}).all()


# An environment's counters still in its window, summed over the servers, by bucket.
_BUCKETS = prepared.Prepared("window", sa.select(_c.c.bucket, sa.func.sum(_c.c.count)).where(
    _c.c.environment == sa.bindparam("environment"), _c.c.bucket >= sa.bindparam("first"))
    .group_by(_c.c.bucket))
_SWEEP = _c.delete().where(_c.c.environment == sa.bindparam("environment"),
                           _c.c.bucket < sa.bindparam("first"))


def read_windows(conn: sa.Connection, rows: Iterable[Any], jobs: Sequence[AdmissionJob],
                 now: datetime, counts: PendingCounts) -> dict[str, BurstWindow]:
    """The window of every environment of ``rows`` (of :func:`live_with_windows`: the
    transaction's live workflows) in which a job is gated; its count (the rows' own, else read
    here) is used only where it decides something, with what this server counted but has not
    written."""
    policies: dict[str, BurstPolicy] = {job.environment: job.gate for job in jobs
                                        if job.gate is not None}
    trips = {row.environment: (row.burst_tripped_until, getattr(row, "burst_counted", None))
             for row in rows if row.environment in policies}
    return {environment: _window(conn, environment, policies[environment], tripped_until,
                                 stored, now, counts)
            for environment, (tripped_until, stored) in sorted(trips.items())}


def _window(conn: sa.Connection, environment: str, policy: BurstPolicy,
            tripped_until: datetime | None, stored: float | None, now: datetime,
            counts: PendingCounts) -> BurstWindow:
    if tripped_until is not None and tripped_until - now > policy.hold / 2:
        # Tripped with more than half the hold to go: every gated trigger goes to the buffer
        # whatever the count, and a trip is only extended in its last half (trip_to_store), so
        # the window is not read.
        return BurstWindow(policy, now, counted=None, tripped_until=tripped_until)
    pending = BurstWindow.count(policy, now, counts.pending(environment))
    if stored is None:
        first = BurstWindow.first_bucket(policy, now)
        buckets = prepared.execute(conn, _BUCKETS, {"environment": environment, "first": first})
        stored = BurstWindow.count(policy, now, ((bucket, int(n)) for bucket, n in buckets))
    return BurstWindow(policy, now, counted=int(stored) + pending, tripped_until=tripped_until)


def store_windows(conn: sa.Connection, windows: dict[str, BurstWindow],
                  counts: PendingCounts) -> None:
    """Write what these windows counted to this server's counters (with what it counted
    before, unwritten, where the window was read; elsewhere it waits in memory), and the
    trips they started or extended (a later one stored meanwhile by another server is
    kept)."""
    for environment, (bucket, n) in counts.precounted.items():
        if environment not in windows:  # its jobs were refused (no workflow of theirs is live)
            _add_count(conn, environment, bucket, counts.server, -n)
    for environment, window in windows.items():
        policy, now = window.policy, window.now
        _, precounted = counts.precounted.get(environment, (None, 0))
        admitted = window.admitted - precounted  # (negative: precounted triggers refused)
        if not window.read:
            if admitted:
                counts.leave(environment, policy.bucket(now), admitted)
            continue
        first = BurstWindow.first_bucket(policy, now)
        written = counts.take(environment)
        written[environment, policy.bucket(now)] += admitted
        add_counts(conn, environment, counts.server, [
            (bucket, n) for (_, bucket), n in sorted(written.items())
            if n and bucket >= first])  # (older ones have left the window)
        if counts.sweep_due(environment, now, policy):
            conn.execute(_SWEEP, {"environment": environment, "first": first})
    _store_trips(conn, windows)


# The counter statements' parameters (not named as columns: an update's would be taken for SET
# values): environment ``env``, bucket ``at``, server ``by``, triggers ``n``.
def count_parameters(environment: str, bucket: datetime, server: str, n: int,
                      prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}env": environment, f"{prefix}at": bucket, f"{prefix}by": server,
            f"{prefix}n": n}


def adding(insert: postgresql.Insert) -> postgresql.Insert:
    """``insert`` into ``orch_burst_counts`` (PostgreSQL) adding its counts to the counters
    that exist."""
    return insert.on_conflict_do_update(index_elements=["environment", "bucket", "server"],
                                        set_={"count": _c.c.count + insert.excluded.count})


def _count_upsert(prefix: str = "") -> postgresql.Insert:
    """PostgreSQL: add ``n`` to the counter (of :func:`count_parameters`, names prefixed)."""
    return adding(postgresql.insert(_c).values(
        environment=sa.bindparam(prefix + "env"), bucket=sa.bindparam(prefix + "at"),
        server=sa.bindparam(prefix + "by"), count=sa.bindparam(prefix + "n")))


_UPSERT = prepared.Prepared("count", _count_upsert())
# SQLite: an update, else an insert (behind the file's write lock, nothing comes between); the
# dialects' INSERT ... ON CONFLICT has no cache key, so SQLAlchemy would compile it every time.
_key = sa.and_(_c.c.environment == sa.bindparam("env"), _c.c.bucket == sa.bindparam("at"),
               _c.c.server == sa.bindparam("by"))
_ADD = _c.update().where(_key).values(count=_c.c.count + sa.bindparam("n"))
_NEW = _c.insert().values(environment=sa.bindparam("env"), bucket=sa.bindparam("at"),
                          server=sa.bindparam("by"), count=sa.bindparam("n"))
_EMPTY = _c.delete().where(_key, _c.c.count <= 0)


def _add_count(conn: sa.Connection, environment: str, bucket: datetime, server: str,
               n: int) -> None:
    """Add ``n`` to this server's counter of ``environment`` and ``bucket``; a counter taken
    back to 0 (a precounted job that was refused) is removed, so a refused call leaves no
    row."""
    params = count_parameters(environment, bucket, server, n)
    if conn.dialect.name == "postgresql":
        prepared.execute(conn, _UPSERT, params)
    elif not conn.execute(_ADD, params).rowcount:
        conn.execute(_NEW, params)
    if n < 0:
        conn.execute(_EMPTY, params)


# Counters one statement adds to, on PostgreSQL (more: a statement per this many). A server
# that buffered with the guarded statement writes its counters of the whole window (a tenth
# each) when it next reads the window: one statement, where a statement per counter made that
# transaction 10 ms long (2.8 ms of CPU), and every server reads its window at once when a
# trip is due to be extended.
COUNTS_MAX = 16
COUNT_COLUMNS = ("environment", "bucket", "server", "count")


@lru_cache(maxsize=8)
def _counts_upsert(dialect: sa.Dialect, slots: int) -> prepared.Prepared:
    return prepared.Prepared(f"counts_{slots}", adding(prepared.values_insert(
        _c, COUNT_COLUMNS, slots, dialect, insert=postgresql.insert)))


def add_counts(conn: sa.Connection, environment: str, server: str,
               buckets: Sequence[tuple[datetime, int]]) -> None:
    """Add ``n`` to this server's counter of each ``(bucket, n)`` (distinct buckets, ``n`` > 0):
    on PostgreSQL one statement per :data:`COUNTS_MAX`, else one per counter."""
    if conn.dialect.name != "postgresql":
        for bucket, n in buckets:
            _add_count(conn, environment, bucket, server, n)
        return
    for start in range(0, len(buckets), COUNTS_MAX):
        chunk = buckets[start:start + COUNTS_MAX]
        slots = prepared.slots_for(len(chunk))
        rows = [{"environment": environment, "bucket": bucket, "server": server, "count": n}
                for bucket, n in chunk]
        prepared.execute(conn, _counts_upsert(conn.dialect, slots),
                         prepared.values_parameters(COUNT_COLUMNS, rows, slots))


def warm_up_counts(conn: sa.Connection, environment: str, server: str, now: datetime,
                   policy: BurstPolicy) -> None:
    """Run each shape of :func:`add_counts` once (the caller rolls it back)."""
    width = policy.bucket_width
    for slots in sorted({prepared.slots_for(n) for n in range(1, COUNTS_MAX + 1)}):
        add_counts(conn, environment, server, [(policy.bucket(now) - i * width, 1)
                                               for i in range(slots)])


def _trip_upsert(insert: Callable[[sa.Table], Any]) -> Any:
    """Store the trip of ``trip_env`` until ``trip_until``, unless a later one is stored
    (``insert``: a dialect's, for its ``ON CONFLICT``)."""
    trips = t.burst_trips
    statement = insert(trips).values(
        environment=sa.bindparam("trip_env", type_=trips.c.environment.type),
        tripped_until=sa.bindparam("trip_until", type_=t.UTCDateTime))
    return statement.on_conflict_do_update(
        index_elements=["environment"], set_={"tripped_until": statement.excluded.tripped_until},
        where=trips.c.tripped_until < statement.excluded.tripped_until)


_TRIP = prepared.Prepared("trip", _trip_upsert(postgresql.insert))


def _store_trips(conn: sa.Connection, windows: dict[str, BurstWindow]) -> None:
    """Each trip started or extended (a later end another server stored meanwhile is kept):
    on PostgreSQL a prepared statement (an ``ON CONFLICT`` has no cache key: SQLAlchemy
    compiles it each time, ~1 ms, as it still does on SQLite, twice per hold)."""
    for environment, window in windows.items():
        until = window.trip_to_store()
        if until is None:
            continue
        params = {"trip_env": environment, "trip_until": until}
        if conn.dialect.name == "postgresql":
            prepared.execute(conn, _TRIP, params)
        else:
            conn.execute(_trip_upsert(sqlite.insert), params)

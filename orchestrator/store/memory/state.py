"""The in-memory store's state: one dict per table, one lock, transactions by snapshot.

A transaction (:meth:`MemoryState.transaction`) holds the lock (so transactions are
serializable, like SQLite's single writer) and restores the tables it started from when its
block raises; nested transactions are savepoints. Rows are dicts that are replaced, never
mutated in place, so a snapshot is a shallow copy of each table.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from orchestrator.exceptions import StoreError

P = ParamSpec("P")
R = TypeVar("R")
Row = dict[str, Any]

TABLES = ("workflows", "workflow_versions", "schedules", "executions", "blocks", "queued",
          "alerts", "alert_executions", "api_keys", "webhooks", "receipts", "idempotency",
          "burst_trips", "burst_counts", "debounces", "buffer", "run_batches", "environments",
          "prune_totals", "backfills")


class Refused(Exception):
    """What the database would refuse (a naive datetime, a value JSON cannot hold, a
    duplicate key): the memory store's ``IntegrityError`` / ``StatementError``."""


class Duplicate(Refused):
    """An insert whose key exists (the memory store's unique constraint)."""


class MemoryState:
    """Every table of one in-memory store."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tables: dict[str, dict[Any, Row]] = {name: {} for name in TABLES}
        self._ids = itertools.count(1)

    def table(self, name: str) -> dict[Any, Row]:
        return self.tables[name]

    def next_id(self) -> int:
        return next(self._ids)

    @contextmanager
    def transaction(self) -> Iterator[MemoryState]:
        with self.lock:
            snapshot = {name: dict(rows) for name, rows in self.tables.items()}
            try:
                yield self
            except BaseException:
                self.tables = snapshot
                raise

    def insert(self, table: str, key: Any, row: Row, /) -> None:
        """Insert ``row`` (checked like a column type would); :class:`Duplicate` if ``key``
        exists."""
        rows = self.tables[table]
        if key in rows:
            raise Duplicate(f"{table}: {key!r} exists")
        rows[key] = checked(row)

    def put(self, table: str, key: Any, row: Row, /) -> None:
        """Insert or replace."""
        self.tables[table][key] = checked(row)

    def update(self, table: str, key: Any, /, **values: Any) -> Row:
        rows = self.tables[table]
        row = checked({**rows[key], **values})
        rows[key] = row
        return row


def checked(row: Row) -> Row:
    """A row as the database would store it: datetimes aware and in UTC (a naive one is
    refused, like ``UTCDateTime``), JSON values copied through JSON."""
    out: Row = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise Refused("naive datetime given to the store; pass an aware datetime")
            value = value.astimezone(UTC)
        elif isinstance(value, dict | list):
            try:
                value = json.loads(json.dumps(value))
            except (TypeError, ValueError) as exc:
                raise Refused(f"{name} is not JSON") from exc
        out[name] = value
    return out


def fresh(value: Any) -> Any:
    """A JSON value as a read returns it: a copy the caller may change."""
    return copy.deepcopy(value)


def refused_as(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """What the database would refuse becomes :class:`StoreError` (not transient), as
    :func:`~orchestrator.store.uow.translated` does for a driver's constraint error."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Refused:
                raise StoreError(operation, transient=False) from None

        return wrapper

    return decorate

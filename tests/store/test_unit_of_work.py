"""The store's unit of work, on SQLite and PostgreSQL: ``Database.single()`` runs one write
statement as its own transaction (PostgreSQL in autocommit), and hands every pooled connection
back transactional, so a later ``write()`` that fails still leaves nothing behind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.store import Store
from orchestrator.store import tables as t
from orchestrator.store.engine import POOL_MAX_OVERFLOW, POOL_SIZE
from tests.conftest import NOW, SQL_BACKENDS, row_count

pytestmark = pytest.mark.backends(*SQL_BACKENDS)


class Boom(Exception):
    pass


def test_single_commits_its_statement_and_leaves_connections_transactional(
        store: Store) -> None:
    trips = t.burst_trips
    for n in range(POOL_SIZE + POOL_MAX_OVERFLOW):  # every connection the pool may hold
        with store.db.single() as conn:
            conn.execute(trips.insert().values(environment=f"single-{n}", tripped_until=NOW))
    assert row_count(store, trips) == POOL_SIZE + POOL_MAX_OVERFLOW
    for n in range(POOL_SIZE + POOL_MAX_OVERFLOW):
        with pytest.raises(Boom), store.db.write() as conn:
            conn.execute(trips.insert().values(environment=f"rolled-back-{n}",
                                               tripped_until=NOW + timedelta(seconds=n)))
            raise Boom
    assert row_count(store, trips) == POOL_SIZE + POOL_MAX_OVERFLOW

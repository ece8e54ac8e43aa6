"""PostgreSQL's pooled connections are pinged at checkout only after idling
``PING_AFTER_IDLE_SECONDS`` (``orchestrator.store.engine``): a connection the server dropped
while it idled is replaced before a statement sees it; one dropped within the window fails its
statement once, and the pool then replaces every connection, so the next statement works."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchestrator.store import engine as engines
from orchestrator.store.engine import engine_for


@pytest.fixture
def pg(pg_store_url: str) -> Iterator[sa.Engine]:
    engines.dispose_all()
    yield engine_for(pg_store_url)
    engines.dispose_all()


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    other = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with other.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    other.dispose()
    time.sleep(0.1)  # the backend is gone once its socket is closed


def test_a_connection_dropped_while_idle_is_replaced_before_use(
        pg: sa.Engine, pg_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout is "idle"
    pid = _backend_pid(pg)
    _terminate(pg_store_url, pid)
    assert _backend_pid(pg) != pid  # no error: the ping found it gone and the pool reconnected


def test_a_connection_in_use_a_moment_ago_is_not_pinged(
        pg: sa.Engine, pg_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "PING_AFTER_IDLE_SECONDS", 3600.0)  # never idle long enough
    pid = _backend_pid(pg)
    _terminate(pg_store_url, pid)
    # Within the window no ping runs: the statement meets the dropped connection...
    with pytest.raises(sa.exc.OperationalError) as raised:
        _backend_pid(pg)
    assert raised.value.connection_invalidated
    # ... and the pool, told of the disconnect, hands out a new one.
    assert _backend_pid(pg) != pid

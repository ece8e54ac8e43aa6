"""A key's expiry is checked on every request against the server's clock (injected here), so a
key the server has just accepted (and cached) is refused from its instant on; revocation is
read again within the cache's half second. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.api.http import KEY_CACHE_SECONDS
from orchestrator.store import Store
from tests.api.conftest import Client, error_of
from tests.conftest import ManualClock

pytestmark = pytest.mark.slow


def test_an_expiring_key_is_refused_at_its_instant(serve, store: Store, make_workflow) -> None:
    make_workflow()
    clock = ManualClock()
    start = clock()
    _, key = store.access.create_api_key("default", clock(), clock() + timedelta(hours=1))
    client = Client(serve(clock=clock).url, key)
    assert client.post("/v1/workflows/digest/trigger", {}).status_code == 202
    [listed] = store.access.list_api_keys()
    assert listed.last_used_at == clock() and listed.status(clock()).value == "active"

    clock.advance(timedelta(minutes=59, seconds=59))
    assert client.post("/v1/workflows/digest/trigger", {}).status_code == 202
    clock.advance(timedelta(seconds=1))  # the cache still holds the key: its expiry does not
    error = error_of(client.post("/v1/workflows/digest/trigger", {}), 401)
    assert "expired" in error["message"]
    assert error_of(client.get("/v1/executions"), 401)["code"] == "unauthorized"
    [listed] = store.access.list_api_keys()
    assert listed.status(clock()).value == "expired"
    # recorded when the store was read (to the minute), and never by a refused request
    assert listed.last_used_at == start
    assert len(store.list_executions()) == 2
    assert KEY_CACHE_SECONDS <= 0.5

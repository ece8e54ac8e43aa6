"""Isolation through a real server on loopback, on SQLite and PostgreSQL: every route of the app
(``harness/chaos_isolation.py``: taken from the route table, so new routes join by themselves)
aimed at environment A's objects with B's key, no key, malformed headers and wrong keys; the
webhook with tampered, stale, foreign and replayed deliveries. Nothing is accepted, every
unauthenticated call is a 401, B gets 404 (not 403) for A's objects, and no refused call writes
anything to the store."""

from __future__ import annotations

import pytest

from harness.chaos_isolation import build_world, isolation
from tests.api.conftest import OPERATOR_TOKEN

pytestmark = pytest.mark.slow


def test_every_endpoint_refuses_other_environments_and_bad_credentials(serve,
                                                                       store_url: str) -> None:
    server = serve()
    routes = server.server.config.app.routes
    result = isolation(build_world(store_url, server.url, OPERATOR_TOKEN), routes)
    assert result.ok(), result.summary() + "\n" + "\n".join(result.failures())
    served = {(m, r.path) for r in routes for m in (r.methods or set()) - {"HEAD"}}
    assert len(result.endpoints) == len(served) >= 17
    b_key = result.statuses["B's key"]
    assert set(b_key) == {200, 404}, b_key  # lists (showing none of A's) and 404, never 403
    # Cancel, replay and the backfill routes included: B cancels, replays, backfills or lists
    # none of A's.
    assert b_key[404] >= 12
    for variant in ("no Authorization", "Basic scheme", "A's key under Token scheme",
                    "unknown key", "A's revoked key", "A's expired key",
                    "operator route, no token", "operator route, A's key",
                    "operator route, B's key", "operator route, a wrong token"):
        assert set(result.statuses[variant]) == {401}, (variant, result.statuses[variant])
    for variant in ("tampered body", "tampered signature", "stale timestamp (10 min)",
                    "future timestamp (10 min)", "no signature", "B's webhook secret",
                    "A's delivery to B's webhook", "legacy scheme on a Standard webhook"):
        assert set(result.statuses[f"webhook: {variant}"]) == {401}, variant
    assert result.statuses["webhook: replay of an accepted delivery"] == {409: 1}
    assert result.statuses["B's key, A's execution as parent"] == {422: 1}

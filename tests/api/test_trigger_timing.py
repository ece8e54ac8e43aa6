"""A trigger's ``delay``/``run_at``, ``ttl`` and ``priority`` through the HTTP API (SQLite and
PostgreSQL): accepted and shown on the execution; bad values answer 422 naming the field and
write nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.domain.correlation import parse_iso
from orchestrator.store import Store
from tests.api.conftest import Client, error_of


@pytest.fixture
def acme(serve, key_for, make_workflow) -> Client:
    make_workflow("digest", environment="acme")
    return Client(serve().url, key_for("acme"))


def test_a_delayed_trigger_is_queued_with_its_instant(acme: Client) -> None:
    before = datetime.now(UTC).replace(microsecond=0)  # shown to the second
    accepted = acme.post("/v1/workflows/digest/trigger",
                         {"delay": "10m", "ttl": "1h", "priority": 5})
    assert accepted.status_code == 202, accepted.text
    shown = acme.get(f"/v1/executions/{accepted.json()['execution_id']}").json()
    not_before = parse_iso(shown["not_before"])
    assert shown["status"] == "queued" and shown["priority"] == 5
    assert before + timedelta(minutes=10) <= not_before <= datetime.now(UTC) + timedelta(
        minutes=10)
    assert parse_iso(shown["expires_at"]) == not_before + timedelta(hours=1)
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    scheduled = acme.post("/v1/workflows/digest/trigger", {"run_at": at.isoformat()}).json()
    assert parse_iso(acme.get(f"/v1/executions/{scheduled['execution_id']}").json()[
        "not_before"]) == at


@pytest.mark.parametrize(("body", "field"), [
    ({"delay": "10m", "run_at": "2099-01-01T00:00:00Z"}, "delay"),
    ({"run_at": "2001-01-01T00:00:00Z"}, "run_at"),
    ({"run_at": "2099-01-01T00:00:00"}, "run_at"),
    ({"delay": "soon"}, "delay"),
    ({"delay": "400d"}, "delay"),
    ({"ttl": 0}, "ttl"),
    ({"priority": 11}, "priority"),
    ({"delay": "1m", "debounce": {"key": "k", "delay": "1m"}}, "delay"),
])
def test_bad_timing_is_a_422_naming_the_field(acme: Client, store: Store, body: dict,
                                              field: str) -> None:
    error = error_of(acme.post("/v1/workflows/digest/trigger", body), 422)
    assert error["field"] == field, error
    assert store.list_executions() == []


def test_cancel_through_the_api(acme: Client, key_for, serve) -> None:
    delayed = acme.post("/v1/workflows/digest/trigger", {"delay": "1h"}).json()["execution_id"]
    cancelled = acme.post(f"/v1/executions/{delayed}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert (body["status"], body["outcome"], body["finalized_by"]) == (
        "cancelled", "cancelled", "cancel")
    again = error_of(acme.post(f"/v1/executions/{delayed}/cancel"), 409)
    assert "already ended" in again["message"]
    other = Client(acme.url, key_for("other"))
    assert error_of(other.post(f"/v1/executions/{delayed}/cancel"), 404)["code"] == \
        "not_found"

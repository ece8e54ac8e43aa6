"""Signed webhooks (the signature matrix), the burst gate (tripping, buffering, read fallback,
draining, bypasses, switches) and schedules over HTTP, through a real server on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from orchestrator.alerts import Alerter
from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.signatures import sign
from orchestrator.store import Store
from orchestrator.store import tables as t
from orchestrator.triggers.queue import dispatch_queued_triggers
from tests.api.conftest import Client, error_of, legacy_webhook, scrape

pytestmark = pytest.mark.slow


def _signed(secret: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    return {"X-Orchestrator-Timestamp": timestamp,
            "X-Orchestrator-Signature": sign(secret, timestamp, body),
            "Content-Type": "application/json"}


def test_legacy_webhook_signature_matrix(serve, store: Store, make_workflow) -> None:
    """A webhook made before Standard Webhooks keeps its scheme (X-Orchestrator-Signature)."""
    make_workflow("digest", environment="acme")
    hook = legacy_webhook(store, "acme", "digest")
    client = Client(serve().url)
    path = f"/v1/webhooks/{hook.id}"
    body = b'{"order": 42}'

    accepted = client.post(path, data=body, headers=_signed(hook.secret, body))
    assert accepted.status_code == 202, accepted.text
    record = store.get_execution(accepted.json()["execution_id"])
    assert (record.source.value, record.trigger_id, record.environment, record.payload) == \
        ("webhook", hook.id, "acme", {"order": 42})

    replay = client.post(path, data=body, headers=dict(accepted.request.headers))
    assert error_of(replay, 409)["execution_id"] == record.execution_id  # the same again
    refused = {
        "wrong secret": _signed("whsec_wrong", body),
        "stale": _signed(hook.secret, body, at=time.time() - 6 * 60),
        "future": _signed(hook.secret, body, at=time.time() + 6 * 60),
        "tampered": _signed(hook.secret, b'{"order": 43}'),
        "no signature": {"X-Orchestrator-Timestamp": str(int(time.time()))},
        "bad timestamp": {**_signed(hook.secret, body), "X-Orchestrator-Timestamp": "soon"},
    }
    for why, headers in refused.items():
        error = error_of(client.post(path, data=body, headers=headers), 401)
        assert error["code"] == "invalid_signature", why
    assert error_of(client.post("/v1/webhooks/wh_missing", data=body,
                                headers=_signed(hook.secret, body)), 404)["code"] == "not_found"
    nul = b'{"order": "4\\u00002"}'  # signed, but PostgreSQL cannot store it: 422, by field
    assert error_of(client.post(path, data=nul, headers=_signed(hook.secret, nul)),
                    422)["field"] == "order"
    assert [e.execution_id for e in store.list_executions()] == [record.execution_id]


GATE = BurstPolicy(enabled=True, environments=frozenset({"acme"}), threshold=5,
                   window=timedelta(seconds=60), hold=timedelta(seconds=60))


def test_gate_buffers_a_burst_and_the_drainer_queues_it(serve, key_for, store: Store,
                                                        make_workflow) -> None:
    make_workflow("digest", environment="acme")
    make_workflow("digest", environment="calm")
    server = serve(burst=GATE)
    acme = Client(server.url, key_for("acme"))
    calm = Client(server.url, key_for("calm"))
    answers = [acme.post("/v1/workflows/digest/trigger",
                         {"payload": {"n": n}, "idempotency_key": f"k{n}"}) for n in range(10)]
    assert {a.status_code for a in answers} == {202}
    assert {tuple(a.json()) for a in answers} == {("execution_id", "request_id", "status",
                                                   "deduplicated")}
    ids = [a.json()["execution_id"] for a in answers]
    assert len(store.list_executions(environment="acme")) == 5  # the rest are buffered
    buffered_id = ids[-1]
    shown = acme.get(f"/v1/executions/{buffered_id}").json()
    assert (shown["status"], shown["buffered"], shown["payload"], shown["idempotency_key"]) == \
        ("queued", True, {"n": 9}, "k9")
    assert shown["idempotency_key_expires_at"] and shown["request_id"]
    assert {e["execution_id"] for e in acme.get("/v1/executions").json()["executions"]} == \
        set(ids)
    same_key = acme.post("/v1/workflows/digest/trigger", {"idempotency_key": "k9"}).json()
    assert same_key["execution_id"] == buffered_id and same_key["deduplicated"]
    # bypasses while tripped: debounce, batch items, child triggers; and another environment
    debounced = acme.post("/v1/workflows/digest/trigger",
                          {"debounce": {"key": "d", "delay": 60}}).json()
    batch = acme.post("/v1/workflows/digest/trigger-batch", {"items": [{}]}).json()["items"]
    child = acme.post("/v1/workflows/digest/trigger", {"parent_execution_id": ids[0]}).json()
    for execution_id in (debounced["execution_id"], batch[0]["execution_id"],
                         child["execution_id"]):
        assert store.get_execution(execution_id).status.value == "queued"
    calm_ids = [calm.post("/v1/workflows/digest/trigger", {}).json()["execution_id"]
                for _ in range(8)]
    assert len(store.executions_by_id(calm_ids)) == 8
    metrics = scrape(server.url)
    assert 'orchestrator_triggers_buffered_total{environment="acme"} 5.0' in metrics

    alerter = Alerter(store=store, webhook_url=None, ui_url="http://127.0.0.1:3000",
                      clock=lambda: datetime.now(UTC))
    tick = dispatch_queued_triggers(store, now=datetime.now(UTC), limit=50, runs=lambda k: {},
                                    alerter=alerter)
    assert tick.drained == 5
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.burst_buffer)).scalar() == 0
    record = store.get_execution(buffered_id)
    assert (record.payload, record.idempotency_key, record.request_id) == \
        ({"n": 9}, "k9", shown["request_id"])
    assert buffered_id in {d.correlation.execution_id for d in tick.dispatches}
    assert acme.get(f"/v1/executions/{buffered_id}").json()["buffered"] is False


@pytest.mark.parametrize("policy", [
    BurstPolicy(enabled=False, environments=frozenset({"*"}), threshold=1),
    BurstPolicy(enabled=True, environments=frozenset({"someone-else"}), threshold=1),
])
def test_gate_switches(serve, key_for, store: Store, make_workflow, policy) -> None:
    make_workflow("digest", environment="acme")
    acme = Client(serve(burst=policy).url, key_for("acme"))
    for _ in range(5):
        assert acme.post("/v1/workflows/digest/trigger", {}).status_code == 202
    assert len(store.list_executions()) == 5


def test_schedules_over_http(serve, key_for, make_workflow) -> None:
    make_workflow("digest", environment="acme")
    server = serve()
    acme, other = Client(server.url, key_for("acme")), Client(server.url, key_for("other"))
    bad = error_of(acme.post("/v1/schedules", {"workflow": "digest", "cron": "61 * * * *"}), 422)
    assert bad["field"] == "cron"
    assert error_of(acme.post("/v1/schedules", {"workflow": "digest", "cron": "* * * * *",
                                                "timezone": "Mars/Olympus"}), 422)["field"] == \
        "timezone"
    assert error_of(acme.post("/v1/schedules", {"workflow": "nope", "cron": "* * * * *"}),
                    404)["code"] == "not_found"
    created = acme.post("/v1/schedules", {"workflow": "digest", "cron": "0 9 * * *",
                                          "timezone": "Europe/Paris", "key": "daily",
                                          "payload": {"user": "ada"}})
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert len(schedule["upcoming"]) == 5 and schedule["next_run_at"].endswith("Z")
    upsert = acme.post("/v1/schedules", {"workflow": "digest", "cron": "0 10 * * *",
                                         "key": "daily"})
    assert upsert.status_code == 200 and upsert.json()["id"] == schedule["id"]
    path = f"/v1/schedules/{schedule['id']}"
    assert [s["id"] for s in acme.get("/v1/schedules").json()["schedules"]] == [schedule["id"]]
    assert other.get("/v1/schedules").json()["schedules"] == []
    assert error_of(other.get(path), 404)["code"] == "not_found"
    assert error_of(other.delete(path), 404)["code"] == "not_found"
    assert acme.post(path + "/pause").json()["enabled"] is False
    assert acme.post(path + "/resume").json()["enabled"] is True
    assert acme.delete(path).status_code == 204
    assert error_of(acme.get(path), 404)["code"] == "not_found"

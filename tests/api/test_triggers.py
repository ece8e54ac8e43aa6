"""The HTTP API through a real server on loopback, on SQLite and PostgreSQL: triggers and their
correlation, idempotency (concurrency, TTL), debounce, batches, child triggers, bad input,
cross-environment isolation, metrics and the OpenAPI document."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from orchestrator.store import Store
from tests.api.conftest import Client, error_of, scrape
from tests.conftest import ManualClock

pytestmark = pytest.mark.slow


@pytest.fixture
def acme(serve, key_for, make_workflow) -> Client:
    make_workflow("digest", environment="acme")
    return Client(serve().url, key_for("acme"))


def test_trigger_queues_with_the_callers_request_id(acme: Client, store: Store) -> None:
    response = acme.post("/v1/workflows/digest/trigger", {"payload": {"user": "ada"}},
                         headers={"X-Request-Id": "req-from-caller-1"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"execution_id", "request_id", "status", "deduplicated"}
    assert (body["request_id"], body["status"], body["deduplicated"]) == \
        ("req-from-caller-1", "queued", False)
    record = store.get_execution(body["execution_id"])
    assert (record.request_id, record.source.value, record.payload) == \
        ("req-from-caller-1", "api", {"user": "ada"})
    assert [q.execution_id for q in store.queued_triggers(10)] == [body["execution_id"]]
    shown = acme.get(f"/v1/executions/{body['execution_id']}").json()
    assert (shown["status"], shown["request_id"], shown["buffered"]) == \
        ("queued", "req-from-caller-1", False)
    listed = acme.get("/v1/executions?workflow=digest&status=queued").json()["executions"]
    assert [e["execution_id"] for e in listed] == [body["execution_id"]]
    generated = acme.post("/v1/workflows/digest/trigger", {}).json()
    assert generated["request_id"] and generated["request_id"] != "req-from-caller-1"


def test_same_key_concurrently_makes_one_execution(acme: Client, store: Store) -> None:
    def call(_: int) -> tuple[int, dict]:
        r = Client(acme.url, acme.session.headers["Authorization"].split()[1]).post(
            "/v1/workflows/digest/trigger", {"idempotency_key": "order-42"})
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(call, range(100)))
    assert {status for status, _ in results} == {202}
    ids = {body["execution_id"] for _, body in results}
    assert len(ids) == 1
    assert sum(not body["deduplicated"] for _, body in results) == 1
    assert [e.execution_id for e in store.list_executions()] == list(ids)
    assert len(store.queued_triggers(1000)) == 1


def test_expired_key_starts_a_fresh_execution(serve, key_for, make_workflow) -> None:
    clock = ManualClock()  # the TTL passes by moving the server's clock, not by sleeping
    make_workflow("digest", environment="acme")
    acme = Client(serve(clock=clock).url, key_for("acme"))
    body = {"idempotency_key": "short", "idempotency_key_ttl": "1s"}
    first = acme.post("/v1/workflows/digest/trigger", body).json()
    shown = acme.get(f"/v1/executions/{first['execution_id']}").json()
    assert shown["idempotency_key"] == "short" and shown["idempotency_key_expires_at"]
    assert acme.post("/v1/workflows/digest/trigger", body).json()["execution_id"] == \
        first["execution_id"]
    [listed] = acme.get("/v1/executions").json()["executions"]
    assert listed["idempotency_key_expires_at"] == shown["idempotency_key_expires_at"]
    clock.advance(timedelta(seconds=0.9))
    assert acme.post("/v1/workflows/digest/trigger", body).json()["deduplicated"]
    clock.advance(timedelta(seconds=0.2))
    fresh = acme.post("/v1/workflows/digest/trigger", body).json()
    assert fresh["execution_id"] != first["execution_id"] and not fresh["deduplicated"]


@pytest.mark.parametrize(("mode", "kept"), [("trailing", 3), ("leading", 1)])
def test_debounce_modes(acme: Client, store: Store, mode: str, kept: int) -> None:
    debounce = {"key": "typing", "delay": "30s", "mode": mode, "max_delay": "2m"}
    bodies = [acme.post("/v1/workflows/digest/trigger",
                        {"payload": {"n": n}, "debounce": debounce}).json() for n in (1, 2, 3)]
    assert len({b["execution_id"] for b in bodies}) == 1
    [record] = store.list_executions()
    assert record.payload == {"n": kept}
    [queued] = store.queued_triggers(10)
    assert queued.available_at is not None  # waits for the window to close


def test_batch_with_batch_key_and_item_keys(acme: Client, store: Store) -> None:
    body = {"idempotency_key": "import-7",
            "items": [{"payload": {"i": 0}}, {"payload": {"i": 1}, "idempotency_key": "own"},
                      {"payload": {"i": 2}}]}
    first = acme.post("/v1/workflows/digest/trigger-batch", body)
    assert first.status_code == 202, first.text
    items = first.json()["items"]
    assert len({i["execution_id"] for i in items}) == 3
    keys = {e.idempotency_key for e in store.list_executions()}
    assert keys == {"import-7:0", "own", "import-7:2"}
    assert len({e.batch_id for e in store.list_executions()}) == 1
    again = acme.post("/v1/workflows/digest/trigger-batch", body).json()["items"]
    assert [i["execution_id"] for i in again] == [i["execution_id"] for i in items]
    assert all(i["deduplicated"] for i in again)
    too_many = acme.post("/v1/workflows/digest/trigger-batch", {"items": [{}] * 501})
    assert error_of(too_many, 422)["field"] == "items"


def test_child_trigger_records_its_parent(acme: Client, store: Store) -> None:
    parent = acme.post("/v1/workflows/digest/trigger", {}).json()["execution_id"]
    child = acme.post("/v1/workflows/digest/trigger", {"parent_execution_id": parent}).json()
    record = store.get_execution(child["execution_id"])
    assert (record.parent_execution_id, record.source.value) == (parent, "child")
    missing = acme.post("/v1/workflows/digest/trigger", {"parent_execution_id": "nope"})
    assert error_of(missing, 422)["field"] == "parent_execution_id"


def test_bad_input_answers(acme: Client, store: Store) -> None:
    big = b'{"payload": {"x": "' + b"a" * (1024 * 1024) + b'"}}'
    assert error_of(acme.post("/v1/workflows/digest/trigger", data=big), 413)["code"] == \
        "payload_too_large"
    assert error_of(acme.post("/v1/workflows/digest/trigger", data=b'{"payload":'),
                    400)["code"] == "malformed_json"
    assert error_of(acme.post("/v1/workflows/nope/trigger", {}), 404)["code"] == "not_found"
    invalid = error_of(acme.post("/v1/workflows/digest/trigger",
                                 {"idempotency_key_ttl": "soon"}), 422)
    assert invalid["field"] == "idempotency_key_ttl" and "idempotency_key_ttl" in \
        invalid["message"]
    assert error_of(acme.post("/v1/workflows/digest/trigger", {"paylod": {}}),
                    422)["field"] == "paylod"
    assert error_of(acme.post("/v1/workflows/digest/trigger", {},
                              headers={"X-Request-Id": "bad id"}), 422)["field"] == \
        "X-Request-Id"
    # PostgreSQL cannot store NUL: refused up front, by field, on both stores (not a 503).
    nul = error_of(acme.post("/v1/workflows/digest/trigger",
                             {"payload": {"note": {"text": "a\u0000b"}}}), 422)
    assert nul["field"] == "payload.note.text" and "NUL character" in nul["message"]
    batch_nul = error_of(acme.post("/v1/workflows/digest/trigger-batch",
                                   {"items": [{}, {"payload": {"k\u0000": 1}}]}), 422)
    assert batch_nul["field"] == "items.1.payload.k\\x00"
    anonymous = Client(acme.url)
    assert error_of(anonymous.post("/v1/workflows/digest/trigger", {}), 401)["code"] == \
        "unauthorized"
    wrong = Client(acme.url, "ork_not-a-key")
    assert error_of(wrong.get("/v1/executions"), 401)["code"] == "unauthorized"
    assert store.list_executions() == []


def test_another_environment_sees_nothing(acme: Client, key_for, make_workflow) -> None:
    make_workflow("digest", environment="other")
    other = Client(acme.url, key_for("other"))
    mine = acme.post("/v1/workflows/digest/trigger", {"idempotency_key": "k"}).json()
    assert error_of(other.get(f"/v1/executions/{mine['execution_id']}"), 404)["code"] == \
        "not_found"
    assert other.get("/v1/executions").json()["executions"] == []
    theirs = other.post("/v1/workflows/digest/trigger", {"idempotency_key": "k"}).json()
    assert theirs["execution_id"] != mine["execution_id"] and not theirs["deduplicated"]
    make_workflow("acme-only", environment="acme")
    assert error_of(other.post("/v1/workflows/acme-only/trigger", {}), 404)["code"] == \
        "not_found"


def test_metrics_and_openapi(acme: Client) -> None:
    acme.post("/v1/workflows/digest/trigger", {"idempotency_key": "m"})
    acme.post("/v1/workflows/digest/trigger", {"idempotency_key": "m"})
    acme.post("/v1/workflows/digest/trigger", data=b"{")
    text = scrape(acme.url)
    assert 'orchestrator_triggers_accepted_total{environment="acme",source="api"} 1.0' in text
    assert 'orchestrator_triggers_deduplicated_total{environment="acme"} 1.0' in text
    assert 'orchestrator_requests_rejected_total{code="malformed_json"} 1.0' in text
    assert 'orchestrator_dispatch_lag_seconds{environment="acme"}' in text
    assert acme.get("/healthz").json() == {"status": "ok"}
    document = acme.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/v1/workflows/{name}/trigger", "/v1/workflows/{name}/trigger-batch",
            "/v1/webhooks/{webhook_id}", "/v1/executions", "/v1/executions/{execution_id}",
            "/v1/schedules", "/v1/schedules/{schedule_id}"} <= set(document["paths"])
    assert "202" in document["paths"]["/v1/workflows/{name}/trigger"]["post"]["responses"]
    assert "TriggerBody" in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if "name" in p}
            assert declared >= set(re.findall(r"{(\w+)}", path)), (method, path)
            assert all(p.get("schema") for p in operation.get("parameters", [])
                       if p.get("in") == "path")
            rejections = [r for code, r in operation["responses"].items() if code[0] in "45"]
            assert rejections and all(r["content"]["application/json"]["schema"] ==
                                      {"$ref": "#/components/schemas/Error"} for r in rejections)
    hook = document["paths"]["/v1/webhooks/{webhook_id}"]["post"]
    assert hook["security"] == [] and document["paths"]["/healthz"]["get"]["security"] == []
    assert {p["name"] for p in hook["parameters"] if p.get("required")} == {"webhook_id"}
    assert {p["name"] for p in hook["parameters"] if "name" in p} == {
        "webhook_id", "webhook-id", "webhook-timestamp", "webhook-signature",
        "X-Orchestrator-Timestamp", "X-Orchestrator-Signature"}
    ttl = document["components"]["schemas"]["TriggerBody"]["properties"]["idempotency_key_ttl"]
    assert "format" not in json.dumps(ttl) and '"number"' in json.dumps(ttl)  # "30s" or 30


def test_a_caller_gone_mid_body_is_counted_not_logged_as_a_fault(acme: Client, store: Store,
                                                                 caplog) -> None:
    host, port = acme.url.removeprefix("http://").split(":")
    key = acme.session.headers["Authorization"]
    with caplog.at_level(logging.ERROR, logger="orchestrator"):
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(f"POST /v1/workflows/digest/trigger HTTP/1.1\r\nHost: {host}\r\n"
                        f"Authorization: {key}\r\nContent-Type: application/json\r\n"
                        "Content-Length: 100\r\n\r\n{\"payload\": ".encode())
        deadline = time.monotonic() + 10
        metric = 'orchestrator_requests_rejected_total{code="client_disconnected"} 1.0'
        while metric not in scrape(acme.url):
            assert time.monotonic() < deadline, "the disconnect was not counted"
            time.sleep(0.05)
    assert [r.getMessage() for r in caplog.records] == []
    assert store.list_executions() == []

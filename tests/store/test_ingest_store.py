"""Admission in the store, on SQLite and PostgreSQL: idempotency claims (TTL, release after a
pipeline fault), debounce windows, the burst buffer with read fallback and its fair drainer,
fair queue pages, hashed API keys."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from harness.http_server import Answer, loopback_server
from orchestrator.alerts import Alerter
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.ingest import Debounce, DebounceMode, TriggerRequest
from orchestrator.domain.records import DeliveryStatus, ExecutionStatus, Outcome
from orchestrator.store import Store
from orchestrator.store import tables as t
from orchestrator.store.access import AccessStore
from orchestrator.store.fairness import FairQueue
from orchestrator.store.ingest import IngestStore
from tests.conftest import NOW


def request(*, key: str | None = None, env: str = "default", payload: dict | None = None,
            ttl: timedelta = timedelta(hours=24), debounce: Debounce | None = None,
            batch_id: str | None = None, parent: str | None = None) -> TriggerRequest:
    return TriggerRequest(
        correlation=Correlation(execution_id=new_id(), request_id="req-" + new_id()[:8],
                                source=Source.API, workflow="digest", environment=env,
                                idempotency_key=key, parent_execution_id=parent,
                                payload=payload or {}),
        idempotency_ttl=ttl, debounce=debounce, batch_id=batch_id)


def test_same_key_dedupes_until_expiry(store: Store, make_workflow) -> None:
    make_workflow()
    make_workflow(environment="other")
    ingest = IngestStore(store)
    [first] = ingest.admit([request(key="order-42", ttl=timedelta(seconds=60))], NOW)
    [again] = ingest.admit([request(key="order-42")], NOW + timedelta(seconds=59))
    assert (again.execution_id, again.request_id, again.deduplicated) == \
        (first.execution_id, first.request_id, True)
    [fresh] = ingest.admit([request(key="order-42")], NOW + timedelta(seconds=61))
    assert fresh.execution_id != first.execution_id and not fresh.deduplicated
    other_env = ingest.admit([request(key="order-42", env="other")], NOW)[0]
    assert other_env.execution_id not in (first.execution_id, fresh.execution_id)
    assert len(store.list_executions()) == 3


def test_key_of_a_pipeline_fault_is_released(store: Store, make_workflow) -> None:
    make_workflow()
    ingest = IngestStore(store)
    [first] = ingest.admit([request(key="k")], NOW)
    store.finish_execution(first.execution_id, status=ExecutionStatus.ERROR,
                           outcome=Outcome.USER_ERROR, finalized_by="core", now=NOW)
    assert ingest.admit([request(key="k")], NOW)[0].execution_id == first.execution_id
    with store._write() as conn:  # the same key, now on a pipeline fault
        conn.execute(t.executions.update().values(outcome=Outcome.PIPELINE_FAULT.value))
    retry = ingest.admit([request(key="k")], NOW)[0]
    assert retry.execution_id != first.execution_id and not retry.deduplicated


def test_debounce_trailing_replaces_leading_keeps(store: Store, make_workflow) -> None:
    make_workflow()
    ingest = IngestStore(store)
    for mode, expected in ((DebounceMode.TRAILING, 3), (DebounceMode.LEADING, 1)):
        debounce = Debounce(key=f"d-{mode.value}", delay=timedelta(seconds=10), mode=mode,
                            max_delay=timedelta(seconds=25))
        ids = {ingest.admit([request(payload={"n": n}, debounce=debounce)],
                            NOW + timedelta(seconds=5 * n))[0].execution_id for n in (1, 2, 3)}
        [execution_id] = ids
        assert store.get_execution(execution_id).payload == {"n": expected}
        queue = FairQueue(store)
        # 3rd trigger at +15s: due at +25s, capped by max_delay (first at +5s) at +30s -> +25s
        assert [q.execution_id for q in queue.queued(NOW + timedelta(seconds=24), 10)] == []
        assert [q.execution_id for q in queue.queued(NOW + timedelta(seconds=25), 10)] == \
            [execution_id]
        # once due, a new trigger opens a new window
        late = ingest.admit([request(debounce=debounce)], NOW + timedelta(seconds=26))[0]
        assert late.execution_id != execution_id
        with store._write() as conn:
            conn.execute(t.queued_triggers.delete())


def test_buffered_trigger_is_readable_then_drained(store: Store, make_workflow) -> None:
    make_workflow()
    ingest = IngestStore(store)
    [parent] = ingest.admit([request()], NOW)
    [buffered, child] = ingest.admit(
        [request(key="b-1", payload={"x": 1}), request(parent=parent.execution_id)], NOW,
        buffer=[True, True])
    assert buffered.buffered and not child.buffered  # a child trigger bypasses the gate
    view = ingest.execution_view(buffered.execution_id, "default")
    assert view["status"] == "queued" and view["buffered"] is True
    assert view["payload"] == {"x": 1} and view["idempotency_key"] == "b-1"
    assert view["idempotency_key_expires_at"] == "2030-01-16T12:00:30Z"
    assert {v["execution_id"] for v in ingest.list_views("default")} == \
        {parent.execution_id, buffered.execution_id, child.execution_id}
    again = ingest.admit([request(key="b-1")], NOW)[0]
    assert again.deduplicated and again.execution_id == buffered.execution_id
    assert FairQueue(store).drain(10) == [buffered.execution_id]
    record = store.get_execution(buffered.execution_id)
    assert (record.request_id, record.idempotency_key) == (buffered.request_id, "b-1")
    assert ingest.execution_view(buffered.execution_id, "default")["buffered"] is False


def test_stuck_buffer_entry_alerts_once_through_the_alerter(store: Store, make_workflow,
                                                            caplog) -> None:
    make_workflow()
    [entry] = IngestStore(store).admit([request(key="s-1")], NOW, buffer=[True])
    queue = FairQueue(store)
    later = NOW + timedelta(minutes=11)
    assert queue.stuck(NOW + timedelta(minutes=5), timedelta(minutes=10)) == []
    [stuck] = queue.stuck(later, timedelta(minutes=10))
    assert (stuck.execution_id, stuck.request_id, stuck.idempotency_key, stuck.created_at) == \
        (entry.execution_id, entry.request_id, "s-1", NOW)
    with loopback_server() as sink:
        sink.answer("/alerts", Answer(200, {"ok": True}))
        alerter = Alerter(store=store, webhook_url=f"{sink.url}/alerts",
                          ui_url="http://127.0.0.1:3000", clock=lambda: later)
        with caplog.at_level(logging.ERROR, logger="orchestrator.alerts"):
            alert = alerter.buffer_stuck(stuck)
        assert (alert.kind, alert.execution_id, alert.environment, alert.workflow) == \
            ("buffer_stuck", entry.execution_id, "default", "digest")
        [stored] = store.list_alerts()
        assert (stored.delivery_status, stored.delivery_attempts, stored.delivered_at) == \
            (DeliveryStatus.DELIVERED, 1, later)
        [hit] = sink.hits("/alerts")
        body = hit.json()
        assert (body["kind"], body["execution_id"], body["request_id"], body["waited_seconds"],
                body["idempotency_key"], body["environment"]) == \
            ("buffer_stuck", entry.execution_id, entry.request_id, 660, "s-1", "default")
        assert "waited 660s in the burst buffer" in body["text"]
        [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "burst buffer" in line.getMessage()
        assert line.execution_id == entry.execution_id  # type: ignore[attr-defined]
        # Alerted once: the entry no longer counts as stuck, and raising again is the same alert.
        assert queue.stuck(NOW + timedelta(minutes=12), timedelta(minutes=10)) == []
        assert alerter.buffer_stuck(stuck).id == alert.id
        assert len(sink.hits("/alerts")) == 1 and len(store.list_alerts()) == 1
    # It never expires: still buffered and readable.
    assert IngestStore(store).execution_view(entry.execution_id, "default")["buffered"]


def test_queue_page_is_round_robin_across_environments(store: Store, make_workflow) -> None:
    make_workflow()
    make_workflow(environment="small")
    ingest = IngestStore(store)
    ingest.admit([request() for _ in range(30)], NOW)
    [lone] = ingest.admit([request(env="small")], NOW + timedelta(seconds=1))
    page = FairQueue(store).queued(NOW + timedelta(seconds=2), 5)
    assert len(page) == 5 and page[1].execution_id == lone.execution_id
    assert [q.environment for q in page] == ["default", "small", "default", "default",
                                             "default"]


def test_api_keys_are_stored_hashed(store: Store) -> None:
    access = AccessStore(store)
    record, key = access.create_api_key("acme", NOW)
    assert access.environment_of_key(key) == "acme"
    assert access.environment_of_key(key + "x") is None
    with store._read() as conn:
        stored = conn.execute(sa.select(t.api_keys)).one()
    assert key not in stored and stored.key_hash != key and stored.prefix == key[:12]
    assert [k.id for k in access.list_api_keys("acme")] == [record.id]

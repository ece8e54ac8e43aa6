"""Admission in the store, on SQLite and PostgreSQL: idempotency claims (TTL, release after a
pipeline fault), debounce windows, the burst buffer with read fallback and its fair drainer,
fair queue pages, hashed API keys."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from harness.http_server import Answer, loopback_server
from orchestrator.alerts import Alerter
from orchestrator.api.views import execution_view, list_views
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.ingest import Debounce, DebounceMode, TriggerRequest
from orchestrator.domain.records import DeliveryStatus, ExecutionStatus, Outcome
from orchestrator.store import Store
from orchestrator.store import tables as t
from tests.conftest import ALL_BACKENDS, NOW

pytestmark = pytest.mark.backends(*ALL_BACKENDS)


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
    ingest = store.admission
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
    ingest = store.admission
    [first] = ingest.admit([request(key="k")], NOW)
    store.finish_execution(first.execution_id, status=ExecutionStatus.ERROR,
                           outcome=Outcome.USER_ERROR, finalized_by="core", now=NOW)
    assert ingest.admit([request(key="k")], NOW)[0].execution_id == first.execution_id
    [faulted] = ingest.admit([request(key="f")], NOW)  # a key whose execution is a fault
    store.finish_execution(faulted.execution_id, status=ExecutionStatus.ERROR,
                           outcome=Outcome.PIPELINE_FAULT, finalized_by="hook", now=NOW)
    retry = ingest.admit([request(key="f")], NOW)[0]
    assert retry.execution_id != faulted.execution_id and not retry.deduplicated


def test_debounce_trailing_replaces_leading_keeps(store: Store, make_workflow) -> None:
    make_workflow()
    ingest = store.admission
    for mode, expected in ((DebounceMode.TRAILING, 3), (DebounceMode.LEADING, 1)):
        debounce = Debounce(key=f"d-{mode.value}", delay=timedelta(seconds=10), mode=mode,
                            max_delay=timedelta(seconds=25))
        ids = {ingest.admit([request(payload={"n": n}, debounce=debounce)],
                            NOW + timedelta(seconds=5 * n))[0].execution_id for n in (1, 2, 3)}
        [execution_id] = ids
        assert store.get_execution(execution_id).payload == {"n": expected}
        queue = store.queue
        # 3rd trigger at +15s: due at +25s, capped by max_delay (first at +5s) at +30s -> +25s
        assert [q.execution_id for q in queue.queued(NOW + timedelta(seconds=24), 10)] == []
        assert [q.execution_id for q in queue.queued(NOW + timedelta(seconds=25), 10)] == \
            [execution_id]
        # once due, a new trigger opens a new window
        late = ingest.admit([request(debounce=debounce)], NOW + timedelta(seconds=26))[0]
        assert late.execution_id != execution_id
        store.mark_dispatched([execution_id, late.execution_id], NOW)  # out of the next round


def test_buffered_trigger_is_readable_then_drained(store: Store, make_workflow) -> None:
    make_workflow()
    ingest = store.admission
    [parent] = ingest.admit([request()], NOW)
    [buffered, child] = ingest.admit(
        [request(key="b-1", payload={"x": 1}), request(parent=parent.execution_id)], NOW,
        buffer=[True, True])
    assert buffered.buffered and not child.buffered  # a child trigger bypasses the gate
    view = execution_view(ingest.find(buffered.execution_id, "default"))
    assert view["status"] == "queued" and view["buffered"] is True
    assert view["payload"] == {"x": 1} and view["idempotency_key"] == "b-1"
    assert view["idempotency_key_expires_at"] == "2030-01-16T12:00:30Z"
    assert {v["execution_id"] for v in list_views(ingest.visible("default"))} == \
        {parent.execution_id, buffered.execution_id, child.execution_id}
    again = ingest.admit([request(key="b-1")], NOW)[0]
    assert again.deduplicated and again.execution_id == buffered.execution_id
    assert store.queue.drain(10) == [buffered.execution_id]
    record = store.get_execution(buffered.execution_id)
    assert (record.request_id, record.idempotency_key) == (buffered.request_id, "b-1")
    assert execution_view(ingest.find(buffered.execution_id, "default"))["buffered"] is False


def test_stuck_buffer_entry_alerts_once_through_the_alerter(store: Store, make_workflow,
                                                            caplog) -> None:
    make_workflow()
    [entry] = store.admission.admit([request(key="s-1")], NOW, buffer=[True])
    queue = store.queue
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
    assert execution_view(store.admission.find(entry.execution_id, "default"))["buffered"]


def test_queue_page_is_round_robin_across_environments(store: Store, make_workflow) -> None:
    make_workflow()
    make_workflow(environment="small")
    ingest = store.admission
    ingest.admit([request() for _ in range(30)], NOW)
    [lone] = ingest.admit([request(env="small")], NOW + timedelta(seconds=1))
    page = store.queue.queued(NOW + timedelta(seconds=2), 5)
    assert len(page) == 5 and page[1].execution_id == lone.execution_id
    assert [q.environment for q in page] == ["default", "small", "default", "default",
                                             "default"]


@pytest.mark.sql_only("reads the stored row with SQL")
def test_api_keys_are_stored_hashed(store: Store) -> None:
    access = store.access
    record, key = access.create_api_key("acme", NOW)
    assert access.check_api_key(key, NOW).environment == "acme"
    assert access.check_api_key(key + "x", NOW) is None
    with store.db.read() as conn:
        stored = conn.execute(sa.select(t.api_keys)).one()
    assert key not in stored and stored.key_hash != key and stored.prefix == key[:12]
    assert [k.id for k in access.list_api_keys("acme")] == [record.id]


def test_next_startable_at_is_what_the_queue_sensor_waits_for(store: Store,
                                                              make_workflow) -> None:
    """The queue sensor's evaluation waits until this says there is work: nothing queued is
    None; a debounced trigger is its instant; a startable one, or one claimed by a batch whose
    run was not requested, is now; once the batch is dispatched nothing waits again."""
    make_workflow()
    queue = store.queue
    assert queue.next_startable_at(NOW) is None
    debounce = Debounce(key="d", delay=timedelta(seconds=10), mode=DebounceMode.TRAILING,
                        max_delay=timedelta(seconds=30))
    [debounced] = store.admission.admit([request(debounce=debounce)], NOW)
    assert queue.next_startable_at(NOW) == NOW + timedelta(seconds=10)
    assert queue.next_startable_at(NOW + timedelta(seconds=10)) == NOW + timedelta(seconds=10)
    [plain] = store.admission.admit([request()], NOW)
    assert queue.next_startable_at(NOW) == NOW
    batch = store.batches.claim_queued("default", [plain.execution_id], NOW)
    assert batch is not None
    assert queue.next_startable_at(NOW) == NOW  # its run still to be requested
    store.batches.mark_dispatched([batch.batch_id], NOW)
    assert queue.next_startable_at(NOW) == NOW + timedelta(seconds=10)
    store.mark_dispatched([debounced.execution_id], NOW + timedelta(seconds=10))
    assert queue.next_startable_at(NOW + timedelta(seconds=11)) is None

"""``queued_trigger_sensor``: queued triggers become runs with run key ``trigger:<id>``,
dispatch before mark."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from harness.http_server import Answer, loopback_server
from orchestrator.dagster.sensors import QUEUE_SENSOR
from orchestrator.domain.correlation import (
    TAG_EXECUTION_ID,
    TAG_REQUEST_ID,
    Correlation,
    Source,
    new_id,
)
from orchestrator.domain.ingest import TriggerRequest
from orchestrator.domain.records import DeliveryStatus, TriggerStatus
from orchestrator.store import Store
from tests.dagster.conftest import SensorHarness, real_now


def test_queued_trigger_dispatched_then_marked(instance: dg.DagsterInstance, store_url: str,
                                               store: Store, make_workflow) -> None:
    make_workflow()
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR)
    correlation = Correlation(execution_id="11111111-1111-1111-1111-111111111111",
                              request_id="req-from-caller", source=Source.API, workflow="digest",
                              environment="default", payload={"user": "ada"})
    store.create_execution(correlation, real_now(), enqueue=True)
    [request] = sensor.tick()
    assert request.run_key == f"trigger:{correlation.execution_id}"
    assert request.tags[TAG_EXECUTION_ID] == correlation.execution_id
    assert request.tags[TAG_REQUEST_ID] == "req-from-caller"
    assert store.queued_triggers(10)[0].status is TriggerStatus.QUEUED  # not marked yet
    assert [r.run_key for r in sensor.tick()] == [request.run_key]  # no run yet: again
    sensor.create_runs([request])
    assert sensor.tick() == []
    assert store.queued_triggers(10) == []


def test_stuck_buffer_entries_alert_through_the_alert_webhook(
        instance: dg.DagsterInstance, store_url: str, store: Store, make_workflow) -> None:
    """The burst buffer drains one entry per tick here; entries older than
    ``burst_stuck_after`` raise one ``buffer_stuck`` alert each: a row, delivered by POST."""
    make_workflow()
    buffered_at = real_now() - timedelta(minutes=3)
    entries = store.admission.admit(
        [TriggerRequest(correlation=Correlation(
            execution_id=new_id(), request_id=f"req-{n}", source=Source.API, workflow="digest",
            environment="default", payload={"n": n})) for n in range(2)],
        buffered_at, buffer=[True, True])
    assert all(e.buffered for e in entries)
    with loopback_server() as sink:
        sink.answer("/alerts", Answer(200, {"ok": True}))
        sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_runs_per_tick=1,
                               burst_stuck_after=timedelta(minutes=2),
                               alert_webhook_url=f"{sink.url}/alerts")
        first = sensor.tick()
        alerts = store.list_alerts()
        assert sorted((a.kind, a.execution_id) for a in alerts) == sorted(
            ("buffer_stuck", e.execution_id) for e in entries)
        assert all(a.delivery_status is DeliveryStatus.DELIVERED and a.delivery_attempts == 1
                   for a in alerts)
        posted = {h.json()["execution_id"]: h.json() for h in sink.hits("/alerts")}
        assert set(posted) == {e.execution_id for e in entries}
        for entry in entries:
            body = posted[entry.execution_id]
            assert (body["kind"], body["request_id"]) == ("buffer_stuck", entry.request_id)
            assert body["waited_seconds"] >= 180 and "burst buffer" in body["text"]
        # The next tick drains the other entry and raises nothing new.
        sensor.create_runs(first)
        second = sensor.tick()
        assert {r.tags[TAG_EXECUTION_ID] for r in first + second} == \
            {e.execution_id for e in entries}
        assert len(store.list_alerts()) == 2 and len(sink.hits("/alerts")) == 2

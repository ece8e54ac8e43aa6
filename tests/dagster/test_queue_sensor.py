"""``queued_trigger_sensor``: queued triggers become runs with run key ``trigger:<id>``,
dispatch before mark."""

from __future__ import annotations

import dagster as dg

from orchestrator.dagster.sensors import QUEUE_SENSOR
from orchestrator.domain.correlation import TAG_EXECUTION_ID, TAG_REQUEST_ID, Correlation, Source
from orchestrator.domain.records import TriggerStatus
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

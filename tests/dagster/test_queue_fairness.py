"""``queued_trigger_sensor`` is fair across environments: a 10,000-trigger burst of one
environment delays another environment's single trigger by at most a tick; within one
environment, oldest first; each tick is capped."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from orchestrator.dagster.sensors import QUEUE_SENSOR
from orchestrator.domain.correlation import TAG_ENVIRONMENT, TAG_EXECUTION_ID, Correlation, Source
from orchestrator.domain.ingest import TriggerRequest
from orchestrator.store import Store
from tests.dagster.conftest import SensorHarness, real_now

pytestmark = pytest.mark.slow


def _requests(environment: str, n: int) -> list[TriggerRequest]:
    return [TriggerRequest(correlation=Correlation(
        execution_id=f"{environment[:4]}{i:08d}-0000-0000-0000-000000000000"[:36],
        request_id=f"r{i}", source=Source.API, workflow="digest", environment=environment))
        for i in range(n)]


def test_burst_of_one_environment_does_not_starve_another(
        instance: dg.DagsterInstance, store_url: str, store: Store, make_workflow) -> None:
    make_workflow()
    make_workflow(environment="small")
    ingest = store.admission
    start = real_now() - timedelta(minutes=5)
    burst = _requests("default", 10_000)
    for i in range(0, len(burst), 500):  # the burst is older than the lone trigger
        ingest.admit(burst[i:i + 500], start + timedelta(milliseconds=i))
    [lone] = ingest.admit(_requests("small", 1), start + timedelta(minutes=1))
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_runs_per_tick=50,
                           max_batch_size=1)  # batched: test_batch_runs.py

    first = sensor.tick()
    assert len(first) == 50  # capped per tick
    assert lone.execution_id in {r.tags[TAG_EXECUTION_ID] for r in first}
    burst_ids = [r.tags[TAG_EXECUTION_ID] for r in first if r.tags[TAG_ENVIRONMENT] == "default"]
    assert burst_ids == [c.correlation.execution_id for c in burst[:49]]  # oldest first
    sensor.create_runs(first)
    second = sensor.tick()
    assert [r.tags[TAG_EXECUTION_ID] for r in second] == \
        [c.correlation.execution_id for c in burst[49:99]]

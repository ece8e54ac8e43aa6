"""The sensors open one Dagster instance per code server process, not one per evaluation.

A code server evaluates a sensor with a context that holds only an instance *reference*; Dagster
opens a new instance from it (its whole storage) for a sensor that declares resources or reads
``context.instance``, and closes it after the tick. Ours declare none and keep the instance
they open, so an idle code server's ticks no longer pay for opening the storage (on SQLite,
40% of a tick's CPU; on PostgreSQL, new connections every tick). Evaluated here as the code
server does (``SensorEvaluationContext(instance_ref, ...)``), on SQLite and PostgreSQL stores.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from orchestrator.dagster.definitions import orchestrator_definitions
from orchestrator.dagster.sensors import (
    PRUNER_SENSOR,
    QUEUE_SENSOR,
    RECONCILER_SENSOR,
    SCHEDULE_SENSOR,
    dispose_kept_instances,
)
from orchestrator.settings import Settings

SENSORS = (SCHEDULE_SENSOR, QUEUE_SENSOR, RECONCILER_SENSOR, PRUNER_SENSOR)


def test_sensors_declare_no_resources(tmp_path) -> None:
    defs = orchestrator_definitions(Settings(database_url=f"sqlite:///{tmp_path}/unused.db"))
    for name in SENSORS:
        assert defs.get_sensor_def(name).required_resource_keys == set(), name


def test_ticks_open_the_dagster_instance_once(instance, store_url, monkeypatch) -> None:
    opened: list[dg.DagsterInstance] = []
    from_ref = dg.DagsterInstance.from_ref

    def counting(ref, *args, **kwargs):
        opened.append(from_ref(ref, *args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(dg.DagsterInstance, "from_ref", staticmethod(counting))
    settings = Settings(database_url=store_url, dispatch_lookahead=timedelta(0))
    defs = orchestrator_definitions(settings)
    ref = instance.get_ref()
    for _ in range(3):
        for name in SENSORS:
            with dg.SensorEvaluationContext(instance_ref=ref, last_tick_completion_time=None,
                                            last_run_key=None, cursor=None, log_key=None,
                                            repository_name=None,
                                            sensor_name=name) as context:
                result = defs.get_sensor_def(name).evaluate_tick(context)
                assert result.run_requests == [], name
    assert len(opened) == 1, f"{len(opened)} Dagster instances opened for 12 ticks"


@pytest.fixture(autouse=True)
def _forget_kept_instances():
    """Each test's instance is its own: drop the instances the sensors kept."""
    yield
    dispose_kept_instances()

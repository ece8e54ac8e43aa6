"""``schedule_trigger_sensor`` on a real Dagster instance: start before advance, run keys,
correlation tags, the per-tick cap, one-time schedules and the catch-up policy."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from orchestrator.dagster.sensors import SCHEDULE_SENSOR
from orchestrator.domain.correlation import (
    TAG_ENVIRONMENT,
    TAG_EXECUTION_ID,
    TAG_REQUEST_ID,
    TAG_SCHEDULED_FOR,
    TAG_SOURCE,
    TAG_TRIGGER_ID,
    TAG_WORKFLOW,
    derived_id,
    iso_utc,
)
from orchestrator.domain.records import ExecutionStatus
from orchestrator.store import Store
from tests.dagster.conftest import SensorHarness, minutes_ago, real_now


@pytest.fixture
def sensor(instance: dg.DagsterInstance, store_url: str) -> SensorHarness:
    # A run per occurrence (batch runs of due schedules: test_batch_runs.py).
    return SensorHarness(instance, store_url, SCHEDULE_SENSOR, max_runs_per_tick=3,
                         max_batch_size=1)


def _one_time(make_schedule, minutes_late: float):
    due = minutes_ago(minutes_late).replace(second=0)
    return make_schedule(now=due - timedelta(minutes=1), run_at=iso_utc(due)), due


def test_due_schedule_is_requested_with_correlation(sensor, store: Store, make_schedule) -> None:
    schedule, due = _one_time(make_schedule, 2)
    [request] = sensor.tick()
    run_key = f"schedule:{schedule.id}:{iso_utc(due)}"
    assert request.run_key == run_key
    execution_id = derived_id("execution", run_key)
    assert request.tags[TAG_EXECUTION_ID] == execution_id
    assert request.tags[TAG_SOURCE] == "schedule"
    assert request.tags[TAG_TRIGGER_ID] == schedule.id
    assert request.tags[TAG_SCHEDULED_FOR] == iso_utc(due)
    assert request.tags[TAG_WORKFLOW] == "digest" and request.tags[TAG_ENVIRONMENT] == "default"
    config = request.run_config["ops"]["run_workflow"]["config"]
    assert config["execution_id"] == execution_id
    assert config["request_id"] == request.tags[TAG_REQUEST_ID]
    assert config["payload"] == {"user": "ada"}
    execution = store.get_execution(execution_id)
    assert execution.status is ExecutionStatus.QUEUED
    assert execution.request_id == request.tags[TAG_REQUEST_ID]
    # Start before advance: nothing moves until the run exists.
    assert store.get_schedule(schedule.id).next_run_at == due


def test_repeated_evaluation_without_run_requests_same_key(sensor, store, make_schedule) -> None:
    _schedule, _ = _one_time(make_schedule, 1)
    first, second = sensor.tick(), sensor.tick()
    assert [r.run_key for r in first] == [r.run_key for r in second]
    assert first[0].tags == second[0].tags
    assert len(store.list_executions()) == 1


def test_advances_only_once_the_run_exists(sensor, store, make_schedule) -> None:
    due = minutes_ago(0.5).replace(second=0)
    schedule = make_schedule(now=due - timedelta(seconds=1), cron="* * * * *")
    assert schedule.next_run_at == due
    [request] = sensor.tick()
    dispatched = store.get_schedule(schedule.id).next_run_at  # `due`, or a later minute if the
    assert request.tags[TAG_SCHEDULED_FOR] == iso_utc(dispatched)  # clock rolled over meanwhile
    sensor.create_runs([request])
    assert sensor.tick() == []  # the run exists: advance, request nothing
    stored = store.get_schedule(schedule.id)
    assert stored.next_run_at == dispatched + timedelta(minutes=1)
    assert stored.last_scheduled_for == dispatched


def test_one_time_schedule_disables_itself_after_dispatch(sensor, store, make_schedule) -> None:
    schedule, _ = _one_time(make_schedule, 1)
    sensor.create_runs(sensor.tick())
    assert sensor.tick() == []
    stored = store.get_schedule(schedule.id)
    assert (stored.enabled, stored.next_run_at) == (False, None)
    assert sensor.tick() == []


def test_run_created_but_never_submitted_is_requested_again(sensor, store, make_schedule) -> None:
    schedule, due = _one_time(make_schedule, 1)
    requests = sensor.tick()
    sensor.create_runs(requests, status=dg.DagsterRunStatus.NOT_STARTED)
    again = sensor.tick()
    assert [r.run_key for r in again] == [r.run_key for r in requests]
    assert store.get_schedule(schedule.id).next_run_at == due


def test_cap_per_tick_oldest_first_rest_next_tick(sensor, store, make_schedule) -> None:
    schedules = [_one_time(make_schedule, 10 - i)[0] for i in range(7)]  # oldest first
    first = sensor.tick()
    assert [r.tags["orchestrator/trigger_id"] for r in first] == [s.id for s in schedules[:3]]
    sensor.create_runs(first)
    second = sensor.tick()
    assert [r.tags["orchestrator/trigger_id"] for r in second] == [s.id for s in schedules[3:6]]
    sensor.create_runs(second)
    third = sensor.tick()
    assert [r.tags["orchestrator/trigger_id"] for r in third] == [schedules[6].id]
    sensor.create_runs(third)
    assert sensor.tick() == []
    assert all(not store.get_schedule(s.id).enabled for s in schedules)
    assert len(store.list_executions()) == 7


def test_missed_occurrences_run_latest_only(sensor, store, make_schedule) -> None:
    start = minutes_ago(10).replace(second=0)
    schedule = make_schedule(now=start - timedelta(seconds=1), cron="* * * * *")
    [request] = sensor.tick()
    latest = real_now().replace(second=0)
    assert request.tags[TAG_SCHEDULED_FOR] in {iso_utc(latest), iso_utc(latest -
                                                                        timedelta(minutes=1))}
    stored = store.get_schedule(schedule.id)
    assert stored.skipped_superseded >= 9
    assert iso_utc(stored.next_run_at) == request.tags[TAG_SCHEDULED_FOR]


def test_missed_beyond_window_runs_nothing_and_counts(instance, store_url, store,
                                                      make_schedule) -> None:
    sensor = SensorHarness(instance, store_url, SCHEDULE_SENSOR,
                           catchup_window=timedelta(seconds=0))
    start = minutes_ago(5).replace(second=0)
    schedule = make_schedule(now=start - timedelta(seconds=1), cron="* * * * *")
    assert sensor.tick() == []
    stored = store.get_schedule(schedule.id)
    assert stored.skipped_outside_window == 1
    assert stored.skipped_superseded >= 4
    assert stored.next_run_at > real_now() - timedelta(seconds=1)
    assert store.list_executions() == []


def test_paused_schedule_is_not_dispatched(sensor, store, make_schedule) -> None:
    schedule, _ = _one_time(make_schedule, 1)
    store.pause_schedule(schedule.id, real_now())
    assert sensor.tick() == []

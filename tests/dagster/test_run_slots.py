"""The queue sensor within Dagster's run slots (``max_concurrent_runs`` of a queued run
coordinator), on SQLite and PostgreSQL: runs are requested only for free slots, a backlog is
spread evenly over all of them, and ``ORCHESTRATOR_DISPATCH_TO_FREE_SLOTS=false`` hands
everything to Dagster's queue at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from orchestrator.dagster.coordinator import run_slots
from orchestrator.dagster.sensors import QUEUE_SENSOR
from orchestrator.domain.correlation import DAGSTER_RUN_KEY_TAG, TAG_EXECUTION_ID
from orchestrator.domain.records import TriggerStatus
from orchestrator.store import Store
from orchestrator.triggers.dispatch import RunSlots, spread_size
from tests.dagster.conftest import SensorHarness, instance_from
from tests.dagster.test_batch_runs import _batches, _members, _queue

SLOTS = 2


@pytest.fixture
def instance(dagster_storage_template: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    with instance_from(dagster_storage_template, tmp_path_factory.mktemp("dagster_home"),
                       {"run_coordinator": {
                           "module": "dagster._core.run_coordinator",
                           "class": "QueuedRunCoordinator",
                           "config": {"max_concurrent_runs": SLOTS}}}) as instance:
        yield instance


def _finish(instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    [run] = instance.get_runs(dg.RunsFilter(tags={DAGSTER_RUN_KEY_TAG: request.run_key}))
    instance.report_run_canceled(run)


def test_spread_size_is_an_even_share_within_floor_and_maximum() -> None:
    assert spread_size(600, free=2, floor=16, max_size=200) == 200
    assert spread_size(300, free=2, floor=16, max_size=200) == 150
    assert spread_size(19, free=2, floor=16, max_size=200) == 16
    assert spread_size(5, free=4, floor=1, max_size=200) == 2
    assert spread_size(5, free=0, floor=1, max_size=200) == 5


def test_a_slot_about_to_free_shares_the_backlog() -> None:
    # 178 left, the other slot's run 20 from done: 99 now, 79 for it once it frees (not 178
    # now and the other slot idle once its 20 are done).
    assert spread_size(178, free=1, floor=16, max_size=200, busy=[20]) == 99
    # A slot further from done than the share takes no part (no halving of the tail).
    assert spread_size(80, free=1, floor=16, max_size=200, busy=[150]) == 80
    # The level fills the nearest-done slots first: 60 + 10 + 20 over three slots.
    assert spread_size(60, free=1, floor=1, max_size=200, busy=[20, 10, 500]) == 30
    assert spread_size(20, free=1, floor=16, max_size=200, busy=[0, 0, 0]) == 16  # the floor
    assert RunSlots(capacity=2, in_use=3).free == 0


def test_slots_are_read_from_the_run_coordinator(instance, store_url, store,
                                                 make_workflow) -> None:
    assert run_slots(instance) == RunSlots(capacity=SLOTS, in_use=0)
    for coordinator in ({"class": "QueuedRunCoordinator", "config": {"max_concurrent_runs": -1}},
                        {"class": "DefaultRunCoordinator"}):  # no limit: every run at once
        with dg.instance_for_test(overrides={"run_coordinator": {
                "module": "dagster._core.run_coordinator", **coordinator}}) as unlimited:
            assert run_slots(unlimited) is None


def test_a_backlog_is_spread_over_the_slots_and_waits_for_a_free_one(
        instance, store_url, store: Store, make_workflow) -> None:
    make_workflow()
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50,
                           batch_concurrency=4)
    first = _queue(store, 30)
    requests = sensor.tick()
    # An even share for each free slot (not 30 in one run and the other slot idle), oldest
    # first.
    assert [_members(store, b) for b in _batches(requests)] == [
        [c.execution_id for c in first[:15]], [c.execution_id for c in first[15:]]]
    assert len(requests) == SLOTS
    sensor.create_runs(requests)
    assert run_slots(instance) == RunSlots(capacity=SLOTS, in_use=SLOTS)

    later = _queue(store, 20)
    assert sensor.tick() == []  # every slot taken: the triggers wait in the store
    waiting = {q.execution_id for q in store.queued_triggers(100)
               if q.status is TriggerStatus.QUEUED and not q.run_batch_id}
    assert waiting == {c.execution_id for c in later}

    _finish(instance, requests[0])
    # One slot free: one run. The busy slot's batch has 15 members to go, fewer than the 20
    # waiting, so it is done first and shares the backlog: 18 now ((20 + 15) / 2), oldest
    # first, and 2 left for that slot.
    [freed] = sensor.tick()
    assert _members(store, freed) == [c.execution_id for c in later[:18]]
    sensor.create_runs([freed])
    _finish(instance, requests[1])
    [last] = sensor.tick()
    assert _members(store, last) == [c.execution_id for c in later[18:]]


def test_a_run_is_not_smaller_than_the_members_it_runs_at_once(
        instance, store_url, store: Store, make_workflow) -> None:
    make_workflow()
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50,
                           batch_concurrency=16)
    queued = _queue(store, 20)
    batches = _batches(sensor.tick())
    assert [len(_members(store, b)) for b in batches] == [16, 4]
    assert _members(store, batches[0]) == [c.execution_id for c in queued[:16]]


def test_a_lone_trigger_keeps_its_own_run_within_the_slots(
        instance, store_url, store: Store, make_workflow) -> None:
    make_workflow()
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=50)
    [alone] = _queue(store, 1)
    [request] = sensor.tick()
    assert request.tags[TAG_EXECUTION_ID] == alone.execution_id
    assert request.run_key == f"trigger:{alone.execution_id}"


def test_turned_off_everything_is_handed_to_dagster_at_once(
        instance, store_url, store: Store, make_workflow) -> None:
    make_workflow()
    sensor = SensorHarness(instance, store_url, QUEUE_SENSOR, max_batch_size=10,
                           dispatch_to_free_slots=False)
    _queue(store, 45)
    assert [len(_members(store, b)) for b in _batches(sensor.tick())] == [10, 10, 10, 10, 5]

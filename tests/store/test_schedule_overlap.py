"""Overlap policy, jitter and priority of schedules, through one schedule tick after another with
an injected clock and a stand-in for Dagster's run storage, on SQLite, PostgreSQL and the
in-memory store: what a user sees is the schedule's counters, each execution's status, source,
scheduled_for and priority, and which runs are requested."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from orchestrator.domain.correlation import Source, iso_utc
from orchestrator.domain.records import ExecutionRecord, ExecutionStatus, Outcome
from orchestrator.domain.schedules import jitter_offset
from orchestrator.services.schedules import ScheduleService
from orchestrator.store import Store
from orchestrator.triggers.dispatch import RunState
from orchestrator.triggers.queue import dispatch_queued_triggers
from orchestrator.triggers.schedules import ScheduleTick, dispatch_due_schedules
from tests.conftest import ALL_BACKENDS, NOW

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
HOUR = NOW.replace(minute=0, second=0) + timedelta(hours=1)  # 13:00, an occurrence of "0 * * * *"


class Dagster:
    """Run keys Dagster has (every requested run is created at once, as the daemon would)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def __call__(self, keys: Sequence[str]) -> dict[str, RunState]:
        return {k: RunState.SUBMITTED for k in keys if k in self.keys}


class Ticks:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.dagster = Dagster()
        self.requested: list[str] = []

    def tick(self, at) -> ScheduleTick:
        tick = dispatch_due_schedules(self.store, now=at, limit=10, runs=self.dagster,
                                      catchup_window=timedelta(hours=1))
        keys = [d.run_key for d in tick.dispatches]
        self.requested += keys
        self.dagster.keys.update(keys)
        return tick

    def executions(self, schedule_id: str) -> list[ExecutionRecord]:
        found = self.store.list_executions(trigger_id=schedule_id, limit=100)
        return sorted(found, key=lambda e: e.scheduled_for or NOW)

    def run(self, execution: ExecutionRecord, at) -> None:
        self.store.start_execution(execution.execution_id, dagster_run_id="run-" +
                                   execution.execution_id[:8], workflow_version=1, now=at)

    def finish(self, execution: ExecutionRecord, at) -> None:
        self.store.finish_execution(execution.execution_id, status=ExecutionStatus.SUCCESS,
                                    outcome=Outcome.SUCCESS, finalized_by="core", now=at)


@pytest.fixture
def ticks(store: Store) -> Ticks:
    return Ticks(store)


def _hourly(make_schedule, **fields):
    return make_schedule(cron="0 * * * *", now=NOW, **fields)


def test_allow_all_is_the_default_and_changes_nothing(ticks: Ticks, store: Store,
                                                      make_schedule) -> None:
    schedule = _hourly(make_schedule)
    assert (schedule.overlap, schedule.jitter_seconds, schedule.priority) == \
        ("allow_all", None, 0)
    ticks.tick(HOUR)
    ticks.tick(HOUR + timedelta(seconds=1))  # the run exists: advance
    [first] = ticks.executions(schedule.id)
    ticks.run(first, HOUR)
    ticks.tick(HOUR + timedelta(hours=1))  # the first still runs: the second starts anyway
    assert [e.status for e in ticks.executions(schedule.id)] == [ExecutionStatus.RUNNING,
                                                                 ExecutionStatus.QUEUED]
    assert store.get_schedule(schedule.id).skipped_overlap == 0


def test_skip_counts_the_occurrence_and_starts_the_next_one_free(ticks: Ticks, store: Store,
                                                                 make_schedule) -> None:
    schedule = _hourly(make_schedule, overlap="skip")
    ticks.tick(HOUR)
    ticks.tick(HOUR + timedelta(seconds=1))
    [first] = ticks.executions(schedule.id)
    ticks.run(first, HOUR)
    tick = ticks.tick(HOUR + timedelta(hours=1))  # still running: 14:00 is skipped
    assert (tick.skipped, tick.dispatches) == (1, [])
    stored = store.get_schedule(schedule.id)
    assert stored.skipped_overlap == 1
    assert stored.next_run_at == HOUR + timedelta(hours=2)  # past the skipped occurrence
    ticks.finish(first, HOUR + timedelta(hours=1, minutes=30))
    ticks.tick(HOUR + timedelta(hours=2))  # nothing open: 15:00 starts
    assert [iso_utc(e.scheduled_for) for e in ticks.executions(schedule.id)] == \
        [iso_utc(HOUR), iso_utc(HOUR + timedelta(hours=2))]


def test_buffer_one_holds_one_and_starts_it_right_after(ticks: Ticks, store: Store,
                                                        make_schedule) -> None:
    schedule = _hourly(make_schedule, overlap="buffer_one", priority=4)
    ticks.tick(HOUR)
    ticks.tick(HOUR + timedelta(seconds=1))
    [first] = ticks.executions(schedule.id)
    ticks.run(first, HOUR)
    ticks.tick(HOUR + timedelta(hours=1))  # held
    ticks.tick(HOUR + timedelta(hours=2))  # one is held already: skipped
    stored = store.get_schedule(schedule.id)
    assert (stored.buffered_overlap, stored.skipped_overlap) == (1, 1)
    _, held = ticks.executions(schedule.id)
    assert held.status is ExecutionStatus.QUEUED and held.held_at is not None
    assert (held.scheduled_for, held.source, held.priority) == \
        (HOUR + timedelta(hours=1), Source.SCHEDULE, 4)
    assert store.queued_triggers(10) == []  # held: not startable yet
    ticks.finish(first, HOUR + timedelta(hours=2, minutes=10))
    tick = ticks.tick(HOUR + timedelta(hours=2, minutes=10, seconds=1))
    assert tick.released == 1
    [queued] = store.queued_triggers(10)  # it joins the queue, with its priority
    assert (queued.execution_id, queued.priority) == (held.execution_id, 4)
    assert store.get_execution(held.execution_id).held_at is None
    queue = dispatch_queued_triggers(store, now=HOUR + timedelta(hours=2, minutes=11),
                                     limit=10, runs=lambda keys: {}, alerter=None)  # type: ignore[arg-type]
    assert [d.correlation.execution_id for d in queue.dispatches] == [held.execution_id]
    assert queue.dispatches[0].correlation.scheduled_for == HOUR + timedelta(hours=1)


def test_buffer_all_starts_the_held_ones_in_order(ticks: Ticks, store: Store,
                                                  make_schedule) -> None:
    schedule = _hourly(make_schedule, overlap="buffer_all")
    ticks.tick(HOUR)
    ticks.tick(HOUR + timedelta(seconds=1))
    [first] = ticks.executions(schedule.id)
    ticks.run(first, HOUR)
    for hours in (1, 2, 3):
        ticks.tick(HOUR + timedelta(hours=hours))
    assert store.get_schedule(schedule.id).buffered_overlap == 3
    order = []
    current = first
    at = HOUR + timedelta(hours=3, minutes=1)
    for _ in range(3):
        ticks.finish(current, at)
        tick = ticks.tick(at)
        assert tick.released == 1
        [queued] = store.queued_triggers(10)
        current = store.get_execution(queued.execution_id)
        order.append(current.scheduled_for)
        store.mark_dispatched([current.execution_id], at)
        ticks.run(current, at)
        assert ticks.tick(at).released == 0  # it runs: the next one waits
        at += timedelta(minutes=1)
    assert order == [HOUR + timedelta(hours=h) for h in (1, 2, 3)]


def test_cancel_other_cancels_the_running_one_then_starts(ticks: Ticks, store: Store,
                                                          make_schedule) -> None:
    schedule = _hourly(make_schedule, overlap="cancel_other")
    ticks.tick(HOUR)
    ticks.tick(HOUR + timedelta(seconds=1))
    [first] = ticks.executions(schedule.id)
    ticks.run(first, HOUR)
    ticks.tick(HOUR + timedelta(hours=1))
    running, new = ticks.executions(schedule.id)
    # the cancellation path: the reconciler terminates its run and it ends cancelled, no alert
    assert running.status is ExecutionStatus.RUNNING and running.cancel_requested_at is not None
    assert [r.execution_id for r in store.cancellation.cancel_requested()] == [first.execution_id]
    assert new.held_at is not None  # starts once the cancelled one has ended
    store.finish_execution(first.execution_id, status=ExecutionStatus.CANCELLED,
                           outcome=Outcome.CANCELLED, finalized_by="reconciler",
                           now=HOUR + timedelta(hours=1, seconds=5))
    assert ticks.tick(HOUR + timedelta(hours=1, seconds=6)).released == 1
    assert [q.execution_id for q in store.queued_triggers(10)] == [new.execution_id]
    assert store.list_alerts() == []


def test_jitter_delays_each_occurrence_by_its_own_fixed_offset(ticks: Ticks, store: Store,
                                                               make_schedule) -> None:
    schedule = _hourly(make_schedule, jitter="10m")
    offset = jitter_offset(schedule.id, HOUR, timedelta(minutes=10))
    assert timedelta(0) <= offset < timedelta(minutes=10)
    assert offset == jitter_offset(schedule.id, HOUR, timedelta(minutes=10))  # deterministic
    tick = ticks.tick(HOUR + offset - timedelta(milliseconds=1))
    assert (tick.dispatches, tick.waiting) == ([], 1)
    [dispatch] = ticks.tick(HOUR + offset).dispatches
    assert dispatch.correlation.scheduled_for == HOUR  # nominal: the run key stays the same
    assert dispatch.run_key == f"schedule:{schedule.id}:{iso_utc(HOUR)}"
    view = ScheduleService.on(store).show(schedule.id, NOW).to_dict()
    assert view["jitter_seconds"] == 600 and view["upcoming"][0] == iso_utc(HOUR)
    assert "jitter" in view["upcoming_jitter"]


def test_priority_is_carried_to_every_execution_the_schedule_creates(ticks: Ticks,
                                                                     store: Store,
                                                                     make_schedule) -> None:
    schedule = _hourly(make_schedule, priority=-3)
    ticks.tick(HOUR)
    [execution] = ticks.executions(schedule.id)
    assert execution.priority == -3
    manual = ScheduleService.on(store).trigger(schedule.id, NOW)
    assert manual.priority == -3 and store.queued_triggers(10)[0].priority == -3

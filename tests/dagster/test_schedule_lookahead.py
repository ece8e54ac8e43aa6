"""Look-ahead for precision: a tick that lands just before a schedule's instant waits for it and
dispatches on time, instead of leaving it to the next tick of Dagster's 5 s sensor loop.

What this file proves: the wait happens only when nothing is due now and the next instant is
within the look-ahead; the run is requested only once due (never early); a backlog is never
delayed; a look-ahead of 0 turns it off; and the real sensor, evaluated 2 s before a one-time
schedule, returns its run request in the same evaluation.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from orchestrator.dagster.sensors import SCHEDULE_SENSOR
from orchestrator.domain.correlation import iso_utc
from orchestrator.store import Store
from orchestrator.triggers.schedules import wait_until_due
from tests.conftest import FakeTime
from tests.dagster.conftest import SensorHarness, real_now

DAGSTER_SENSOR_LOOP_SECONDS = 5  # `dagster-daemon run`'s minimum interval between evaluations


def test_waits_for_an_instant_within_the_lookahead(store: Store, make_schedule) -> None:
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    due = now + timedelta(seconds=3)
    make_schedule(now=now - timedelta(minutes=1), run_at=iso_utc(due))
    fake = FakeTime(now)
    woke = wait_until_due(store, now=now, lookahead=timedelta(seconds=5), clock=fake.clock,
                          sleep=fake.sleep)
    assert fake.slept == [3.0] and woke == due
    assert [s.next_run_at for s in store.due_schedules(woke, 10)] == [due]


def test_no_wait_beyond_the_lookahead_with_a_backlog_or_when_off(store: Store,
                                                                 make_schedule) -> None:
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    make_schedule(now=now - timedelta(minutes=1), run_at=iso_utc(now + timedelta(seconds=9)))
    fake = FakeTime(now)
    assert wait_until_due(store, now=now, lookahead=timedelta(seconds=5), clock=fake.clock,
                          sleep=fake.sleep) == now
    assert wait_until_due(store, now=now + timedelta(seconds=6), lookahead=timedelta(0),
                          clock=fake.clock, sleep=fake.sleep) == now + timedelta(seconds=6)
    make_schedule(now=now - timedelta(minutes=1), run_at=iso_utc(now))  # already due: backlog
    assert wait_until_due(store, now=now + timedelta(seconds=6),
                          lookahead=timedelta(seconds=5), clock=fake.clock,
                          sleep=fake.sleep) == now + timedelta(seconds=6)
    assert fake.slept == []


def test_sensor_ticking_just_before_the_instant_requests_it_on_time(
        instance: dg.DagsterInstance, store_url: str, make_schedule) -> None:
    due = real_now() + timedelta(seconds=2)
    schedule = make_schedule(now=due - timedelta(minutes=1), run_at=iso_utc(due))
    sensor = SensorHarness(instance, store_url, SCHEDULE_SENSOR,
                           dispatch_lookahead=timedelta(seconds=5))
    evaluated = time.time()
    [request] = sensor.tick()
    assert datetime.now(UTC) >= due  # never early
    # ... and in this evaluation, before the next one of Dagster's 5 s sensor loop would have
    # started (a bound on what it does once awake: 1.5 s failed on a loaded 2-core machine)
    assert time.time() - evaluated < DAGSTER_SENSOR_LOOP_SECONDS
    assert request.run_key == f"schedule:{schedule.id}:{iso_utc(due)}"

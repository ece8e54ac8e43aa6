"""Backfills on SQLite, PostgreSQL and the in-memory store, through the schedule service (the
CLI's and the API's rules): one execution per occurrence, ever (``source=backfill``,
``scheduled_for`` the occurrence in the schedule's timezone and DST rules), through the queue
like a burst, its progress counted by status, its overlap policy its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from orchestrator.domain.correlation import Correlation, Source, iso_utc, new_id
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.exceptions import InvalidInput, NotFound
from orchestrator.services.schedules import ScheduleService
from orchestrator.store import Store
from orchestrator.store import tables as t
from orchestrator.triggers.queue import dispatch_queued_triggers
from tests.conftest import ALL_BACKENDS, row_count

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
NOW = datetime(2030, 4, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def service(store: Store) -> ScheduleService:
    return ScheduleService.on(store)


def _daily(make_schedule, **fields):
    return make_schedule(cron="0 9 * * *", now=NOW, **fields)


def test_one_execution_per_occurrence_and_a_repeat_creates_nothing(service, store: Store,
                                                                   make_schedule) -> None:
    schedule = _daily(make_schedule, priority=2)
    first = service.backfill(schedule.id, NOW, start="2030-04-01T00:00:00Z",
                             end="2030-04-05T23:59:59Z")
    assert (first.occurrences, first.created, first.existing, first.skipped) == (5, 5, 0, 0)
    assert first.statuses == {"queued": 5}
    executions = sorted(store.list_executions(trigger_id=schedule.id),
                        key=lambda e: e.scheduled_for)
    assert [iso_utc(e.scheduled_for) for e in executions] == [
        f"2030-04-0{d}T09:00:00Z" for d in range(1, 6)]
    assert {(e.source, e.priority, e.backfill_id, e.status) for e in executions} == {
        (Source.BACKFILL, 2, first.id, ExecutionStatus.QUEUED)}
    assert sorted(q.execution_id for q in store.queued_triggers(10)) == \
        sorted(e.execution_id for e in executions)  # through the queue
    again = service.backfill(schedule.id, NOW + timedelta(seconds=1),
                             start="2030-04-01T00:00:00Z", end="2030-04-05T23:59:59Z")
    assert (again.created, again.existing) == (0, 5)
    wider = service.backfill(schedule.id, NOW + timedelta(seconds=2),
                             start="2030-04-04T00:00:00Z",
                             end="2030-04-07T09:00:00Z")  # overlapping, end inclusive
    assert (wider.occurrences, wider.created, wider.existing) == (4, 2, 2)
    assert row_count(store, t.executions) == 7
    assert [b.id for b in service.backfills(schedule.id)] == [wider.id, again.id, first.id]


def test_progress_is_counted_by_status(service, store: Store, make_schedule) -> None:
    schedule = _daily(make_schedule)
    backfill = service.backfill(schedule.id, NOW, start="2030-04-01T00:00:00Z",
                                end="2030-04-03T12:00:00Z")
    one, two, _ = sorted(store.list_executions(trigger_id=schedule.id),
                         key=lambda e: e.scheduled_for)
    store.start_execution(one.execution_id, dagster_run_id="r1", workflow_version=1, now=NOW)
    store.finish_execution(one.execution_id, status=ExecutionStatus.SUCCESS,
                           outcome=Outcome.SUCCESS, finalized_by="core", now=NOW)
    store.start_execution(two.execution_id, dagster_run_id="r2", workflow_version=1, now=NOW)
    shown = service.get_backfill(schedule.id, backfill.id)
    assert shown.statuses == {"queued": 1, "running": 1, "success": 1}
    assert shown.to_dict()["start"] == "2030-04-01T00:00:00Z"


def test_an_occurrence_the_schedule_ran_is_not_run_again(service, store: Store,
                                                          make_schedule) -> None:
    schedule = _daily(make_schedule)
    ran = Correlation.for_schedule(schedule_id=schedule.id,
                                   scheduled_for=datetime(2030, 4, 9, 9, tzinfo=UTC),
                                   workflow="digest", environment="default", payload={})
    store.create_execution(ran, NOW)  # 2030-04-09T09:00Z, dispatched by the schedule
    backfill = service.backfill(schedule.id, NOW, start="2030-04-08T00:00:00Z",
                                end="2030-04-10T12:00:00Z")
    # 04-08 and 04-09 are in the past; 04-10 09:00 too, but next_run_at (04-11 09:00) is later
    assert (backfill.occurrences, backfill.created, backfill.existing) == (3, 2, 1)
    assert store.get_execution(ran.execution_id).source is Source.SCHEDULE


def test_occurrences_follow_the_timezone_and_its_dst_rules(service, store: Store,
                                                           make_schedule) -> None:
    schedule = make_schedule(cron="30 2 * * *", timezone="Europe/Berlin", now=NOW)
    service.backfill(schedule.id, NOW, start="2030-03-30T00:00:00Z",
                     end="2030-04-01T23:00:00Z")
    assert sorted(iso_utc(e.scheduled_for) for e in store.list_executions()) == [
        "2030-03-30T01:30:00Z",  # 02:30 CET
        "2030-03-31T01:00:00Z",  # 02:30 does not exist that night: the transition (03:00 CEST)
        "2030-04-01T00:30:00Z",  # 02:30 CEST
    ]


@pytest.mark.parametrize(("fields", "field"), [
    ({"start": "2030-04-01T00:00:00Z", "end": "2030-05-01T00:00:00Z"}, "end"),  # future
    ({"start": "2030-04-05T00:00:00Z", "end": "2030-04-01T00:00:00Z"}, "end"),  # reversed
    ({"start": "yesterday", "end": "2030-04-01T00:00:00Z"}, "start"),
    ({"start": "2030-04-01T00:00:00", "end": "2030-04-02T00:00:00Z"}, "start"),  # no offset
    ({"start": "2030-04-01T00:00:00Z", "end": "2030-04-02T00:00:00Z", "overlap": "never"},
     "overlap"),
])
def test_bad_input_names_the_field_and_writes_nothing(service, store: Store, make_schedule,
                                                      fields, field) -> None:
    schedule = _daily(make_schedule)
    with pytest.raises(InvalidInput) as raised:
        service.backfill(schedule.id, NOW, **fields)
    assert raised.value.problems[0].field == field
    assert row_count(store, t.executions) == 0 and service.backfills(schedule.id) == []


def test_a_one_time_schedule_and_another_environment_are_refused(service, store: Store,
                                                                 make_schedule) -> None:
    once = make_schedule(run_at="2030-05-01T00:00:00Z", now=NOW)
    with pytest.raises(InvalidInput) as raised:
        service.backfill(once.id, NOW, start="2030-04-01T00:00:00Z", end="2030-04-02T00:00:00Z")
    assert raised.value.problems[0].field == "schedule_id"
    theirs = _daily(make_schedule, environment="a")
    backfill = service.backfill(theirs.id, NOW, start="2030-04-01T00:00:00Z",
                                end="2030-04-02T00:00:00Z", environment="a")
    for call in (lambda: service.backfill(theirs.id, NOW, start="2030-04-01T00:00:00Z",
                                          end="2030-04-02T00:00:00Z", environment="b"),
                 lambda: service.backfills(theirs.id, environment="b"),
                 lambda: service.get_backfill(theirs.id, backfill.id, environment="b"),
                 lambda: service.get_backfill(once.id, backfill.id)):  # not that schedule's
        with pytest.raises(NotFound):
            call()
    assert row_count(store, t.executions) == 1


def test_the_backfill_overlap_policy_is_its_own(service, store: Store, make_schedule) -> None:
    schedule = _daily(make_schedule, overlap="allow_all")
    window = {"start": "2030-04-01T00:00:00Z", "end": "2030-04-04T00:00:00Z"}  # 3 occurrences
    skip = service.backfill(schedule.id, NOW, overlap="skip", **window)
    assert (skip.overlap, skip.created, skip.skipped) == ("skip", 1, 2)
    other = _daily(make_schedule, workflow="other", overlap="buffer_all")
    buffered = service.backfill(other.id, NOW, **window)  # the schedule's policy by default
    assert (buffered.overlap, buffered.created, buffered.skipped) == ("buffer_all", 3, 0)
    held = [e for e in store.list_executions(trigger_id=other.id) if e.held_at is not None]
    assert len(held) == 2 and len(store.queued_triggers(10)) == 2  # one each: skip's, first


def test_cancel_other_cancels_what_is_open_and_keeps_the_last(service, store: Store,
                                                              make_schedule) -> None:
    schedule = _daily(make_schedule)
    running = service.trigger(schedule.id, NOW)
    store.start_execution(running.execution_id, dagster_run_id="r", workflow_version=1, now=NOW)
    backfill = service.backfill(schedule.id, NOW, start="2030-04-01T00:00:00Z",
                                end="2030-04-04T00:00:00Z", overlap="cancel_other")
    assert (backfill.created, backfill.skipped) == (1, 2)
    assert store.get_execution(running.execution_id).cancel_requested_at == NOW
    [kept] = [e for e in store.list_executions(trigger_id=schedule.id) if e.backfill_id]
    assert kept.scheduled_for == datetime(2030, 4, 3, 9, tzinfo=UTC) and kept.held_at


def test_ten_thousand_occurrences_in_bulk_through_a_fair_queue(service, store: Store,
                                                               make_schedule,
                                                               make_workflow) -> None:
    schedule = make_schedule(cron="* * * * *", now=NOW, environment="big")
    make_workflow("digest", environment="small")
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    if store.is_sql:  # bulk inserts: a few statements, not one per row (that took minutes)
        sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        backfill = service.backfill(schedule.id, NOW, start="2030-04-01T00:00:00Z",
                                    end="2030-04-07T22:39:00Z")
    finally:
        if store.is_sql:
            sa.event.remove(store.engine, "before_cursor_execute", count)
    assert (backfill.occurrences, backfill.created) == (10_000, 10_000)
    assert not store.is_sql or 0 < len(statements) < 200, len(statements)
    other = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                        workflow="digest", environment="small", payload={})
    store.create_execution(other, NOW + timedelta(seconds=1), enqueue=True)
    tick = dispatch_queued_triggers(store, now=NOW + timedelta(seconds=2), limit=4,
                                    runs=lambda keys: {}, alerter=None,  # type: ignore[arg-type]
                                    max_batch_size=50)
    # The small environment's trigger, queued after 10,000 others, starts in the first tick.
    members = [m for b in tick.batches for m in store.batches.members(b.batch_id)]
    started_ids = {d.correlation.execution_id for d in tick.dispatches} | \
        {m.execution_id for m in members}
    assert other.execution_id in started_ids
    assert len(started_ids) > 50  # and the backfill goes in batches
    too_many = pytest.raises(InvalidInput)
    with too_many as raised:
        service.backfill(schedule.id, NOW, start="2030-04-01T00:00:00Z",
                         end="2030-04-07T22:40:00Z")  # 10,001
    assert raised.value.problems[0].field == "end" and "10,000" in str(raised.value)

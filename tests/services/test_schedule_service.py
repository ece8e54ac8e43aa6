"""The schedule service on the in-memory store (no database): the rules the CLI and the API
share (ownership by environment, resume, trigger now) and the one schedule view."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.correlation import Source, iso_utc
from orchestrator.domain.records import ExecutionStatus
from orchestrator.domain.schedules import validate_schedule
from orchestrator.exceptions import InvalidInput, NotFound
from orchestrator.services.schedules import ScheduleService
from orchestrator.store import Store
from tests.conftest import NOW

pytestmark = pytest.mark.backends("memory")


@pytest.fixture
def service(store: Store) -> ScheduleService:
    return ScheduleService.on(store)


def test_create_upserts_by_key_and_shows_upcoming(service: ScheduleService, make_workflow) -> None:
    make_workflow()
    spec = validate_schedule(workflow="digest", cron="*/5 * * * *", key="k", payload={"a": 1},
                             now=NOW)
    first = service.create(spec, NOW)
    again = service.create(spec, NOW + timedelta(seconds=1))
    assert (first.created, again.created) == (True, False)
    assert again.schedule.id == first.schedule.id
    data = first.to_dict()
    assert data["created"] is True
    assert data["next_run_at"] == data["upcoming"][0] == "2030-01-15T12:05:00Z"
    assert len(data["upcoming"]) == 5
    assert "created" not in service.show(first.schedule.id, NOW).to_dict()


def test_create_refuses_an_unknown_workflow(service: ScheduleService) -> None:
    spec = validate_schedule(workflow="nope", cron="0 9 * * *", now=NOW)
    with pytest.raises(NotFound):
        service.create(spec, NOW)


def test_a_schedule_of_another_environment_is_not_found(service: ScheduleService,
                                                        make_schedule) -> None:
    schedule = make_schedule(environment="a")
    calls = [lambda: service.show(schedule.id, NOW, environment="b"),
             lambda: service.pause(schedule.id, NOW, environment="b"),
             lambda: service.resume(schedule.id, NOW, environment="b"),
             lambda: service.delete(schedule.id, environment="b"),
             lambda: service.trigger(schedule.id, NOW, environment="b")]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert service.show(schedule.id, NOW, environment="a").schedule.enabled
    assert [v.schedule.id for v in service.listing("a", None, NOW)] == [schedule.id]
    assert service.listing("b", None, NOW) == [] == service.records("b")
    assert service.records("a") == [service.get(schedule.id)]


def test_pause_empties_upcoming_and_resume_starts_from_now(service: ScheduleService,
                                                          make_schedule) -> None:
    schedule = make_schedule(cron="0 * * * *")
    paused = service.pause(schedule.id, NOW)
    assert (paused.schedule.enabled, paused.schedule.next_run_at, paused.upcoming) == \
        (False, None, [])
    later = NOW + timedelta(hours=5, minutes=10)  # five occurrences missed: none replayed
    resumed = service.resume(schedule.id, later)
    assert resumed.schedule.enabled
    assert iso_utc(resumed.schedule.next_run_at) == "2030-01-15T18:00:00Z"
    assert resumed.upcoming[0] == resumed.schedule.next_run_at


def test_resume_refuses_a_passed_one_time_schedule_and_a_deleted_workflow(
        service: ScheduleService, store: Store, make_schedule) -> None:
    once = make_schedule(run_at=iso_utc(NOW + timedelta(hours=1)))
    service.pause(once.id, NOW)
    with pytest.raises(InvalidInput) as raised:
        service.resume(once.id, NOW + timedelta(hours=2))
    assert raised.value.problems[0].field == "run_at"
    assert service.resume(once.id, NOW).schedule.next_run_at == once.run_at  # still ahead

    cron = make_schedule(workflow="other")
    store.delete_workflow("default", "other", NOW)  # pauses it
    with pytest.raises(NotFound):
        service.resume(cron.id, NOW)


def test_delete_keeps_nothing_but_the_log(service: ScheduleService, store: Store,
                                          make_schedule) -> None:
    schedule = make_schedule()
    execution = service.trigger(schedule.id, NOW)
    service.delete(schedule.id)
    with pytest.raises(NotFound):
        service.show(schedule.id, NOW)
    assert store.get_execution(execution.execution_id).trigger_id == schedule.id


def test_trigger_queues_one_manual_execution_with_the_payload(service: ScheduleService,
                                                              store: Store,
                                                              make_schedule) -> None:
    schedule = make_schedule(payload={"user": "grace"})
    record = service.trigger(schedule.id, NOW)
    assert (record.status, record.source, record.trigger_id, record.payload) == \
        (ExecutionStatus.QUEUED, Source.MANUAL, schedule.id, {"user": "grace"})
    assert [q.execution_id for q in store.queued_triggers(10)] == [record.execution_id]

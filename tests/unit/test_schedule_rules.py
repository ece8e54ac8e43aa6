"""Schedule rules: what a valid schedule is, when it first fires, and the catch-up policy.

What this file proves:

- ``validate_schedule`` reports every problem of a request at once, each naming its field, and
  judges "in the past" against the ``now`` it is given (not the machine clock);
- ``ScheduleSpec.first_run_at(now)`` is the next cron occurrence after ``now`` or the one-time
  instant;
- ``plan_catch_up``: one-time schedules always run (however late); a cron schedule runs only its
  latest missed occurrence, and only within the catch-up window, counting what it skipped;
- ``latest_fire_at_or_before`` agrees with a plain walk over the occurrences.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.domain.cron import CronSchedule
from orchestrator.domain.schedules import (
    CatchUp,
    latest_fire_at_or_before,
    plan_catch_up,
    validate_schedule,
)
from orchestrator.exceptions import InvalidInput

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def problems_of(**kwargs: object) -> dict[str, str]:
    """field -> message of the InvalidInput raised by validate_schedule (fields must be unique)."""
    with pytest.raises(InvalidInput) as caught:
        validate_schedule(now=NOW, **kwargs)  # type: ignore[arg-type]
    fields = [p.field for p in caught.value.problems]
    assert len(fields) == len(set(fields)), fields
    return {p.field: p.message for p in caught.value.problems}


# --------------------------------------------------------------------------------------------
# validate_schedule
# --------------------------------------------------------------------------------------------


def test_every_problem_is_listed_at_once() -> None:
    problems = problems_of(
        workflow="Nightly Report!",  # upper case, space, '!'
        environment="",
        cron="0 9 * * *",  # both cron ...
        run_at="2024-05-31T09:00:00Z",  # ... and run_at, which is also in the past
        payload=["not", "a", "mapping"],
        key="has spaces",
    )
    assert set(problems) == {"workflow", "environment", "cron", "run_at", "payload", "key"}
    assert "'Nightly Report!'" in problems["workflow"]
    assert "exactly one of cron" in problems["cron"]
    assert "in the past" in problems["run_at"]
    assert "2024-06-01T12:00:00+00:00" in problems["run_at"]  # shows the `now` it judged by
    assert problems["payload"] == "must be a JSON object"
    assert "'has spaces'" in problems["key"]


def test_payload_with_a_nul_character_names_where_it_is() -> None:
    problems = problems_of(workflow="w", cron="* * * * *", payload={"a": ["x", "y\x00"]})
    assert "NUL character" in problems["payload.a[1]"]


def test_neither_cron_nor_run_at() -> None:
    problems = problems_of(workflow="nightly")
    assert list(problems) == ["cron"]
    assert "exactly one of cron" in problems["cron"]


def test_run_at_without_offset_is_rejected() -> None:
    problems = problems_of(workflow="nightly", run_at="2030-01-31T09:00:00")
    assert list(problems) == ["run_at"]
    assert "no UTC offset" in problems["run_at"]


def test_run_at_that_is_not_an_instant() -> None:
    problems = problems_of(workflow="nightly", run_at="next tuesday")
    assert "not an ISO-8601 instant" in problems["run_at"]


def test_run_at_equal_to_now_is_in_the_past() -> None:
    problems = problems_of(workflow="nightly", run_at=NOW)
    assert "in the past" in problems["run_at"]


def test_bad_cron_and_bad_timezone_are_both_reported() -> None:
    problems = problems_of(workflow="nightly", cron="61 * * * *", timezone="Mars/Olympus")
    assert set(problems) == {"cron", "timezone"}


def test_valid_cron_schedule() -> None:
    spec = validate_schedule(workflow="nightly", now=NOW, cron=" 0  9 * * 1-5", timezone=
                             "Europe/Berlin", payload={"region": "eu"}, key="nightly:eu")
    assert spec.cron == "0 9 * * 1-5"
    assert spec.timezone == "Europe/Berlin"
    assert spec.run_at is None
    assert spec.environment == "default"
    assert spec.payload == {"region": "eu"}
    assert spec.key == "nightly:eu"
    # 2024-06-01 is a Saturday: the next weekday 09:00 CEST is Monday 2024-06-03 07:00Z.
    assert spec.first_run_at(NOW) == utc("2024-06-03T07:00")


def test_valid_one_time_schedule_is_normalised_to_utc() -> None:
    spec = validate_schedule(workflow="nightly", now=NOW, run_at="2024-06-02T09:30:00+02:00")
    assert spec.cron is None
    assert spec.cron_schedule is None
    assert spec.run_at == utc("2024-06-02T07:30")
    assert spec.payload == {}
    assert spec.first_run_at(NOW) == utc("2024-06-02T07:30")


def test_past_is_judged_against_the_given_now() -> None:
    # 2021 is long gone on the machine clock but in the future of this `now`.
    spec = validate_schedule(workflow="nightly", now=utc("2020-01-01T00:00"),
                             run_at="2021-01-01T00:00:00Z")
    assert spec.run_at == utc("2021-01-01T00:00")


def test_first_run_at_is_strictly_after_now() -> None:
    spec = validate_schedule(workflow="nightly", now=NOW, cron="0 12 * * *")
    assert spec.first_run_at(NOW) == utc("2024-06-02T12:00")  # not NOW itself
    assert spec.first_run_at(NOW - timedelta(seconds=1)) == NOW


# --------------------------------------------------------------------------------------------
# plan_catch_up
# --------------------------------------------------------------------------------------------


def test_one_time_schedule_is_never_skipped() -> None:
    due = utc("2024-05-20T09:00")
    plan = plan_catch_up(cron=None, due_at=due, now=due + timedelta(days=12))
    assert plan == CatchUp(dispatch_at=due, next_run_at=due, superseded=0, outside_window=0)


def test_cron_due_now_dispatches_that_occurrence() -> None:
    cron = CronSchedule.parse("0 9 * * *", "UTC")
    due = utc("2024-06-01T09:00")
    plan = plan_catch_up(cron=cron, due_at=due, now=due + timedelta(seconds=3))
    assert plan == CatchUp(dispatch_at=due, next_run_at=due, superseded=0, outside_window=0)


def test_every_minute_ten_minutes_behind_runs_only_the_latest() -> None:
    # Due at 11:50; now 12:00:30. Occurrences 11:50, 11:51, ..., 12:00 are all missed (11);
    # the latest, 12:00, runs; the 10 before it (11:50 ... 11:59) are superseded.
    cron = CronSchedule.parse("* * * * *", "UTC")
    plan = plan_catch_up(cron=cron, due_at=utc("2024-06-01T11:50"),
                         now=utc("2024-06-01T12:00:30"), window=timedelta(hours=1))
    assert plan == CatchUp(dispatch_at=utc("2024-06-01T12:00"),
                           next_run_at=utc("2024-06-01T12:00"), superseded=10, outside_window=0)


def test_daily_missed_by_two_days_outside_window_runs_nothing() -> None:
    # Due 2024-05-30 09:00; now 2024-06-01 12:00. The latest occurrence (06-01 09:00) is 3 h old,
    # beyond the 1 h window: nothing runs now; 05-30 and 05-31 are superseded by it, it is
    # outside the window, and the schedule moves on to the next occurrence after now.
    cron = CronSchedule.parse("0 9 * * *", "UTC")
    plan = plan_catch_up(cron=cron, due_at=utc("2024-05-30T09:00"), now=NOW,
                         window=timedelta(hours=1))
    assert plan.dispatch_at is None
    assert plan.outside_window == 1
    assert plan.superseded == 2
    assert plan.next_run_at == utc("2024-06-02T09:00")
    assert plan.next_run_at > NOW


def test_latest_occurrence_inside_window_still_runs() -> None:
    cron = CronSchedule.parse("0 9 * * *", "UTC")
    plan = plan_catch_up(cron=cron, due_at=utc("2024-05-30T09:00"),
                         now=utc("2024-06-01T09:59"), window=timedelta(hours=1))
    assert plan == CatchUp(dispatch_at=utc("2024-06-01T09:00"),
                           next_run_at=utc("2024-06-01T09:00"), superseded=2, outside_window=0)


def test_catch_up_in_a_timezone() -> None:
    # 09:00 Berlin (CEST, UTC+2) is 07:00Z; due 05-31, now 06-01 07:30Z: the 06-01 run is 30 min
    # old and runs, superseding 05-31.
    cron = CronSchedule.parse("0 9 * * *", "Europe/Berlin")
    plan = plan_catch_up(cron=cron, due_at=utc("2024-05-31T07:00"), now=utc("2024-06-01T07:30"))
    assert plan == CatchUp(dispatch_at=utc("2024-06-01T07:00"),
                           next_run_at=utc("2024-06-01T07:00"), superseded=1, outside_window=0)


# --------------------------------------------------------------------------------------------
# latest_fire_at_or_before
# --------------------------------------------------------------------------------------------


def brute_force_latest(cron: CronSchedule, moment: datetime, since: datetime) -> datetime:
    latest = since
    for instant in cron.iter_after(since):
        if instant > moment:
            return latest
        latest = instant
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("expression", "zone", "since", "moment"),
    [
        pytest.param("* * * * *", "UTC", "2024-06-01T11:50", "2024-06-01T12:00:30",
                     id="every-minute-10-behind"),
        pytest.param("* * * * *", "UTC", "2024-06-01T11:50", "2024-06-01T11:50",
                     id="moment-is-since"),
        pytest.param("*/7 * * * *", "UTC", "2024-06-01T00:07", "2024-06-03T05:06:59",
                     id="every-7-minutes-two-days"),
        pytest.param("0 9 * * *", "UTC", "2024-05-01T09:00", "2024-06-01T08:59:59",
                     id="daily-a-month-behind"),
        pytest.param("0 9 * * *", "UTC", "2024-05-01T09:00", "2024-06-01T09:00",
                     id="daily-moment-on-occurrence"),
        pytest.param("0 9 * * 1-5", "Europe/Berlin", "2024-03-29T08:00", "2024-04-07T12:00",
                     id="weekdays-berlin-across-spring-forward"),
        pytest.param("0 * * * *", "America/Chicago", "2024-11-02T12:00", "2024-11-03T07:30",
                     id="hourly-chicago-in-repeated-hour"),
        pytest.param("30 1 * * *", "America/Chicago", "2024-11-01T06:30", "2024-11-03T07:00",
                     id="ambiguous-daily-before-the-later-instant"),
        pytest.param("15 2 * * *", "Australia/Lord_Howe", "2024-10-03T15:45", "2024-10-05T15:45",
                     id="lord-howe-across-gap"),
    ],
)
def test_latest_fire_matches_brute_force(expression: str, zone: str, since: str,
                                         moment: str) -> None:
    cron = CronSchedule.parse(expression, zone)
    since_at, moment_at = utc(since), utc(moment)
    assert cron.next_after(since_at - timedelta(seconds=1)) == since_at  # since is an occurrence
    expected = brute_force_latest(cron, moment_at, since_at)
    assert latest_fire_at_or_before(cron, moment_at, since=since_at) == expected


def test_latest_fire_concrete_values() -> None:
    """The brute force above shares the iterator; pin a few answers independently."""
    hourly = CronSchedule.parse("0 * * * *", "America/Chicago")
    # 01:30 CST on 2024-11-03 (07:30Z): the latest top of the hour is 01:00 CST = 07:00Z.
    assert latest_fire_at_or_before(hourly, utc("2024-11-03T07:30"),
                                    since=utc("2024-11-02T12:00")) == utc("2024-11-03T07:00")
    daily = CronSchedule.parse("30 1 * * *", "America/Chicago")
    # 01:30 CDT (06:30Z) on 2024-11-03 is not an occurrence (the later 07:30Z is): at 07:00Z the
    # latest is still 2024-11-02 01:30 CDT = 06:30Z.
    assert latest_fire_at_or_before(daily, utc("2024-11-03T07:00"),
                                    since=utc("2024-11-01T06:30")) == utc("2024-11-02T06:30")

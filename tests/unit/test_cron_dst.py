"""Cron schedules in IANA timezones behave like Dagster's native schedules across DST changes.

What this file proves:

- an *oracle* comparison: for many (cron, timezone, start) cases around spring-forward and
  fall-back transitions in both hemispheres, in half-hour zones and in zones without DST,
  ``CronSchedule.parse(cron, tz).upcoming(start, 40)`` equals the instants produced by Dagster's
  own ``cron_string_iterator`` (the code that drives Dagster's native schedules);
- the documented DST rules, spelled out as named examples with concrete UTC instants:
  a time in a gap runs at the transition, an ambiguous time runs once (the later instant), an
  hourly schedule runs every real hour, several times in one gap collapse into one run;
- validation: bad cron expressions and unknown timezones are rejected with problems naming the
  field, both reported together;
- ``next_after`` refuses naive datetimes.

Time is always an argument; nothing here reads the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from orchestrator.dagster.compat import cron_string_iterator
from orchestrator.domain.cron import CronSchedule
from orchestrator.exceptions import InvalidInput

COUNT = 40


def utc(text: str) -> datetime:
    """``"2024-03-10T08:00"`` -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str, *, fold: int = 0) -> datetime:
    """A wall-clock time in ``zone`` as an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


@cache
def parsed(cron: str, zone: str) -> CronSchedule:
    """``CronSchedule.parse``, once per (cron, zone): a schedule is immutable, and parsing scans
    the timezone database, which would dominate this file's runtime."""
    return CronSchedule.parse(cron, zone)


def dagster_upcoming(cron: str, zone: str, start: datetime, count: int) -> list[datetime]:
    """The oracle: Dagster's native schedule iterator, as UTC instants strictly after ``start``."""
    instants = (d.astimezone(UTC) for d in cron_string_iterator(start.timestamp(), cron, zone))
    return list(islice((d for d in instants if d > start), count))


# --------------------------------------------------------------------------------------------
# Oracle: our iterator == Dagster's iterator
# --------------------------------------------------------------------------------------------

# UTC instant of each transition (the first instant with the new offset).
TRANSITIONS: dict[str, dict[str, datetime]] = {
    # US: 2024-03-10 02:00 CST -> 03:00 CDT; 2024-11-03 02:00 CDT -> 01:00 CST
    "America/Chicago": {"spring": utc("2024-03-10T08:00"), "fall": utc("2024-11-03T07:00")},
    "America/New_York": {"spring": utc("2024-03-10T07:00"), "fall": utc("2024-11-03T06:00")},
    # EU: 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 CEST -> 02:00 CET
    "Europe/Berlin": {"spring": utc("2024-03-31T01:00"), "fall": utc("2024-10-27T01:00")},
    # Southern hemisphere: forward on 2024-10-06 02:00 AEST, back on 2024-04-07 03:00 AEDT
    "Australia/Sydney": {"spring": utc("2024-10-05T16:00"), "fall": utc("2024-04-06T16:00")},
    # Half-hour offset with a one-hour DST shift (+09:30 / +10:30)
    "Australia/Adelaide": {"spring": utc("2024-10-05T16:30"), "fall": utc("2024-04-06T16:30")},
    # Half-hour DST shift: 02:00 +10:30 -> 02:30 +11:00; 02:00 +11:00 -> 01:30 +10:30
    "Australia/Lord_Howe": {"spring": utc("2024-10-05T15:30"), "fall": utc("2024-04-06T15:00")},
}
NO_DST_STARTS = {"Asia/Kolkata": utc("2024-03-09T18:07"), "UTC": utc("2024-03-09T18:07")}

CRONS = [
    "30 2 * * *",  # daily at a time inside the US/EU/AU spring gap
    "30 1 * * *",  # daily at a time that is ambiguous in the US fall-back
    "0 2 * * *",  # daily at the very start of a gap
    "0 * * * *",  # hourly
    "15,45 * * * *",  # hourly, two minutes
    "*/15 * * * *",  # every 15 minutes
    "*/20 2 * * *",  # several times inside one gap hour
    "0 9 * * 1-5",  # weekdays
    "30 2 * * 0",  # Sundays (every transition above is on a Sunday), inside the gap
]
# Lord Howe's shift is 30 minutes: these land inside its gap (02:00-02:30) and its repeated
# half hour (01:30-02:00).
LORD_HOWE_EXTRA = ["15 2 * * *", "45 1 * * *", "15,45 * * * 0", "0 * * * 0"]

# Dagster's hourly fast path decides how to read minutes in Lord_Howe from the zone's offset at
# the *current* wall-clock date (``has_nonzero_minute_offset`` calls ``datetime.now()``), so its
# output for these crons changes with the season the test runs in: no oracle there. The same
# rules are exercised through the day-of-week variants in LORD_HOWE_EXTRA, which go through
# Dagster's croniter path.
ORACLE_UNRELIABLE = {("Australia/Lord_Howe", "0 * * * *"), ("Australia/Lord_Howe", "15,45 * * * *")}

def _oracle_cases() -> list:
    cases = []
    for zone, transitions in TRANSITIONS.items():
        crons = CRONS + (LORD_HOWE_EXTRA if zone == "Australia/Lord_Howe" else [])
        for which, moment in transitions.items():
            # Two starts per transition: well before it (daily crons' 40 days, hourly crons'
            # 20-40 hours and 15-minute crons' 10 hours all span it), and inside the last hour
            # before it at an odd second.
            for label, start in (
                ("6h-before", moment - timedelta(hours=6)),
                ("47m13s-before", moment - timedelta(minutes=47, seconds=13)),
            ):
                for cron in crons:
                    if (zone, cron) in ORACLE_UNRELIABLE:
                        continue
                    cases.append(
                        pytest.param(cron, zone, start, id=f"{zone}-{which}-{label}-[{cron}]")
                    )
    for zone, start in NO_DST_STARTS.items():
        for cron in CRONS:
            cases.append(pytest.param(cron, zone, start, id=f"{zone}-[{cron}]"))
    return cases


@pytest.mark.parametrize(("cron", "zone", "start"), _oracle_cases())
def test_upcoming_matches_dagster_native_schedule(cron: str, zone: str, start: datetime) -> None:
    ours = parsed(cron, zone).upcoming(start, COUNT)
    assert ours == dagster_upcoming(cron, zone, start, COUNT)


def test_oracle_cases_cross_the_transitions() -> None:
    """Guard on the oracle itself: the compared windows really contain a DST change."""
    for zone, transitions in TRANSITIONS.items():
        for moment in transitions.values():
            start = moment - timedelta(hours=6)
            for cron in ("30 2 * * *", "*/15 * * * *"):
                fires = parsed(cron, zone).upcoming(start, COUNT)
                before = start.astimezone(ZoneInfo(zone)).utcoffset()
                after = fires[-1].astimezone(ZoneInfo(zone)).utcoffset()
                assert before != after, (zone, cron, start)


# --------------------------------------------------------------------------------------------
# The documented rules, as named examples
# --------------------------------------------------------------------------------------------


def fires_on(cron: str, zone: str, day: str) -> list[datetime]:
    """Every fire instant whose local date in ``zone`` is ``day`` (YYYY-MM-DD)."""
    tz = ZoneInfo(zone)
    start = datetime.fromisoformat(day).replace(tzinfo=tz) - timedelta(days=1)
    fires: list[datetime] = []
    for instant in CronSchedule.parse(cron, zone).iter_after(start.astimezone(UTC)):
        local_day = instant.astimezone(tz).date().isoformat()
        if local_day > day:
            return fires
        if local_day == day:
            fires.append(instant)
    raise AssertionError("unreachable")


class TestChicago:
    ZONE = "America/Chicago"

    def test_time_in_spring_gap_runs_at_the_transition(self) -> None:
        # 02:30 does not exist on 2024-03-10: it runs at 03:00 CDT, which is 08:00Z.
        assert fires_on("30 2 * * *", self.ZONE, "2024-03-10") == [utc("2024-03-10T08:00")]
        # The days around it are ordinary 02:30 runs (CST, then CDT).
        assert fires_on("30 2 * * *", self.ZONE, "2024-03-09") == [utc("2024-03-09T08:30")]
        assert fires_on("30 2 * * *", self.ZONE, "2024-03-11") == [utc("2024-03-11T07:30")]

    def test_ambiguous_time_runs_once_at_the_later_instant(self) -> None:
        # 01:30 happens at 06:30Z (CDT) and 07:30Z (CST) on 2024-11-03: one run, the later.
        assert fires_on("30 1 * * *", self.ZONE, "2024-11-03") == [utc("2024-11-03T07:30")]

    def test_hourly_runs_every_real_hour_through_fall_back(self) -> None:
        fires = fires_on("0 * * * *", self.ZONE, "2024-11-03")
        assert utc("2024-11-03T06:00") in fires  # 01:00 CDT
        assert utc("2024-11-03T07:00") in fires  # 01:00 CST, the repeated hour
        assert len(fires) == 25  # the local day has 25 hours
        assert all(b - a == timedelta(hours=1) for a, b in pairwise(fires))

    def test_several_times_in_one_gap_collapse_into_one_run(self) -> None:
        # 02:00, 02:20 and 02:40 do not exist on 2024-03-10: a single run at 08:00Z.
        assert fires_on("*/20 2 * * *", self.ZONE, "2024-03-10") == [utc("2024-03-10T08:00")]
        # The next day all three exist again (CDT, UTC-5).
        assert fires_on("*/20 2 * * *", self.ZONE, "2024-03-11") == [
            utc("2024-03-11T07:00"), utc("2024-03-11T07:20"), utc("2024-03-11T07:40"),
        ]

    def test_next_after_crosses_the_gap(self) -> None:
        schedule = CronSchedule.parse("30 2 * * *", self.ZONE)
        assert schedule.next_after(utc("2024-03-09T08:30")) == utc("2024-03-10T08:00")
        assert schedule.next_after(utc("2024-03-10T08:00")) == utc("2024-03-11T07:30")


class TestSydney:
    """Southern hemisphere: clocks go forward in October and back in April."""

    ZONE = "Australia/Sydney"

    def test_time_in_spring_gap_runs_at_the_transition(self) -> None:
        # 2024-10-06 02:00 AEST -> 03:00 AEDT: 02:30 runs at 03:00 AEDT = 16:00Z the day before.
        assert fires_on("30 2 * * *", self.ZONE, "2024-10-06") == [utc("2024-10-05T16:00")]

    def test_ambiguous_time_runs_once_at_the_later_instant(self) -> None:
        # 2024-04-07 03:00 AEDT -> 02:00 AEST: 02:30 is 15:30Z (AEDT) and 16:30Z (AEST).
        assert fires_on("30 2 * * *", self.ZONE, "2024-04-07") == [utc("2024-04-06T16:30")]

    def test_hourly_runs_every_real_hour_through_fall_back(self) -> None:
        fires = fires_on("0 * * * *", self.ZONE, "2024-04-07")
        assert utc("2024-04-06T15:00") in fires  # 02:00 AEDT
        assert utc("2024-04-06T16:00") in fires  # 02:00 AEST, the repeated hour
        assert len(fires) == 25

    def test_several_times_in_one_gap_collapse_into_one_run(self) -> None:
        assert fires_on("*/20 2 * * *", self.ZONE, "2024-10-06") == [utc("2024-10-05T16:00")]


class TestLordHowe:
    """A 30-minute DST shift: 02:00 +10:30 -> 02:30 +11:00, and 02:00 +11:00 -> 01:30 +10:30."""

    ZONE = "Australia/Lord_Howe"

    def test_time_in_half_hour_gap_runs_at_the_transition(self) -> None:
        fires = fires_on("15 2 * * *", self.ZONE, "2024-10-06")
        assert fires == [utc("2024-10-05T15:30")]
        assert fires[0].astimezone(ZoneInfo(self.ZONE)).strftime("%H:%M%z") == "02:30+1100"

    def test_time_after_the_half_hour_gap_is_unaffected(self) -> None:
        assert fires_on("45 2 * * *", self.ZONE, "2024-10-06") == [local("2024-10-06T02:45",
                                                                          self.ZONE)]

    def test_ambiguous_half_hour_runs_once_at_the_later_instant(self) -> None:
        # 01:45 happens at 14:45Z (+11:00) and 15:15Z (+10:30) on 2024-04-07.
        assert fires_on("45 1 * * *", self.ZONE, "2024-04-07") == [utc("2024-04-06T15:15")]

    def test_every_15_minutes_repeats_the_half_hour_and_skips_the_gap(self) -> None:
        fall = fires_on("*/15 * * * *", self.ZONE, "2024-04-07")
        # The local day lasts 24.5 hours; the repeated 01:30 and 01:45 run twice.
        assert len(fall) == 24 * 4 + 2
        spring = fires_on("*/15 * * * *", self.ZONE, "2024-10-06")
        assert len(spring) == 24 * 4 - 2  # 02:00 and 02:15 never exist
        assert all(b - a == timedelta(minutes=15) for a, b in pairwise(spring))


class TestHalfHourOffsetsWithoutShiftProblems:
    def test_kolkata_has_no_dst(self) -> None:
        fires = CronSchedule.parse("30 2 * * *", "Asia/Kolkata").upcoming(utc("2024-03-01T00:00"),
                                                                           3)
        assert fires == [utc("2024-03-01T21:00"), utc("2024-03-02T21:00"), utc("2024-03-03T21:00")]

    def test_adelaide_gap_runs_at_the_transition(self) -> None:
        # 2024-10-06 02:00 ACST (+09:30) -> 03:00 ACDT (+10:30) = 16:30Z the day before.
        assert fires_on("30 2 * * *", "Australia/Adelaide", "2024-10-06") == [
            utc("2024-10-05T16:30")
        ]


@pytest.mark.parametrize(
    ("zone", "cron", "after", "expected"),
    [
        # 01:45 CST, then 02:15 and 02:45 do not exist: Dagster runs 03:15 CDT next.
        pytest.param("America/Chicago", "15,45 * * * *", "2024-03-10T07:45",
                     "2024-03-10T08:15", id="chicago-15,45"),
        # Lord Howe: 01:00 +10:30, then 02:00 does not exist: 03:00 +11:00 next.
        pytest.param("Australia/Lord_Howe", "0 * * * *", "2024-10-05T14:30",
                     "2024-10-05T16:00", id="lord_howe-hourly"),
    ],
)
def test_hourly_cron_skips_times_in_the_gap(zone: str, cron: str, after: str,
                                             expected: str) -> None:
    """Dagster: hourly schedules skip nonexistent times instead of running at the transition."""
    assert CronSchedule.parse(cron, zone).next_after(utc(after)) == utc(expected)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "phrase"),
    [
        pytest.param("61 * * * *", "not a valid cron expression", id="minute-out-of-range"),
        pytest.param("* * *", "has 3 field(s)", id="three-fields"),
        pytest.param("", "is required", id="empty"),
        pytest.param("0 0 31 2 *", "never fires", id="feb-31st"),
    ],
)
def test_invalid_cron_names_the_cron_field(cron: str, phrase: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        CronSchedule.parse(cron, "UTC")
    problems = caught.value.problems
    assert [p.field for p in problems] == ["cron"]
    assert phrase in problems[0].message
    assert phrase in str(caught.value)


def test_unknown_timezone_names_the_timezone_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        CronSchedule.parse("0 9 * * *", "Mars/Olympus")
    problems = caught.value.problems
    assert [p.field for p in problems] == ["timezone"]
    assert "'Mars/Olympus'" in problems[0].message
    assert "Europe/Berlin" in problems[0].message  # shows what a valid name looks like


def test_bad_cron_and_bad_timezone_are_reported_together() -> None:
    with pytest.raises(InvalidInput) as caught:
        CronSchedule.parse("61 * * * *", "Mars/Olympus")
    assert sorted(p.field for p in caught.value.problems) == ["cron", "timezone"]
    assert "2 problem(s)" in str(caught.value)


def test_cron_whitespace_is_normalised() -> None:
    schedule = CronSchedule.parse("  0   9 * *\t1-5 ", "Europe/Berlin")
    assert schedule.expression == "0 9 * * 1-5"
    assert schedule.timezone == "Europe/Berlin"


def test_next_after_requires_an_aware_datetime() -> None:
    schedule = CronSchedule.parse("0 9 * * *", "UTC")
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.next_after(datetime(2024, 1, 1, 12, 0))


def test_next_after_accepts_any_offset_and_returns_utc() -> None:
    schedule = CronSchedule.parse("0 9 * * *", "Europe/Berlin")
    moment = datetime.fromisoformat("2024-06-01T12:00:00+05:30")  # 06:30Z = 08:30 CEST
    result = schedule.next_after(moment)
    assert result == utc("2024-06-01T07:00")
    assert result.utcoffset() == timedelta(0)

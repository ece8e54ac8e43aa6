"""Schedule controls as plain rules: the overlap plan (Temporal's policies), the jitter's
offset and bounds, and a range's occurrences under DST."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.domain.cron import CronSchedule
from orchestrator.domain.schedules import (
    OverlapPlan,
    OverlapPolicy,
    jitter_offset,
    plan_overlap,
    validate_schedule,
)
from orchestrator.exceptions import InvalidInput

NOW = datetime(2030, 1, 15, 12, 0, 30, tzinfo=UTC)
P = OverlapPolicy


@pytest.mark.parametrize(("policy", "n", "open_", "waiting", "plan"), [
    (P.ALLOW_ALL, 3, 1, 0, OverlapPlan(start=(0, 1, 2))),
    (P.SKIP, 1, 0, 0, OverlapPlan(start=(0,))),
    (P.SKIP, 1, 1, 0, OverlapPlan(skipped=1)),
    (P.SKIP, 3, 0, 0, OverlapPlan(start=(0,), skipped=2)),
    (P.BUFFER_ONE, 1, 1, 0, OverlapPlan(hold=(0,))),
    (P.BUFFER_ONE, 1, 2, 1, OverlapPlan(skipped=1)),  # one is held already
    (P.BUFFER_ONE, 4, 0, 0, OverlapPlan(start=(0,), hold=(1,), skipped=2)),
    (P.BUFFER_ALL, 1, 1, 0, OverlapPlan(hold=(0,))),
    (P.BUFFER_ALL, 3, 0, 0, OverlapPlan(start=(0,), hold=(1, 2))),
    (P.CANCEL_OTHER, 1, 1, 0, OverlapPlan(hold=(0,), cancel_open=True)),
    (P.CANCEL_OTHER, 1, 0, 0, OverlapPlan(start=(0,))),
    (P.CANCEL_OTHER, 3, 0, 0, OverlapPlan(start=(2,), skipped=2)),
    (P.SKIP, 0, 1, 0, OverlapPlan()),
])
def test_the_overlap_plan(policy, n, open_, waiting, plan) -> None:
    assert plan_overlap(policy, n, open_=open_, waiting=waiting) == plan


def test_jitter_offsets_are_fixed_per_occurrence_and_spread_below_the_jitter() -> None:
    jitter = timedelta(seconds=30)
    hours = [NOW + timedelta(hours=h) for h in range(200)]
    offsets = [jitter_offset("sch_a", h, jitter) for h in hours]
    assert offsets == [jitter_offset("sch_a", h, jitter) for h in hours]
    assert all(timedelta(0) <= o < jitter for o in offsets)
    assert len(set(offsets)) > 150  # spread, not one offset for all
    assert offsets != [jitter_offset("sch_b", h, jitter) for h in hours]
    assert jitter_offset("sch_a", NOW, None) == timedelta(0)


@pytest.mark.parametrize(("fields", "message"), [
    ({"cron": "* * * * *", "jitter": "1m"}, "less than the schedule's shortest interval (60s)"),
    ({"cron": "0 9,10 * * *", "jitter": "1h"}, "shortest interval (3600s)"),
    ({"cron": "0 9 * * *", "jitter": "61m"}, "at most 1h"),
    ({"cron": "0 9 * * *", "jitter": "-5s"}, "duration"),
    ({"cron": "0 9 * * *", "overlap": "maybe"}, "use one of skip, buffer_one"),
    ({"cron": "0 9 * * *", "priority": 99}, "from -10 to 10"),
])
def test_bad_controls_are_refused_with_what_is_allowed(fields, message) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_schedule(workflow="digest", now=NOW, **fields)
    assert message in str(raised.value)


def test_a_valid_spec_carries_its_controls() -> None:
    spec = validate_schedule(workflow="digest", now=NOW, cron="0 * * * *", overlap="skip",
                             jitter="59m", priority=-2)
    assert (spec.overlap, spec.jitter, spec.priority) == (P.SKIP, timedelta(minutes=59), -2)
    once = validate_schedule(workflow="digest", now=NOW, run_at="2030-02-01T00:00:00Z",
                             jitter=3600)
    assert once.jitter == timedelta(hours=1)


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Berlin", "America/New_York",
                                      "Australia/Lord_Howe"])
@pytest.mark.parametrize("expression", ["*/20 * * * *", "30 2 * * *", "0 1-3 * * 0",
                                        "15 0 1 * *"])
def test_a_range_has_the_occurrences_iterating_gives(timezone: str, expression: str) -> None:
    cron = CronSchedule(expression=expression, timezone=timezone)
    rng = random.Random(f"{timezone}{expression}")
    for month in (3, 4, 10, 11):  # the DST changes of both hemispheres
        start = datetime(2030, month, rng.randint(1, 28), rng.randint(0, 23), tzinfo=UTC)
        end = start + timedelta(days=rng.choice([1, 9]))
        expected = []
        for instant in cron.iter_after(start - timedelta(microseconds=1)):
            if instant > end:
                break
            expected.append(instant)
        assert cron.between(start, end, cap=10_000) == expected
        assert cron.between(start, end, cap=len(expected) - 1) is None if expected else True

"""Backfill rules: which occurrences of a schedule a backfill over ``[start, end]`` covers.

One execution per occurrence, ever: a backfilled occurrence gets the id its schedule's own
dispatch would have given it (derived from the run key ``schedule:<id>:<occurrence>``), so
repeating a backfill, overlapping another, or covering an occurrence the schedule already ran
creates nothing new for it. Occurrences from the schedule's ``next_run_at`` on are the
schedule's own to dispatch, and are left out; so is the future (``end`` must not be after
now). A backfill has an overlap policy of its own (default: the schedule's), applied to its
occurrences as if they arrived together (:func:`~orchestrator.domain.schedules.plan_overlap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.domain.cron import CronSchedule
from orchestrator.domain.records import ScheduleRecord
from orchestrator.domain.schedules import OverlapPolicy, parse_instant, parse_overlap
from orchestrator.exceptions import InvalidInput, Problem

MAX_BACKFILL_OCCURRENCES = 10_000


@dataclass(frozen=True, kw_only=True)
class BackfillSpec:
    """A validated backfill: its range, policy and the occurrences it covers, oldest first."""

    schedule_id: str
    start: datetime
    end: datetime
    overlap: OverlapPolicy
    occurrences: tuple[datetime, ...]


def validate_backfill(schedule: ScheduleRecord, *, start: Any, end: Any, overlap: Any,
                      now: datetime) -> BackfillSpec:
    """Check every field at once (``start``, ``end``, ``overlap``); raise :class:`InvalidInput`
    listing all problems."""
    problems: list[Problem] = []
    begin = finish = None
    for field, value in (("start", start), ("end", end)):
        if value is None:
            problems.append(Problem(field=field, message="is required (ISO-8601 with an "
                                    "offset, e.g. 2030-01-01T00:00:00Z)"))
            continue
        try:
            instant = parse_instant(value, field=field)
        except InvalidInput as exc:
            problems += exc.problems
            continue
        if field == "start":
            begin = instant
        else:
            finish = instant
    if finish is not None and finish > now:
        problems.append(Problem(field="end", message=f"{finish.isoformat()} is in the future "
                                f"(now is {now.isoformat()}); a backfill runs past "
                                "occurrences, later ones run on schedule"))
    if begin is not None and finish is not None and begin > finish:
        problems.append(Problem(field="end", message="is before start"))
    policy = OverlapPolicy(schedule.overlap)
    try:
        policy = parse_overlap(overlap) if overlap is not None else policy
    except InvalidInput as exc:
        problems += exc.problems
    if schedule.cron is None:
        problems.append(Problem(field="schedule_id", message="is a one-time schedule: it has "
                                "no occurrences to backfill"))
    if problems:
        raise InvalidInput(problems, subject="backfill")
    assert begin is not None and finish is not None and schedule.cron is not None
    cron = CronSchedule(expression=schedule.cron, timezone=schedule.timezone)
    limit = finish
    if schedule.enabled and schedule.next_run_at is not None:
        limit = min(finish, schedule.next_run_at - timedelta(microseconds=1))
    occurrences = cron.between(begin, limit, cap=MAX_BACKFILL_OCCURRENCES) if begin <= limit \
        else []
    if occurrences is None:
        raise InvalidInput(Problem(
            field="end", message=f"the range holds more than {MAX_BACKFILL_OCCURRENCES:,} "
            f"occurrences (at most {MAX_BACKFILL_OCCURRENCES:,} per backfill); split it into "
            "shorter ranges"), subject="backfill")
    return BackfillSpec(schedule_id=schedule.id, start=begin, end=finish, overlap=policy,
                        occurrences=tuple(occurrences))

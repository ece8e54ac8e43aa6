"""Schedule rules: what a valid schedule is, when it first fires, and what a sensor tick does with
a due one (dispatch it, or skip missed occurrences under the catch-up policy).

Catch-up policy (missed occurrences, e.g. while the daemon was down): only the latest missed
occurrence runs, and only if it is at most ``catchup_window`` old; the others are skipped and
counted by cause (``superseded`` by a later occurrence, or ``outside_window``). One-time schedules
are never skipped: an accepted one-time trigger always runs, late if it must.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from orchestrator.domain.correlation import parse_iso
from orchestrator.domain.cron import CronSchedule, parse_timezone, validate_cron
from orchestrator.domain.payloads import unstorable
from orchestrator.domain.workflow import DEFAULT_ENVIRONMENT, validate_name
from orchestrator.exceptions import InvalidInput, Problem

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")
DEFAULT_CATCHUP_WINDOW = timedelta(hours=1)
_COUNT_CAP = 10_000

# Pausing a schedule cancels its executions that have not started (DESIGN §6): who finalized
# them, and what they say.
FINALIZED_BY_PAUSE = "pause"
PAUSED_ERROR = {"message": "cancelled: its schedule was paused before it started"}


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """A validated request to create (or upsert, by ``key``) a schedule."""

    workflow: str
    environment: str = DEFAULT_ENVIRONMENT
    cron: str | None = None
    timezone: str = "UTC"
    run_at: datetime | None = None
    payload: dict[str, Any]
    key: str | None = None

    @property
    def cron_schedule(self) -> CronSchedule | None:
        return CronSchedule(expression=self.cron, timezone=self.timezone) if self.cron else None

    def first_run_at(self, now: datetime) -> datetime:
        """``next_run_at`` for a schedule created (or resumed, or edited) at ``now``."""
        if self.run_at is not None:
            return self.run_at
        cron = self.cron_schedule
        assert cron is not None
        return cron.next_after(now)


def parse_instant(value: Any, *, field: str) -> datetime:
    """An ISO-8601 instant with an explicit offset (``Z`` or ``+02:00``), as aware UTC."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = parse_iso(str(value))
        except ValueError:
            raise InvalidInput(Problem(field=field, message=f"{value!r} is not an ISO-8601 "
                                       "instant; use e.g. 2030-01-31T09:00:00Z")) from None
    if parsed.tzinfo is None:
        raise InvalidInput(Problem(field=field, message=f"{value!r} has no UTC offset; add 'Z' "
                                   "or an offset such as '+02:00'"))
    return parsed.astimezone(UTC)


def validate_schedule(
    *,
    workflow: Any,
    now: datetime,
    environment: Any = DEFAULT_ENVIRONMENT,
    cron: Any = None,
    timezone: Any = "UTC",
    run_at: Any = None,
    payload: Any = None,
    key: Any = None,
) -> ScheduleSpec:
    """Check every field at once; raise :class:`InvalidInput` listing all problems."""
    problems: list[Problem] = []
    problems += validate_name(workflow, "workflow")
    problems += validate_name(environment, "environment")
    timezone = timezone or "UTC"
    normalised_cron: str | None = None
    instant: datetime | None = None
    if (cron is None) == (run_at is None):
        problems.append(Problem(field="cron", message="give exactly one of cron (recurring) or "
                                "run_at/--at (one time)"))
    if cron is not None:
        try:
            normalised_cron = validate_cron(cron)
        except InvalidInput as exc:
            problems += exc.problems
    try:
        parse_timezone(timezone)
    except InvalidInput as exc:
        problems += exc.problems
    if run_at is not None:
        try:
            instant = parse_instant(run_at, field="run_at")
            if instant <= now:
                problems.append(Problem(field="run_at", message=f"{instant.isoformat()} is in the "
                                        f"past (now is {now.astimezone(UTC).isoformat()}); "
                                        "give a future instant"))
        except InvalidInput as exc:
            problems += exc.problems
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        problems.append(Problem(field="payload", message="must be a JSON object"))
        payload = {}
    unfit = unstorable(payload, "payload", brackets=True)
    if unfit is not None:
        problems.append(unfit)
    if key is not None and (not isinstance(key, str) or not KEY_PATTERN.match(key)):
        problems.append(Problem(field="key", message=f"{key!r} is not allowed; use 1-200 of "
                                "letters, digits and _ . : / -"))
    if problems:
        raise InvalidInput(problems, subject="schedule")
    return ScheduleSpec(workflow=workflow, environment=environment, cron=normalised_cron,
                        timezone=timezone, run_at=instant, payload=dict(payload), key=key)


@dataclass(frozen=True, kw_only=True)
class CatchUp:
    """What to do with a due occurrence whose run does not exist yet.

    ``dispatch_at`` is the occurrence to run now (``None``: run nothing now); ``next_run_at`` is
    the value to store first when it differs from the current one (a skip), with the counts.
    """

    dispatch_at: datetime | None
    next_run_at: datetime
    superseded: int = 0
    outside_window: int = 0


def plan_catch_up(
    *,
    cron: CronSchedule | None,
    due_at: datetime,
    now: datetime,
    window: timedelta = DEFAULT_CATCHUP_WINDOW,
) -> CatchUp:
    """Apply the catch-up policy to a schedule due at ``due_at`` (``<= now``)."""
    if cron is None:  # one-time: never skipped
        return CatchUp(dispatch_at=due_at, next_run_at=due_at)
    latest = latest_fire_at_or_before(cron, now, since=due_at)
    superseded = _count_between(cron, due_at, latest)
    if now - latest <= window:
        return CatchUp(dispatch_at=latest, next_run_at=latest, superseded=superseded)
    return CatchUp(dispatch_at=None, next_run_at=cron.next_after(now), superseded=superseded,
                   outside_window=1)


def latest_fire_at_or_before(cron: CronSchedule, moment: datetime, *, since: datetime) -> datetime:
    """The latest fire instant in ``[since, moment]``; ``since`` is a fire instant <= moment."""
    lookback = timedelta(minutes=2)
    while True:
        start = max(since, moment - lookback)
        first = since if start == since else cron.next_after(start)
        if first <= moment:
            latest = first
            for instant in cron.iter_after(first):
                if instant > moment:
                    return latest
                latest = instant
        if start == since:
            return since
        lookback *= 2


def _count_between(cron: CronSchedule, start: datetime, end: datetime) -> int:
    """Occurrences in ``[start, end)``, counted on the wall clock (exact away from DST changes;
    capped at 10,000 to keep a tick bounded after a very long outage)."""
    if end <= start:
        return 0
    zone = parse_timezone(cron.timezone)
    it = croniter(cron.expression, start.astimezone(zone).replace(tzinfo=None) -
                  timedelta(seconds=1))
    stop = end.astimezone(zone).replace(tzinfo=None)
    count = 0
    while count < _COUNT_CAP and it.get_next(datetime) < stop:
        count += 1
    return max(count, 1)


def upcoming(schedule: Any, now: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` occurrences that will run, the first being what ``next_run_at`` says
    (an occurrence already due and waiting for dispatch included: with the catch-up policy,
    the latest of the missed ones). Nothing for a disabled schedule."""
    if not schedule.enabled or schedule.next_run_at is None:
        return []
    if not schedule.cron:
        return [schedule.next_run_at]
    cron = CronSchedule(expression=schedule.cron, timezone=schedule.timezone)
    first = schedule.next_run_at
    if first <= now:
        first = latest_fire_at_or_before(cron, now, since=first)
    return [first, *cron.upcoming(first, count - 1)]

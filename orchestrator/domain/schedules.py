"""Schedule rules: what a valid schedule is, when it first fires, and what a sensor tick does with
a due one (dispatch it, or skip missed occurrences under the catch-up policy).

Catch-up policy (missed occurrences, e.g. while the daemon was down): only the latest missed
occurrence runs, and only if it is at most ``catchup_window`` old; the others are skipped and
counted by cause (``superseded`` by a later occurrence, or ``outside_window``). One-time schedules
are never skipped: an accepted one-time trigger always runs, late if it must.

Controls (as Temporal names them), all optional and off by default:

- **overlap** (:class:`OverlapPolicy`): what an occurrence does while an execution of its schedule
  is still queued or running (:func:`plan_overlap`); skipped and held occurrences are counted
  on the schedule (``skipped_overlap``, ``buffered_overlap``);
- **jitter**: each occurrence starts at a deterministic offset in ``[0, jitter)`` after its
  nominal time (:func:`jitter_offset`), the same on every evaluation; ``scheduled_for`` and
  ``upcoming`` stay nominal;
- **priority** (``PRIORITY_RANGE`` of triggers): carried to every execution the schedule creates.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from croniter import croniter

from orchestrator.domain.correlation import iso_utc, parse_iso
from orchestrator.domain.cron import CronSchedule, parse_timezone, validate_cron
from orchestrator.domain.ingest import parse_duration, parse_priority
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

MAX_JITTER = timedelta(hours=1)
_JITTER_SAMPLE = 50  # occurrences whose gaps bound the jitter


class OverlapPolicy(str, Enum):
    """What an occurrence does while its schedule's previous execution is queued or running
    (Temporal's names): ``skip`` it (counted); ``buffer_one``: hold at most one, started right
    after (further ones skipped); ``buffer_all``: hold every one, started in order;
    ``cancel_other``: cancel the open ones, then start; ``allow_all``: start at once."""

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"
    ALLOW_ALL = "allow_all"


OVERLAP_POLICIES = tuple(p.value for p in OverlapPolicy)


def parse_overlap(value: Any, *, field: str = "overlap") -> OverlapPolicy:
    """An :class:`OverlapPolicy` by name (``allow_all`` when absent)."""
    if value is None:
        return OverlapPolicy.ALLOW_ALL
    try:
        return OverlapPolicy(value)
    except ValueError:
        raise InvalidInput(Problem(field=field, message=f"{value!r} is not an overlap policy; "
                                   f"use one of {', '.join(OVERLAP_POLICIES)}")) from None


@dataclass(frozen=True, kw_only=True)
class OverlapPlan:
    """What to do with ``n`` new occurrences (oldest first): the indexes to ``start`` now, to
    ``hold`` until nothing of the schedule runs, how many are ``skipped``, and whether the open
    executions are cancelled first."""

    start: tuple[int, ...] = ()
    hold: tuple[int, ...] = ()
    skipped: int = 0
    cancel_open: bool = False


def plan_overlap(policy: OverlapPolicy, n: int, *, open_: int, waiting: int) -> OverlapPlan:
    """The overlap policy applied to ``n`` occurrences arriving together (one for a schedule
    tick; a backfill's range) while ``open_`` executions of the schedule are queued or running,
    ``waiting`` of them held. Occurrences arriving together overlap each other as well."""
    if n <= 0:
        return OverlapPlan()
    every = tuple(range(n))
    if policy is OverlapPolicy.ALLOW_ALL:
        return OverlapPlan(start=every)
    if policy is OverlapPolicy.CANCEL_OTHER:  # each cancels the one before it: the last stays
        if open_:
            return OverlapPlan(hold=(n - 1,), skipped=n - 1, cancel_open=True)
        return OverlapPlan(start=(n - 1,), skipped=n - 1)
    if policy is OverlapPolicy.BUFFER_ALL:
        return OverlapPlan(hold=every) if open_ else OverlapPlan(start=(0,), hold=every[1:])
    if policy is OverlapPolicy.SKIP:
        return OverlapPlan(skipped=n) if open_ else OverlapPlan(start=(0,), skipped=n - 1)
    # buffer_one: at most one held at a time
    if not open_:
        return OverlapPlan(start=(0,), hold=every[1:2], skipped=max(0, n - 2))
    if waiting:
        return OverlapPlan(skipped=n)
    return OverlapPlan(hold=(0,), skipped=n - 1)


def jitter_offset(schedule_id: str, occurrence: datetime, jitter: timedelta | None) -> timedelta:
    """The start offset of one occurrence: in ``[0, jitter)`` (whole milliseconds), derived from
    (schedule id, occurrence) so a repeated evaluation keeps it."""
    if not jitter:
        return timedelta(0)
    span = max(1, int(jitter.total_seconds() * 1000))
    digest = hashlib.sha256(f"{schedule_id}|{iso_utc(occurrence)}".encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % span)


def _jitter(value: Any, cron: CronSchedule | None, now: datetime) -> timedelta | None:
    """A jitter of at most :data:`MAX_JITTER` and less than the shortest gap between the
    schedule's next occurrences (so an occurrence never starts after the next one's time)."""
    if value is None:
        return None
    try:
        jitter = parse_duration(value)
    except ValueError as exc:
        raise InvalidInput(Problem(field="jitter", message=str(exc))) from None
    if jitter > MAX_JITTER:
        raise InvalidInput(Problem(field="jitter", message="must be at most 1h"))
    if cron is not None:
        times = [cron.next_after(now), *cron.upcoming(cron.next_after(now), _JITTER_SAMPLE)]
        gap = min(b - a for a, b in itertools.pairwise(times))
        if jitter >= gap:
            raise InvalidInput(Problem(field="jitter", message=f"must be less than the "
                                       f"schedule's shortest interval ({_seconds(gap)})"))
    return jitter


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g}s"


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
    overlap: OverlapPolicy = OverlapPolicy.ALLOW_ALL
    jitter: timedelta | None = None
    priority: int = 0

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
    overlap: Any = None,
    jitter: Any = None,
    priority: Any = None,
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
    policy, spread, rank = OverlapPolicy.ALLOW_ALL, None, 0
    try:
        policy = parse_overlap(overlap)
    except InvalidInput as exc:
        problems += exc.problems
    try:
        rank = parse_priority(priority)
    except ValueError as exc:
        problems.append(Problem(field="priority", message=str(exc)))
    timing_ok = normalised_cron is not None and not any(
        p.field in ("cron", "timezone") for p in problems)  # the jitter's bound needs both
    try:
        spread = _jitter(jitter, CronSchedule(expression=normalised_cron, timezone=timezone)
                         if timing_ok and normalised_cron else None, now)
    except InvalidInput as exc:
        problems += exc.problems
    if problems:
        raise InvalidInput(problems, subject="schedule")
    return ScheduleSpec(workflow=workflow, environment=environment, cron=normalised_cron,
                        timezone=timezone, run_at=instant, payload=dict(payload), key=key,
                        overlap=policy, jitter=spread, priority=rank)


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

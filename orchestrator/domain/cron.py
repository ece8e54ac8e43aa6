"""Cron expressions in an IANA timezone, with the DST semantics of Dagster's native schedules.

Rules (Dagster docs, "Customizing a schedule's execution timezone"):

- a local time that does not exist (clocks spring forward) runs at the first instant after the
  gap, i.e. the transition itself; several times inside one gap collapse into that one run
  (for schedules that repeat every hour, a nonexistent time is simply skipped: the next real
  hour has its own run);
- a local time that exists twice (clocks fall back) runs once, at the later instant;
- a schedule that repeats every hour (hour field ``*``) runs every real hour, so during the
  repeated hour it fires for both instants.

Everything is computed on naive local wall-clock times (croniter, no timezone), then mapped to
UTC instants by :func:`_instants_for`. Time is always an argument: nothing here reads the clock.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from orchestrator.exceptions import InvalidInput, Problem

# No zone has ever shifted its UTC offset by more than this in one transition; it bounds the
# window in which a later wall-clock time can map to an earlier instant.
_MAX_SHIFT = timedelta(hours=3)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())  # scans the tz database: once per process


def parse_timezone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The IANA zone called ``name`` or :class:`InvalidInput` naming the field."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(Problem(field=field, message="must be an IANA timezone name, e.g. UTC"))
    try:
        if name not in _zone_names() and name != "UTC":
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            Problem(
                field=field,
                message=f"unknown timezone {name!r}; use an IANA name such as "
                "'UTC', 'Europe/Berlin' or 'America/New_York'",
            )
        ) from None


def validate_cron(expression: str, *, field: str = "cron") -> str:
    """Normalise and check a 5-field cron expression; raise :class:`InvalidInput` otherwise."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidInput(
            Problem(field=field, message="is required (5-field cron, e.g. '0 9 * * *')"))
    normalised = " ".join(expression.split())
    parts = normalised.split(" ")
    if len(parts) != 5:
        raise InvalidInput(
            Problem(
                field=field,
                message=f"{expression!r} has {len(parts)} field(s); a cron expression has 5: "
                "minute hour day-of-month month day-of-week (e.g. '*/5 * * * *')",
            )
        )
    if not croniter.is_valid(normalised):
        raise InvalidInput(
            Problem(
                field=field,
                message=f"{expression!r} is not a valid cron expression; fields are minute (0-59) "
                "hour (0-23) day-of-month (1-31) month (1-12) day-of-week (0-6, Sunday=0)",
            )
        )
    try:
        # Expressions such as "0 0 31 2 *" parse but never fire; croniter gives up on them.
        croniter(normalised, datetime(2000, 1, 1)).get_next(datetime)
    except Exception:
        raise InvalidInput(
            Problem(field=field, message=f"{expression!r} never fires; check day and month")
        ) from None
    return normalised


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def _instants_for(wall: datetime, tz: ZoneInfo, *, every_hour: bool) -> list[datetime]:
    """The UTC instants at which the local wall-clock time ``wall`` fires."""
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if not _exists(wall, tz):
        if every_hour:
            return []
        # In a gap both folds are fictitious; the transition is the first real instant after it.
        return [_transition_after(min(earlier, later), tz)]
    if earlier == later:
        return [earlier]
    # Ambiguous: once at the later instant, unless the schedule repeats every hour.
    return [earlier, later] if every_hour else [later]


def _transition_after(moment: datetime, tz: ZoneInfo) -> datetime:
    """The instant at which the UTC offset last changed before ``moment`` + a gap (search by
    bisection over at most ``_MAX_SHIFT``)."""
    low = moment - _MAX_SHIFT
    high = moment + _MAX_SHIFT
    target = high.astimezone(tz).utcoffset()
    # invariant: offset(low) != target, offset(high) == target
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).utcoffset() == target:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0)


@dataclass(frozen=True, kw_only=True)
class CronSchedule:
    """A validated cron expression in a timezone."""

    expression: str
    timezone: str = "UTC"

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> CronSchedule:
        problems: list[Problem] = []
        normalised = expression
        try:
            normalised = validate_cron(expression)
        except InvalidInput as exc:
            problems += exc.problems
        try:
            parse_timezone(timezone)
        except InvalidInput as exc:
            problems += exc.problems
        if problems:
            raise InvalidInput(problems, subject="schedule")
        return cls(expression=normalised, timezone=timezone)

    @property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def repeats_every_hour(self) -> bool:
        return self.expression.split(" ")[1] == "*"

    def next_after(self, moment: datetime) -> datetime:
        """The first fire instant strictly after ``moment`` (aware), as an aware UTC datetime."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        tz = self._zone
        moment = moment.astimezone(UTC)
        local = moment.astimezone(tz).replace(tzinfo=None)

        fast = self._next_without_transition(local, moment, tz)
        if fast is not None:
            return fast

        # Near a transition: scan wall-clock times from a little before `moment` and keep the
        # earliest instant after it. A wall time more than _MAX_SHIFT past the best candidate's
        # cannot map to an earlier instant, which bounds the scan.
        it = croniter(self.expression, local - _MAX_SHIFT - timedelta(minutes=1))
        best: datetime | None = None
        best_wall: datetime | None = None
        while True:
            wall = it.get_next(datetime)
            if best_wall is not None and wall > best_wall + _MAX_SHIFT:
                assert best is not None
                return best
            for instant in _instants_for(wall, tz, every_hour=self.repeats_every_hour):
                if instant > moment and (best is None or instant < best):
                    best, best_wall = instant, wall

    def _next_without_transition(
        self, local: datetime, moment: datetime, tz: ZoneInfo
    ) -> datetime | None:
        wall = croniter(self.expression, local).get_next(datetime)
        if wall <= local:  # croniter returns strictly later times; guard anyway
            return None
        instants = _instants_for(wall, tz, every_hour=self.repeats_every_hour)
        if len(instants) != 1 or not _exists(wall, tz):
            return None
        instant = instants[0]
        # Same offset well before `moment` and well after the candidate: no transition between
        # them can have moved a wall-clock time (real zones change offset at most a few times a
        # year, and never back and forth within the span of a check).
        before = (moment - _MAX_SHIFT).astimezone(tz).utcoffset()
        after = (instant + _MAX_SHIFT).astimezone(tz).utcoffset()
        if before != after or instant <= moment:
            return None
        return instant

    def iter_after(self, moment: datetime) -> Iterator[datetime]:
        """Fire instants strictly after ``moment``, in order."""
        current = moment
        while True:
            current = self.next_after(current)
            yield current

    def between(self, start: datetime, end: datetime, *, cap: int) -> list[datetime] | None:
        """Every fire instant in ``[start, end]``, oldest first; None when there are more than
        ``cap``. The same instants as :meth:`iter_after` gives, found in one pass over the
        wall-clock times (each mapped by the DST rules), which is many times faster for a long
        range."""
        tz = self._zone
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        stop = end.astimezone(tz).replace(tzinfo=None) + _MAX_SHIFT
        it = croniter(self.expression, start.astimezone(tz).replace(tzinfo=None) - _MAX_SHIFT
                      - timedelta(minutes=1))
        found: set[datetime] = set()
        while (wall := it.get_next(datetime)) <= stop:
            for instant in _instants_for(wall, tz, every_hour=self.repeats_every_hour):
                if start <= instant <= end:
                    found.add(instant)
            if len(found) > cap:
                return None
        return sorted(found)

    def upcoming(self, moment: datetime, count: int = 5) -> list[datetime]:
        it = self.iter_after(moment)
        return [next(it) for _ in range(count)]

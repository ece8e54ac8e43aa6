"""What a trigger asks for when it enters the system (API, webhook, batch item, child), and what
ingestion answered. Plain values: the HTTP layer parses into these, the store writes them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.correlation import Correlation, parse_iso

DEFAULT_IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_IDEMPOTENCY_TTL = timedelta(days=30)
MAX_BATCH_ITEMS = 500

DURATION_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, *, allow_zero: bool = False) -> timedelta:
    """Seconds (a number) or a string such as ``"30s"``, ``"5m"``, ``"1h"``, ``"2d"``, positive
    (or zero, with ``allow_zero``); raises ``ValueError`` with a message fit for the user."""
    if isinstance(value, bool):
        raise ValueError("must be seconds (a number) or a duration such as '30s', '5m', '1h'")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = value
    else:
        match = DURATION_PATTERN.match(str(value).strip())
        if match is None:
            raise ValueError("must be seconds (a number) or a duration such as '30s', '5m', "
                             "'1h'")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if allow_zero and seconds == 0:
        return timedelta(0)
    if not seconds > 0:  # NaN too
        raise ValueError("must be zero or positive" if allow_zero else "must be positive")
    try:
        duration = timedelta(seconds=seconds)
    except OverflowError:  # past timedelta's range (~2.7 million years), or infinite
        raise ValueError("is too large") from None
    if not duration:
        raise ValueError("must be at least one microsecond")
    return duration


# A trigger's priority: higher starts first within its environment (environments still take
# turns, so a tenant's priorities never hold back another tenant).
PRIORITY_RANGE = range(-10, 11)


def parse_priority(value: Any) -> int:
    """An integer from -10 to 10 (0 when absent); ``ValueError`` fit for the user."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value not in PRIORITY_RANGE:
        raise ValueError(f"must be an integer from {PRIORITY_RANGE.start} to "
                         f"{PRIORITY_RANGE.stop - 1} (higher starts first)")
    return value


MAX_DELAY = timedelta(days=365)
MAX_TTL = timedelta(days=365)


def parse_start(delay: Any, run_at: Any, now: datetime) -> datetime | None:
    """When a trigger may start: ``delay`` ("10m", seconds) after ``now``, or at ``run_at``
    (ISO-8601 with an offset, in the future), at most a year ahead; None for neither. Raises
    ``ValueError`` naming the field (``delay: ...``) with a message fit for the user."""
    if delay is not None and run_at is not None:
        raise ValueError("delay: give delay or run_at, not both")
    if delay is not None:
        try:
            duration = parse_duration(delay)
        except ValueError as exc:
            raise ValueError(f"delay: {exc}") from None
        if duration > MAX_DELAY:  # before the sum: far enough, it leaves datetime's range
            raise ValueError("delay: is more than a year ahead")
        start = now + duration
    elif run_at is not None:
        parsed: datetime | None
        try:
            parsed = parse_iso(str(run_at))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise ValueError("run_at: must be an ISO-8601 instant with an offset, e.g. "
                             "'2030-01-15T09:00:00Z'")
        start = parsed
        if start <= now:
            raise ValueError("run_at: is not in the future")
    else:
        return None
    if start - now > MAX_DELAY:
        raise ValueError(f"{'delay' if delay is not None else 'run_at'}: is more than a year "
                         "ahead")
    return start


def parse_expiry(ttl: Any, start: datetime) -> datetime | None:
    """The instant a trigger with ``ttl`` expires if it has not started: ``ttl`` after it may
    start (``start``: now, or its delay's end), at most a year; None without a TTL."""
    if ttl is None:
        return None
    try:
        duration = parse_duration(ttl)
    except ValueError as exc:
        raise ValueError(f"ttl: {exc}") from None
    if duration > MAX_TTL:
        raise ValueError("ttl: must be at most a year")
    return start + duration


def parse_idempotency_ttl(value: Any) -> timedelta:
    """An idempotency key's TTL (API ``idempotency_key_ttl``, CLI ``--idempotency-ttl``, the
    ``trigger`` block's ``idempotency_ttl``): a positive duration of at most 30 days."""
    ttl = parse_duration(value)
    if ttl > MAX_IDEMPOTENCY_TTL:
        raise ValueError("must be at most 30 days")
    return ttl


class DebounceMode(str, Enum):
    """``leading`` keeps the first trigger's payload; ``trailing`` the last one's."""

    LEADING = "leading"
    TRAILING = "trailing"


@dataclass(frozen=True, kw_only=True)
class Debounce:
    """Triggers with one ``key`` within ``delay`` of each other make one execution, which starts
    ``delay`` after the last of them, and at the latest ``max_delay`` after the first."""

    key: str
    delay: timedelta
    mode: DebounceMode = DebounceMode.TRAILING
    max_delay: timedelta | None = None

    def due(self, first_at: datetime, now: datetime) -> tuple[datetime, datetime | None]:
        """(when the execution may start, the latest it may start) for a trigger at ``now`` of a
        debounce window opened at ``first_at``."""
        latest = first_at + self.max_delay if self.max_delay is not None else None
        start = now + self.delay
        return (min(start, latest) if latest is not None else start), latest


@dataclass(frozen=True, kw_only=True)
class TriggerRequest:
    """One trigger to admit. The correlation (``execution_id``, ``request_id``) is already
    assigned: ingestion is where it is born."""

    correlation: Correlation
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL
    debounce: Debounce | None = None
    batch_id: str | None = None
    not_before: datetime | None = None  # a delay: queued, it starts no earlier
    expires_at: datetime | None = None  # a TTL: not started by then, it ends `expired`
    priority: int = 0  # PRIORITY_RANGE: higher starts first within its environment
    concurrency_key: str | None = None  # the workflow's key_limit holds per key
    pinned_version: int | None = None  # run this workflow version (a same-version replay)

    @property
    def bypasses_gate(self) -> bool:
        """Debounce, batch items, child triggers and replays never go to the burst buffer:
        they carry state (a debounce window, a batch, a parent, the replayed execution and its
        version) that must exist at once."""
        return (self.debounce is not None or self.batch_id is not None
                or self.correlation.parent_execution_id is not None
                or self.correlation.replayed_from is not None)


@dataclass(frozen=True, kw_only=True)
class AdmissionJob:
    """One call's triggers (one, or a batch's items) for one workflow: admitted all or none. The
    store may write several calls' jobs in one transaction (group commit), each still all or
    none."""

    environment: str
    workflow: str
    requests: tuple[TriggerRequest, ...]
    buffer: tuple[bool, ...]  # per request: to the burst buffer whatever the gate says
    now: datetime
    gate: BurstPolicy | None = None  # the burst gate covering the environment, if any
    receipt: tuple[str, str] | None = None  # (webhook id, message id) to record with it
    batched: bool = False  # names a batch item's field ``items.<i>.…`` in errors

    def __post_init__(self) -> None:
        if len(self.buffer) != len(self.requests):
            raise ValueError("one buffer flag per request")

    @property
    def plain(self) -> bool:
        """Nothing to claim, debounce, check or record: rows to insert, in bulk with other plain
        jobs."""
        return self.receipt is None and all(
            r.correlation.idempotency_key is None and r.debounce is None
            and r.correlation.parent_execution_id is None for r in self.requests)

    @property
    def lock_order(self) -> tuple[str, ...]:
        """Jobs of a shared transaction take their row locks (idempotency keys, debounce
        windows) in this order, so two servers' transactions cannot deadlock on each other."""
        first = self.requests[0]
        return (self.environment, self.workflow, first.correlation.idempotency_key or "",
                first.debounce.key if first.debounce else "")

    def to_buffer(self, index: int) -> bool:
        return self.buffer[index] and not self.requests[index].bypasses_gate

    def gated(self, index: int) -> bool:
        """Request ``index`` goes to the buffer while the environment is tripped."""
        return self.gate is not None and not self.requests[index].bypasses_gate


@dataclass(frozen=True, kw_only=True)
class Admission:
    """What ingestion did with one trigger: the 202 body, plus how it was admitted."""

    execution_id: str
    request_id: str
    deduplicated: bool = False
    buffered: bool = False
    debounced: bool = False
    status: str = "queued"

    def body(self) -> dict[str, object]:
        return {"execution_id": self.execution_id, "request_id": self.request_id,
                "status": self.status, "deduplicated": self.deduplicated}

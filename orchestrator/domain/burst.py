"""The burst gate (mollifier): per-environment sliding-window trigger rate. Above ``threshold``
triggers within ``window``, the environment is tripped for ``hold``; while tripped, its new
triggers go to the burst buffer instead of the queue.

The window is counted where every API server process (on every machine) sees it: in the store,
inside the transaction that admits the new triggers; the trip is a row of the store too. So
``orchestrator serve --workers 4`` trips at the rate one process does. Each server process keeps
its own counters, one per :data:`BUCKETS`-th of the window (a row per environment, bucket and
server: no two processes write the same row), and the window is their sum: the buckets wholly
inside it, and the one the window's start falls in weighted by the part of it still inside (a
sliding-window counter: the count of an instant just past a bucket's edge may be off by a
fraction of one bucket's triggers, and is exact while the window holds every bucket whole).
Reading the sum costs the same whatever the count; counting the triggers themselves cost more
the more there were. Plain Python here: :class:`BurstPolicy` names the buckets,
:class:`BurstWindow` sums them and decides, the store keeps the counters and the trip.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

BUCKETS = 10  # counters per window
MAX_WINDOW = timedelta(days=1)  # housekeeping removes counters older than this
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class BurstPolicy:
    """Off unless ``enabled`` (the master switch) and the environment is listed (``*`` = all)."""

    enabled: bool = False
    environments: Collection[str] = field(default_factory=frozenset)
    threshold: int = 200
    window: timedelta = timedelta(seconds=1)
    hold: timedelta = timedelta(seconds=10)

    def covers(self, environment: str) -> bool:
        return self.enabled and ("*" in self.environments or environment in self.environments)

    @property
    def bucket_width(self) -> timedelta:
        return self.window / BUCKETS

    def bucket(self, at: datetime) -> datetime:
        """The start of the bucket that counts a trigger admitted ``at``."""
        width = self.bucket_width
        return _EPOCH + (at - _EPOCH) // width * width


class BurstWindow:
    """One environment's gate within one admission transaction: ``counted`` triggers were
    admitted within the window before it (by any server; None: not read, as the environment
    is tripped beyond the count's reach), and the environment is tripped until
    ``tripped_until`` (None: never). Each trigger the transaction admits is counted by
    :meth:`admit`, which says whether it goes to the buffer; ``admitted`` says how many it
    counted (for this server's bucket)."""

    def __init__(self, policy: BurstPolicy, now: datetime, *, counted: int | None,
                 tripped_until: datetime | None) -> None:
        self.policy = policy
        self.now = now
        self.read = counted is not None
        self.counted = policy.threshold if counted is None else counted
        self.admitted = 0
        self.stored = tripped_until
        self.tripped_until = tripped_until

    @staticmethod
    def first_bucket(policy: BurstPolicy, now: datetime) -> datetime:
        """The oldest bucket still (partly) in the window at ``now``."""
        return policy.bucket(now - policy.window)

    @staticmethod
    def first_weight(policy: BurstPolicy, now: datetime) -> float:
        """The share of :meth:`first_bucket` still inside the window at ``now`` (0 to 1]."""
        first = BurstWindow.first_bucket(policy, now)
        return (first + policy.bucket_width - (now - policy.window)) / policy.bucket_width

    @staticmethod
    def count(policy: BurstPolicy, now: datetime,
              buckets: Iterable[tuple[datetime, int]]) -> int:
        """The triggers in the window at ``now``, from the counts of its buckets (by start; a
        bucket may come more than once, from several servers): whole buckets counted whole, the
        one the window starts in by the share of it still inside, older ones not at all."""
        first = BurstWindow.first_bucket(policy, now)
        weight = BurstWindow.first_weight(policy, now)
        return int(sum(n * weight if start == first else n
                       for start, n in buckets if start >= first))

    def admit(self, gated: bool) -> bool:
        """Count one trigger admitted now; True when it goes to the buffer (it is ``gated``, i.e.
        does not bypass the gate, and the environment is, or just became, tripped)."""
        self.counted += 1
        self.admitted += 1
        if self.counted > self.policy.threshold:
            until = self.now + self.policy.hold
            if self.tripped_until is None or until > self.tripped_until:
                self.tripped_until = until
        return gated and self.tripped_until is not None and self.now < self.tripped_until

    def trip_to_store(self) -> datetime | None:
        """The trip's new end, when the store should be told: it started, or moved on by half
        the hold or more (a sustained burst writes the row twice per hold, not per trigger)."""
        if self.tripped_until is None or self.tripped_until == self.stored:
            return None
        if self.stored is None or self.stored <= self.now \
                or self.tripped_until - self.stored >= self.policy.hold / 2:
            return self.tripped_until
        return None

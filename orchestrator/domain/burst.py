"""The burst gate (mollifier): per-environment sliding-window trigger rate. Above ``threshold``
triggers within ``window``, the environment is tripped for ``hold``; while tripped, its new
triggers go to the burst buffer instead of the queue.

The window is counted where every API server process (on every machine) sees it: in the store,
from the triggers themselves (the executions and buffer entries the environment was given
within the window), inside the transaction that admits the new ones; the trip is a row of the
store too. So ``orchestrator serve --workers 4`` trips at the rate one process does. Plain Python
here: :class:`BurstWindow` decides, the store counts and keeps the trip.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta


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


class BurstWindow:
    """One environment's gate within one admission transaction: ``counted`` triggers were
    admitted within the window before it (by any server), and the environment is tripped until
    ``tripped_until`` (None: never). Each trigger the transaction admits is counted by
    :meth:`admit`, which says whether it goes to the buffer."""

    def __init__(self, policy: BurstPolicy, now: datetime, *, counted: int,
                 tripped_until: datetime | None) -> None:
        self.policy = policy
        self.now = now
        self.counted = counted
        self.stored = tripped_until
        self.tripped_until = tripped_until

    @staticmethod
    def horizon(policy: BurstPolicy, now: datetime) -> datetime:
        """Triggers created after this instant are in the window."""
        return now - policy.window

    def admit(self, gated: bool) -> bool:
        """Count one trigger admitted now; True when it goes to the buffer (it is ``gated``, i.e.
        does not bypass the gate, and the environment is, or just became, tripped)."""
        self.counted += 1
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

"""The burst gate (mollifier): per-environment sliding-window trigger rate. Above ``threshold``
triggers within ``window``, the environment is tripped for ``hold``; while tripped, its new
triggers go to the burst buffer instead of the queue.

Plain Python with an injected ``now``; one gate per API server process (the rate it sees is that
process's share of the traffic).
"""

from __future__ import annotations

import threading
from collections import deque
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


class BurstGate:
    """Decides, per trigger, whether it passes to the queue or goes to the buffer."""

    def __init__(self, policy: BurstPolicy) -> None:
        self.policy = policy
        self._seen: dict[str, deque[datetime]] = {}
        self._tripped_until: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def covers(self, environment: str) -> bool:
        return self.policy.covers(environment)

    def should_buffer(self, environment: str, now: datetime) -> bool:
        """Count this trigger; True when the environment is (or just became) tripped."""
        with self._lock:
            seen = self._seen.setdefault(environment, deque())
            seen.append(now)
            horizon = now - self.policy.window
            while seen and seen[0] <= horizon:
                seen.popleft()
            if len(seen) > self.policy.threshold:
                self._tripped_until[environment] = now + self.policy.hold
            until = self._tripped_until.get(environment)
            return until is not None and now < until

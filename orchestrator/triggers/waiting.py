"""How a dispatch sensor's evaluation waits for work, so a trigger starts within a second.

Dagster requests a sensor's runs when its evaluation returns, and its daemon starts evaluations
on a loop (every 5 s; ``orchestrator daemon`` runs it every half second). An evaluation that
returned "nothing to do" leaves whatever arrives next waiting for the following one. So a
dispatch evaluation that finds nothing does not return at once: it waits, up to ``wait``, and
returns as soon as there is something to dispatch.

- Schedules: their instants are known in advance. Nothing due within ``wait``: return at once;
  otherwise sleep until the instant (the look-ahead).
- Queued triggers: they arrive at any moment. The store is probed every ``poll`` (one indexed
  ``EXISTS`` query) until one can start, or ``wait`` is over.

Nothing is waited for when work is already there, so a backlog is never delayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

# Probe the queue ten times a second while idle: ~50 ms of added latency on average, a few
# cheap reads per second.
QUEUE_POLL = timedelta(milliseconds=100)


def wait_for_work(probe: Callable[[datetime], datetime | None], *, now: datetime,
                  wait: timedelta, clock: Callable[[], datetime],
                  sleep: Callable[[float], None] = time.sleep,
                  poll: timedelta | None = None) -> datetime:
    """Wait until there is work and return the instant to dispatch at (a clock reading, never
    earlier than a due instant waited for).

    ``probe(t)`` answers when work can start: an instant ``<= t`` means now, a later one that
    work falls due then, None that nothing is known. ``poll`` None: work only comes due (nothing
    within ``wait`` returns ``now`` at once). Otherwise work may also arrive: probe again every
    ``poll`` until there is some or ``wait`` is over.
    """
    deadline = now + wait
    current = now
    while True:
        due = probe(current)
        if due is not None and due <= current:
            return current
        if poll is None and (due is None or due > deadline):
            return current
        if current >= deadline:
            return current
        wake = deadline if due is None else min(due, deadline)
        if poll is not None:
            wake = min(wake, current + poll)
        sleep((wake - current).total_seconds())
        current = max(clock(), wake)

"""What the trigger sensors share: the state of a run key in Dagster, one dispatch (a run of one
execution, or a batch run of many) and how waiting executions are packed into runs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Generic, TypeVar

from orchestrator.domain.correlation import Correlation, batch_run_key
from orchestrator.store.interfaces import BatchRepository, RunBatch

T = TypeVar("T")


class RunState(str, Enum):
    """Where a run key stands in Dagster's run storage."""

    NOT_STARTED = "not_started"  # the run exists but was never submitted (daemon died between)
    SUBMITTED = "submitted"  # queued, starting, running or finished


# Given run keys, the state of those that exist (absent keys have no run).
RunLookup = Callable[[Sequence[str]], dict[str, RunState]]


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """One run to request for one execution: its run key and the execution's correlation."""

    run_key: str
    correlation: Correlation


@dataclass(frozen=True, kw_only=True)
class BatchDispatch:
    """One batch run to request: run key ``batch:<batch_id>``; its members are in the store."""

    run_key: str
    batch_id: str
    environment: str
    size: int


def batch_dispatch(batch: RunBatch) -> BatchDispatch:
    return BatchDispatch(run_key=batch_run_key(batch.batch_id), batch_id=batch.batch_id,
                         environment=batch.environment, size=batch.size)


def redispatch_batches(batches: BatchRepository, kind: str, *, now: datetime, limit: int,
                       runs: RunLookup) -> tuple[list[str], list[BatchDispatch]]:
    """Batches of ``kind`` not yet seen dispatched: those whose run Dagster has are marked
    dispatched (their ids are returned first); the others (a crash between claim and run
    creation) are returned to be requested again, with the same run key, at most ``limit``."""
    pending = batches.pending(kind, limit)
    states = runs([batch_run_key(b.batch_id) for b in pending])
    submitted = [b.batch_id for b in pending
                 if states.get(batch_run_key(b.batch_id)) is RunState.SUBMITTED]
    batches.mark_dispatched(submitted, now)
    return submitted, [batch_dispatch(b) for b in pending
                       if states.get(batch_run_key(b.batch_id)) is not RunState.SUBMITTED]


@dataclass(frozen=True, kw_only=True)
class Waiting(Generic[T]):
    """An execution waiting for a run, in fair order: what it is, where it belongs, and
    whether its workflow lets it share a run."""

    item: T
    environment: str
    batchable: bool


@dataclass(frozen=True, kw_only=True)
class RunSlots:
    """Dagster's run slots as the dispatchers see them: ``capacity`` runs at once (the run
    coordinator's ``max_concurrent_runs``) of which ``in_use`` are queued or in flight."""

    capacity: int
    in_use: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.in_use)


def spread_size(waiting: int, *, free: int, floor: int, max_size: int,
                busy: Sequence[int] = ()) -> int:
    """How many of an environment's ``waiting`` executions one batch run takes when they are
    spread over the ``free`` run slots, so that the slots finish together rather than one run
    carrying a long tail while another slot idles. Never below ``floor`` (a run smaller than
    the members it runs at once leaves its own threads idle while paying another run's start)
    nor above ``max_size``.

    ``busy`` holds, for the batch runs in flight, how many members each still has to finish.
    A busy slot that will be done before a free slot's share takes part in the share: the level
    is filled as water is, so that each free slot now and each such busy slot once it frees end
    at about the same time. Without it, the last of a burst went whole to the first slot that
    freed while the other slot, a moment from free, then idled; a busy slot further from done
    than the share takes no part, so a tail is not halved again at every slot that frees."""
    free = max(1, free)
    share = math.ceil(waiting / free)
    total = waiting
    for taken, remaining in enumerate(sorted(busy), start=1):
        if remaining >= share:
            break
        total += remaining
        share = math.ceil(total / (free + taken))
    return max(1, min(max_size, max(floor, share)))


def pack(waiting: Sequence[Waiting[T]], *, max_size: int, max_runs: int,
         spread: Callable[[int], int] | None = None) -> list[list[T]]:
    """Group ``waiting`` (fair order: round robin across environments, oldest first) into at
    most ``max_runs`` runs: an environment's batchable executions share runs of up to
    ``max_size`` (or ``spread(n)`` for an environment with ``n`` batchable ones waiting), the
    others get one run each. A group of one is a lone run. Executions that would need a run
    beyond ``max_runs`` are left for the next tick."""
    sizes: dict[str, int] = {}
    if spread is not None:
        counts = Counter(w.environment for w in waiting if w.batchable)
        sizes = {env: min(max_size, spread(n)) for env, n in counts.items()}
    groups: list[list[T]] = []
    open_group: dict[str, list[T]] = {}
    for w in waiting:
        if w.batchable and max_size > 1:
            group = open_group.get(w.environment)
            if group is not None and len(group) < sizes.get(w.environment, max_size):
                group.append(w.item)
                continue
        if len(groups) >= max_runs:
            continue  # no run left this tick; it may still join an open group
        group = [w.item]
        groups.append(group)
        if w.batchable:
            open_group[w.environment] = group
    return groups

"""One tick of the queued-trigger dispatcher (triggers from ``orchestrator trigger``,
``schedules trigger`` and the HTTP API): dispatch before mark, fair across environments.

1. Entries buffered longer than ``stuck_after`` raise a ``buffer_stuck`` alert through the
   :class:`~orchestrator.alerts.Alerter` (a row, an ERROR line, the webhook when set), once
   each; then the burst buffer is drained into the queue (bounded by ``limit``, round robin
   across environments), and queued triggers whose TTL has passed end ``expired`` (no alert;
   one started after its TTL would end so at its start, too). A delayed trigger waits for its
   ``not_before`` as a debounced one for its ``available_at``.
2. Batches claimed on an earlier tick whose run Dagster does not have yet are requested again
   (same run key ``batch:<batch_id>``, same members); those whose run exists are marked
   dispatched.
3. A page of at most ``limit * max_batch_size`` unclaimed queued triggers is read round robin
   across environments in blocks of ``max_batch_size`` (each environment's oldest first, the
   environment waiting longest first), so one tenant's burst delays another's trigger by at most
   a tick and batches fill. Debounced triggers wait for their ``available_at``.
4. A trigger whose own run exists is marked dispatched. The rest are packed into at most
   ``limit`` runs: a lone trigger gets a run of its own (run key ``trigger:<execution_id>``),
   several waiting in one environment share batch runs of up to ``max_batch_size`` (claimed in
   the store first, so each belongs to one batch).

Concurrency limits (an environment's ``max_concurrent``, a workflow's ``concurrency.key_limit``
per ``concurrency_key``) are enforced here, between the page and the packing: the store grants
slots to the page's triggers in order, atomically (:meth:`ConcurrencyRepository.grant
<orchestrator.store.interfaces.ConcurrencyRepository.grant>`), and only those granted are packed
into runs; the rest wait, in order, for a later tick. Triggers granted a slot on an earlier tick
but not in a run yet come first, whatever the page holds. A same-version replay runs alone (its
own run at its own version).

With ``slots`` (Dagster's run slots), no more runs are requested than there are free slots,
and an environment's backlog is spread evenly over them and over the slots whose batch runs
are about to finish (:func:`~orchestrator.triggers.dispatch.spread_size`): members are claimed
when a slot can run them, not queued in Dagster behind a run that took them all, so several
workers finish a burst together. Without (no limit set, or spreading turned off), every waiting
trigger is handed to Dagster at once in runs of ``max_batch_size``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.alerts import Alerter
from orchestrator.domain.correlation import trigger_run_key
from orchestrator.domain.records import QueuedTrigger
from orchestrator.store import Store
from orchestrator.store.interfaces import KIND_QUEUE, BatchRepository
from orchestrator.triggers.dispatch import (
    BatchDispatch,
    Dispatch,
    RunLookup,
    RunSlots,
    RunState,
    Waiting,
    batch_dispatch,
    pack,
    redispatch_batches,
    spread_size,
)

DEFAULT_STUCK_AFTER = timedelta(minutes=10)


@dataclass(kw_only=True)
class QueueTick:
    dispatches: list[Dispatch] = field(default_factory=list)
    batches: list[BatchDispatch] = field(default_factory=list)
    marked: int = 0
    drained: int = 0
    stuck_alerts: int = 0
    expired: int = 0  # queued triggers whose TTL passed before they started

    @property
    def runs(self) -> int:
        return len(self.dispatches) + len(self.batches)


def dispatch_queued_triggers(store: Store, *, now: datetime, limit: int, runs: RunLookup,
                             alerter: Alerter, max_batch_size: int = 1,
                             stuck_after: timedelta = DEFAULT_STUCK_AFTER,
                             slots: RunSlots | None = None, min_spread: int = 1) -> QueueTick:
    tick = QueueTick()
    fair = store.queue
    for entry in fair.stuck(now, stuck_after):
        alerter.buffer_stuck(entry)
        tick.stuck_alerts += 1
    tick.drained = len(fair.drain(limit))
    tick.expired = len(fair.expire(now, limit * max_batch_size))
    batches = store.batches
    tick.batches.extend(redispatch_batches(batches, KIND_QUEUE, now=now, limit=limit,
                                           runs=runs)[1])
    if slots is not None and slots.free <= tick.runs:
        return tick  # no slot to fill: the page (and its run lookups) waits for one
    limits = store.concurrency.limits()
    # Triggers already running are marked first so they stop occupying the page.
    for _ in range(2):
        queued = fair.queued(now, limit * max_batch_size, block=max_batch_size)
        if _limited(queued, limits):
            queued = _first(store.concurrency.held(limit * max_batch_size), queued)
        keys = {q.execution_id: trigger_run_key(q.execution_id) for q in queued}
        states = runs(list(keys.values()))
        started = [e for e, k in keys.items() if states.get(k) is RunState.SUBMITTED]
        tick.marked += store.mark_dispatched(started, now)
        if not started:
            break
    pending = [q for q in queued if states.get(keys[q.execution_id]) is not RunState.SUBMITTED]
    if _limited(pending, limits):
        granted = set(store.concurrency.grant(pending, env_limits=limits, now=now))
        pending = [q for q in pending if q.execution_id in granted]
    batchable = batches.batchable([(q.environment, q.workflow) for q in pending])
    runs_left = limit if slots is None else min(limit, slots.free)
    groups = pack([Waiting(item=q, environment=q.environment,
                           batchable=(batchable[(q.environment, q.workflow)]
                                      and q.pinned_version is None)) for q in pending],
                  max_size=max_batch_size, max_runs=max(0, runs_left - tick.runs),
                  spread=None if slots is None else _spread(batches, slots, min_spread,
                                                            max_batch_size))
    lone = [g[0].execution_id for g in groups if len(g) == 1]
    records = store.executions_by_id(lone)
    for group in groups:
        if len(group) == 1:
            record = records[group[0].execution_id]
            tick.dispatches.append(Dispatch(run_key=keys[record.execution_id],
                                            correlation=record.correlation()))
            continue
        batch = batches.claim_queued(group[0].environment, _ids(group), now)
        if batch is not None:
            tick.batches.append(batch_dispatch(batch))
    return tick


def _spread(batches: BatchRepository, slots: RunSlots, floor: int,
            max_size: int) -> Callable[[int], int]:
    busy: list[int] | None = None  # read once a tick, and only when a share is to be made

    def size(waiting: int) -> int:
        nonlocal busy
        if busy is None:
            # At most one batch per slot in use: those nearest done.
            busy = sorted(batches.unfinished(KIND_QUEUE))[:slots.in_use] if slots.in_use else []
        return spread_size(waiting, free=slots.free, floor=floor, max_size=max_size, busy=busy)

    return size


def _limited(queued: list[QueuedTrigger], limits: dict[str, int]) -> bool:
    """Whether a concurrency limit may hold back any of ``queued`` (else no grant is needed)."""
    return any(q.environment in limits or q.concurrency_key is not None for q in queued)


def _first(held: list[QueuedTrigger], page: list[QueuedTrigger]) -> list[QueuedTrigger]:
    ids = {q.execution_id for q in held}
    return [*held, *(q for q in page if q.execution_id not in ids)]


def _ids(group: list[QueuedTrigger]) -> list[str]:
    return [q.execution_id for q in group]

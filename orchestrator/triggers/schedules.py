"""One tick of the schedule dispatcher: **start before advance**.

For each due schedule (oldest ``next_run_at`` first):

1. its run key ``schedule:<id>:<next_run_at>`` is looked up in Dagster's run storage;
2. a submitted run means the occurrence has started: ``next_run_at`` advances by compare-and-set
   (a one-time schedule disables itself);
3. no run: the catch-up policy picks the occurrence to run, the execution row is written
   (insert-if-absent, ids derived from the run key) and a run is requested, and ``next_run_at``
   stays until a later tick sees the run;
4. a run that exists but was never submitted (the daemon died in between) is requested again;
   Dagster's run-key check submits the existing run rather than creating a second.

A crash anywhere repeats at most a request, which the run key absorbs; no write happens before
the run exists except the idempotent execution row, so no occurrence is lost.

Controls (``domain/schedules.py``): an occurrence with **jitter** waits, due, until its offset
has passed (the same offset on every evaluation); one whose schedule has an **overlap policy**
and an execution still queued or running is started, held (its execution written held, then
the schedule advances), skipped (the schedule advances, counted) or cancels the open ones first.
Each tick first releases held occurrences whose schedule has nothing else running into the
queue (``OccurrenceRepository.release_held``). Executions carry the schedule's **priority**.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.domain.correlation import Correlation, derived_id, schedule_run_key
from orchestrator.domain.cron import CronSchedule
from orchestrator.domain.records import ScheduleRecord
from orchestrator.domain.schedules import (
    OverlapPolicy,
    jitter_offset,
    plan_catch_up,
    plan_overlap,
)
from orchestrator.store import Store
from orchestrator.store.interfaces import KIND_SCHEDULE, Advance, BatchRepository
from orchestrator.triggers.dispatch import (
    BatchDispatch,
    Dispatch,
    RunLookup,
    RunState,
    Waiting,
    batch_dispatch,
    pack,
    redispatch_batches,
)
from orchestrator.triggers.waiting import wait_for_work

log = logging.getLogger(__name__)
MAX_PAGES_PER_TICK = 20
PAGE = 500


@dataclass(kw_only=True)
class ScheduleTick:
    dispatches: list[Dispatch] = field(default_factory=list)
    batches: list[BatchDispatch] = field(default_factory=list)
    advanced: int = 0
    skipped: int = 0
    lost_races: int = 0
    released: int = 0  # held occurrences moved into the queue
    held: int = 0  # occurrences held by an overlap policy
    waiting: int = 0  # due occurrences whose jitter has not passed yet
    queued: int = 0  # occurrences handed to the queue (their environment has a limit)

    @property
    def runs(self) -> int:
        return len(self.dispatches) + len(self.batches)


def _cron(schedule: ScheduleRecord) -> CronSchedule | None:
    if schedule.cron is None:
        return None
    return CronSchedule(expression=schedule.cron, timezone=schedule.timezone)


def dispatch_due_schedules(store: Store, *, now: datetime, limit: int, runs: RunLookup,
                           catchup_window: timedelta, max_batch_size: int = 1) -> ScheduleTick:
    """Run one tick; return the runs to request (at most ``limit``) and what was advanced.
    Occurrences due together in one environment share batch runs of up to ``max_batch_size``
    executions; a lone one gets a run of its own."""
    tick = ScheduleTick()
    tick.released = len(store.occurrences.release_held(now, limit))
    batches = store.batches
    confirmed, again = redispatch_batches(batches, KIND_SCHEDULE, now=now, limit=limit,
                                          runs=runs)
    tick.batches.extend(again)
    _advance_members(store, batches, confirmed, now, tick)
    new: list[Correlation] = []  # occurrences without an execution yet: may share runs
    priorities: dict[str, int] = {}  # of ``new``, by execution id
    budget = limit * max_batch_size if max_batch_size == 1 else MAX_PAGES_PER_TICK * PAGE
    after: tuple[datetime, str] | None = None
    seen: set[str] = set()  # a schedule moved forward this tick can reappear on a later page
    limited: set[str] | None = None  # environments with a concurrency limit
    for _ in range(MAX_PAGES_PER_TICK):
        if tick.runs >= limit or len(new) >= budget:
            break
        page = store.due_schedules(now, min(limit, PAGE) if max_batch_size == 1 else PAGE,
                                   after=after)
        if not page:
            break
        after = (_due(page[-1]), page[-1].id)
        page = [s for s in page if s.id not in seen]
        if limited is None:  # read once a tick, and only when something is due
            limited = set(store.concurrency.limits())
        seen.update(s.id for s in page)
        keys = {s.id: schedule_run_key(s.id, _due(s)) for s in page}
        existing = store.executions_by_id([derived_id("execution", k) for k in keys.values()])
        in_batch = {s.id: existing[derived_id("execution", keys[s.id])].run_batch_id
                    for s in page if existing.get(derived_id("execution", keys[s.id]))}
        dispatched = {b.batch_id: b.dispatched_at is not None
                      for b in batches.get([b for b in in_batch.values() if b]).values()}
        states = runs([keys[s.id] for s in page if not in_batch.get(s.id)])
        for schedule in page:
            if tick.runs >= limit or len(new) >= budget:
                break
            batch_id = in_batch.get(schedule.id)
            if batch_id:  # its batch run was requested: advance once Dagster has it
                if dispatched.get(batch_id):
                    _one(store, schedule, RunState.SUBMITTED, now, catchup_window, tick, new,
                         limited)
                continue
            batchable = max_batch_size > 1 and schedule.id not in in_batch
            _one(store, schedule, states.get(keys[schedule.id]), now, catchup_window, tick,
                 new if batchable else None, limited)
            priorities.update({c.execution_id: schedule.priority for c in new[-1:]
                               if c.trigger_id == schedule.id})
    _dispatch_new(store, batches, new, now=now, limit=limit, max_batch_size=max_batch_size,
                  tick=tick, priorities=priorities)
    return tick


def _due(schedule: ScheduleRecord) -> datetime:
    assert schedule.next_run_at is not None  # due schedules always have one
    return schedule.next_run_at


def _one(store: Store, schedule: ScheduleRecord, state: RunState | None, now: datetime,
         window: timedelta, tick: ScheduleTick, new: list[Correlation] | None,
         limited: set[str]) -> None:
    """One due schedule. ``new``: where an occurrence without an execution goes to be packed
    (None: dispatch it alone now). In an environment of ``limited`` (a concurrency limit) the
    occurrence goes to the queue instead, whose sensor starts it within the limit."""
    due = _due(schedule)
    cron = _cron(schedule)
    if state is RunState.SUBMITTED:
        following = cron.next_after(due) if cron else None
        if store.advance_schedule(schedule.id, expected=due, next_run_at=following, now=now,
                                  dispatched=due):
            tick.advanced += 1
        else:
            tick.lost_races += 1
        return
    occurrence = due
    if state is None:
        plan = plan_catch_up(cron=cron, due_at=due, now=now, window=window)
        if plan.next_run_at != due or plan.superseded or plan.outside_window:
            if not store.advance_schedule(schedule.id, expected=due, next_run_at=plan.next_run_at,
                                          now=now, superseded=plan.superseded,
                                          outside_window=plan.outside_window):
                tick.lost_races += 1
                return
            tick.skipped += plan.superseded + plan.outside_window
            log.info("schedule %s: skipped %d missed occurrence(s) (%d superseded, %d outside "
                     "the catch-up window)", schedule.id, plan.superseded + plan.outside_window,
                     plan.superseded, plan.outside_window)
        if plan.dispatch_at is None:
            return
        occurrence = plan.dispatch_at
        if now < occurrence + jitter_offset(schedule.id, occurrence, _jitter(schedule)):
            tick.waiting += 1  # its start offset has not passed: a later tick starts it
            return
    correlation = Correlation.for_schedule(
        schedule_id=schedule.id, scheduled_for=occurrence, workflow=schedule.workflow,
        environment=schedule.environment, payload=schedule.payload)
    if state is None and schedule.overlap != OverlapPolicy.ALLOW_ALL.value and \
            not _may_start(store, schedule, correlation, now, tick):
        return
    if state is None and schedule.environment in limited and _enqueue(
            store, schedule, correlation, now, tick):
        return
    if new is not None and state is None:
        new.append(correlation)
        return
    _dispatch_alone(store, correlation, now, tick, priority=schedule.priority)


def _enqueue(store: Store, schedule: ScheduleRecord, correlation: Correlation, now: datetime,
             tick: ScheduleTick) -> bool:
    """Hand the occurrence to the queue and advance the schedule past it (one transaction).
    False when its execution exists already: an earlier evaluation dispatched it (before the
    limit was set) and did not see its run, which is then requested as before."""
    assert correlation.scheduled_for is not None
    occurrence = correlation.scheduled_for
    cron = _cron(schedule)
    following = cron.next_after(occurrence) if cron else None
    if not store.occurrences.enqueue(correlation, now, Advance(
            schedule_id=schedule.id, expected=occurrence, next_run_at=following,
            dispatched=occurrence), priority=schedule.priority):
        return False
    tick.queued += 1
    tick.advanced += 1
    return True


def _jitter(schedule: ScheduleRecord) -> timedelta | None:
    return timedelta(seconds=schedule.jitter_seconds) if schedule.jitter_seconds else None


def _may_start(store: Store, schedule: ScheduleRecord, correlation: Correlation, now: datetime,
               tick: ScheduleTick) -> bool:
    """The overlap policy for one occurrence that has no run: True to start it now; otherwise
    it was held or skipped here and the schedule advanced past it."""
    assert correlation.scheduled_for is not None
    occurrence = correlation.scheduled_for
    own = store.executions_by_id([correlation.execution_id]).get(correlation.execution_id)
    if own is not None and own.held_at is None:
        return True  # started by an earlier evaluation that did not see its run: request it
    cron = _cron(schedule)
    following = cron.next_after(occurrence) if cron else None
    if own is not None:  # held by an earlier evaluation that did not advance
        return _advance_past(store, schedule, occurrence, following, now, tick)
    state = store.occurrences.overlap_state(schedule.id, exclude=correlation.execution_id)
    plan = plan_overlap(OverlapPolicy(schedule.overlap), 1, open_=len(state.open),
                        waiting=state.waiting)
    if plan.cancel_open:
        for execution_id in state.open:
            store.cancellation.cancel(execution_id, now)
    if plan.start:
        return True
    if plan.hold:
        store.occurrences.hold(correlation, now, priority=schedule.priority)
        tick.held += 1
        log.info("schedule %s: occurrence %s held (overlap %s)", schedule.id,
                 occurrence.isoformat(), schedule.overlap)
        return _advance_past(store, schedule, occurrence, following, now, tick, buffered=1)
    log.info("schedule %s: occurrence %s skipped (overlap %s: %d execution(s) open)",
             schedule.id, occurrence.isoformat(), schedule.overlap, len(state.open))
    tick.skipped += 1
    return _advance_past(store, schedule, occurrence, following, now, tick, skipped=1)


def _advance_past(store: Store, schedule: ScheduleRecord, occurrence: datetime,
                  following: datetime | None, now: datetime, tick: ScheduleTick, *,
                  buffered: int = 0, skipped: int = 0) -> bool:
    """The occurrence is handled (held or skipped): move ``next_run_at`` past it. Returns
    False (nothing to start)."""
    if store.advance_schedules([Advance(
            schedule_id=schedule.id, expected=occurrence, next_run_at=following,
            dispatched=occurrence if buffered else None, skipped_overlap=skipped,
            buffered_overlap=buffered)], now):
        tick.advanced += 1
    else:
        tick.lost_races += 1
    return False


def _dispatch_alone(store: Store, correlation: Correlation, now: datetime,
                    tick: ScheduleTick, *, priority: int = 0) -> None:
    assert correlation.trigger_id is not None and correlation.scheduled_for is not None
    record, _ = store.create_execution(correlation, now, priority=priority)
    tick.dispatches.append(Dispatch(
        run_key=schedule_run_key(correlation.trigger_id, correlation.scheduled_for),
        correlation=record.correlation()))


def _dispatch_new(store: Store, batches: BatchRepository, new: list[Correlation], *, now: datetime,
                  limit: int, max_batch_size: int, tick: ScheduleTick,
                  priorities: dict[str, int]) -> None:
    """Pack the new occurrences: several of one environment share a batch run (its executions
    written with the batch, in one transaction), a lone one is dispatched alone. Occurrences
    beyond ``limit`` runs wait, unwritten, for the next tick."""
    batchable = batches.batchable([(c.environment, c.workflow) for c in new])
    groups = pack([Waiting(item=c, environment=c.environment,
                           batchable=batchable[(c.environment, c.workflow)]) for c in new],
                  max_size=max_batch_size, max_runs=max(0, limit - tick.runs))
    for group in groups:
        if len(group) == 1:
            _dispatch_alone(store, group[0], now, tick,
                            priority=priorities.get(group[0].execution_id, 0))
            continue
        batch = batches.create_scheduled(group[0].environment, group, now,
                                         priorities=priorities)
        if batch is not None:
            tick.batches.append(batch_dispatch(batch))


def _advance_members(store: Store, batches: BatchRepository, batch_ids: list[str], now: datetime,
                     tick: ScheduleTick) -> None:
    """The batch runs exist: advance each member's schedule past its occurrence (start before
    advance, as for a run of its own)."""
    members = [m for b in batch_ids for m in batches.members(b)
               if m.trigger_id and m.scheduled_for]
    schedules = store.schedules_by_id(sorted({m.trigger_id for m in members if m.trigger_id}))
    advances = []
    for m in members:
        schedule = schedules.get(m.trigger_id or "")
        if schedule is None or m.scheduled_for is None:
            continue
        cron = _cron(schedule)
        advances.append(Advance(schedule_id=schedule.id, expected=m.scheduled_for,
                                next_run_at=cron.next_after(m.scheduled_for) if cron else None,
                                dispatched=m.scheduled_for))
    done = store.advance_schedules(advances, now) if advances else 0
    tick.advanced += done


def wait_until_due(store: Store, *, now: datetime, lookahead: timedelta,
                   clock: Callable[[], datetime],
                   sleep: Callable[[float], None] = time.sleep) -> datetime:
    """Look-ahead for precision: when nothing is due at ``now`` but a schedule falls due within
    ``lookahead``, sleep until that instant and return the clock read after waking; otherwise
    return ``now`` at once (:func:`~orchestrator.triggers.waiting.wait_for_work`).

    A tick that lands just before a due instant waits for it and dispatches on time instead of
    leaving it to the next evaluation. Runs are still only requested once due
    (``next_run_at <= now``): start-before-advance is unchanged.
    """
    return wait_for_work(lambda _t: store.next_due_at(), now=now, wait=lookahead, clock=clock,
                         sleep=sleep)

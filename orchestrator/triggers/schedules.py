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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.domain.correlation import Correlation, schedule_run_key
from orchestrator.domain.cron import CronSchedule
from orchestrator.domain.records import ScheduleRecord
from orchestrator.domain.schedules import plan_catch_up
from orchestrator.store import Store
from orchestrator.triggers.dispatch import Dispatch, RunLookup, RunState, correlation_of

log = logging.getLogger(__name__)
MAX_PAGES_PER_TICK = 20


@dataclass(kw_only=True)
class ScheduleTick:
    dispatches: list[Dispatch] = field(default_factory=list)
    advanced: int = 0
    skipped: int = 0
    lost_races: int = 0


def _cron(schedule: ScheduleRecord) -> CronSchedule | None:
    if schedule.cron is None:
        return None
    return CronSchedule(expression=schedule.cron, timezone=schedule.timezone)


def dispatch_due_schedules(store: Store, *, now: datetime, limit: int, runs: RunLookup,
                           catchup_window: timedelta) -> ScheduleTick:
    """Run one tick; return the runs to request (at most ``limit``) and what was advanced."""
    tick = ScheduleTick()
    after: tuple[datetime, str] | None = None
    seen: set[str] = set()  # a schedule moved forward this tick can reappear on a later page
    for _ in range(MAX_PAGES_PER_TICK):
        if len(tick.dispatches) >= limit:
            break
        page = store.due_schedules(now, limit, after=after)
        if not page:
            break
        after = (_due(page[-1]), page[-1].id)
        page = [s for s in page if s.id not in seen]
        seen.update(s.id for s in page)
        keys = {s.id: schedule_run_key(s.id, _due(s)) for s in page}
        states = runs(list(keys.values()))
        for schedule in page:
            if len(tick.dispatches) >= limit:
                break
            _one(store, schedule, states.get(keys[schedule.id]), now, catchup_window, tick)
    return tick


def _due(schedule: ScheduleRecord) -> datetime:
    assert schedule.next_run_at is not None  # due schedules always have one
    return schedule.next_run_at


def _one(store: Store, schedule: ScheduleRecord, state: RunState | None, now: datetime,
         window: timedelta, tick: ScheduleTick) -> None:
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
    correlation = Correlation.for_schedule(
        schedule_id=schedule.id, scheduled_for=occurrence, workflow=schedule.workflow,
        environment=schedule.environment, payload=schedule.payload)
    record, _ = store.create_execution(correlation, now)
    tick.dispatches.append(Dispatch(run_key=schedule_run_key(schedule.id, occurrence),
                                    correlation=correlation_of(record)))


def wait_until_due(store: Store, *, now: datetime, lookahead: timedelta,
                   clock: Callable[[], datetime],
                   sleep: Callable[[float], None] = time.sleep) -> datetime:
    """Look-ahead for precision: when nothing is due at ``now`` but a schedule falls due within
    ``lookahead``, sleep until that instant and return the clock read after waking; otherwise
    return ``now`` at once.

    Dagster's sensor daemon evaluates sensors on a fixed loop (every 5 s), so without this a
    due schedule waits up to one loop for the next evaluation. A tick that lands just before a
    due instant waits for it instead and dispatches on time. Runs are still only requested once
    due (``next_run_at <= now``): start-before-advance is unchanged. Nothing is waited for when
    something is already due, so a backlog is never delayed.
    """
    if lookahead <= timedelta(0):
        return now
    due = store.next_due_at()
    if due is None or due <= now or due - now > lookahead:
        return now
    sleep((due - now).total_seconds())
    later = clock()
    return later if later >= due else due

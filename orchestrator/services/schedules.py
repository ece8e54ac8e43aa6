"""Schedules as the CLI and the API use them: create (or upsert by key), list, show, pause,
resume, delete, trigger once now and backfill a range, each rule written once; and the schedule
view (the record with its next fire times, ``upcoming``), computed here for both.

Validation of a new schedule is the domain's :func:`~orchestrator.domain.schedules.
validate_schedule`; a service method takes its :class:`~orchestrator.domain.schedules.
ScheduleSpec`. An ``environment`` given to a method scopes it: a schedule of another environment
is :class:`~orchestrator.exceptions.NotFound` (an API key sees its own environment only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.domain.correlation import Correlation, Source, iso_utc, new_id
from orchestrator.domain.records import BackfillRecord, ExecutionRecord, ScheduleRecord
from orchestrator.domain.schedules import ScheduleSpec, upcoming
from orchestrator.exceptions import InvalidInput, NotFound, Problem

if TYPE_CHECKING:  # only the protocols: the CLI imports this module before any store
    from orchestrator.store import Store
    from orchestrator.store.interfaces import (
        CancellationRepository,
        ExecutionRepository,
        OccurrenceRepository,
        ScheduleRepository,
        WorkflowRepository,
    )


@dataclass(frozen=True, kw_only=True)
class ScheduleView:
    """A schedule as ``schedules show`` and ``GET /v1/schedules/{id}`` show it: the record
    (``next_run_at``, the skip counters) and ``upcoming``, whose first entry is the next
    occurrence that will run. ``created`` is set by :meth:`ScheduleService.create` only."""

    schedule: ScheduleRecord
    upcoming: list[datetime]
    created: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self.schedule.to_dict()
        data["upcoming"] = [iso_utc(u) for u in self.upcoming]
        jitter = self.schedule.jitter_seconds
        data["upcoming_jitter"] = (f"nominal times: each occurrence starts at a fixed offset "
                                   f"under {jitter:g}s after its time (jitter)"
                                   if jitter else None)
        if self.created is not None:
            data["created"] = self.created
        return data


def schedule_view(schedule: ScheduleRecord, now: datetime) -> ScheduleView:
    """The view of ``schedule`` at ``now``."""
    return ScheduleView(schedule=schedule, upcoming=upcoming(schedule, now))


class ScheduleService:
    """The schedule rules on a store's repositories."""

    def __init__(self, workflows: WorkflowRepository, schedules: ScheduleRepository,
                 executions: ExecutionRepository, occurrences: OccurrenceRepository,
                 cancellation: CancellationRepository) -> None:
        self.workflows = workflows
        self.schedules = schedules
        self.executions = executions
        self.occurrences = occurrences
        self.cancellation = cancellation

    @classmethod
    def on(cls, store: Store) -> ScheduleService:
        """The service on ``store``'s repositories."""
        return cls(store.workflows, store.schedules, store.executions, store.occurrences,
                   store.cancellation)

    def create(self, spec: ScheduleSpec, now: datetime) -> ScheduleView:
        """Create ``spec`` (its workflow must exist), or upsert the schedule with its key."""
        record, created = self.schedules.create_schedule(spec, now)
        return ScheduleView(schedule=record, upcoming=upcoming(record, now), created=created)

    def get(self, schedule_id: str, *, environment: str | None = None) -> ScheduleRecord:
        schedule = self.schedules.get_schedule(schedule_id)
        if environment is not None and schedule.environment != environment:
            raise NotFound("schedule", schedule_id)
        return schedule

    def show(self, schedule_id: str, now: datetime, *,
             environment: str | None = None) -> ScheduleView:
        return schedule_view(self.get(schedule_id, environment=environment), now)

    def records(self, environment: str | None = None,
                workflow: str | None = None) -> list[ScheduleRecord]:
        """Oldest first, of every environment unless one is given (without ``upcoming``: a
        long listing does not pay for cron iteration)."""
        return self.schedules.list_schedules(environment, workflow)

    def listing(self, environment: str | None, workflow: str | None,
                now: datetime) -> list[ScheduleView]:
        """:meth:`records` as views."""
        return [schedule_view(s, now) for s in self.records(environment, workflow)]

    def pause(self, schedule_id: str, now: datetime, *,
              environment: str | None = None) -> ScheduleView:
        """Stop it from firing (``next_run_at`` cleared)."""
        self.get(schedule_id, environment=environment)
        return schedule_view(self.schedules.pause_schedule(schedule_id, now), now)

    def resume(self, schedule_id: str, now: datetime, *,
               environment: str | None = None) -> ScheduleView:
        """Fire again from ``now`` on: occurrences missed while paused are not replayed. Its
        workflow must still exist; a one-time schedule whose instant has passed cannot
        resume."""
        schedule = self.get(schedule_id, environment=environment)
        self.workflows.get_workflow(schedule.environment, schedule.workflow)  # else NotFound
        if schedule.run_at is not None and schedule.cron is None and schedule.run_at <= now:
            raise InvalidInput(Problem(field="run_at", message="this one-time schedule's "
                                       "instant has passed; create a new schedule"))
        timing = ScheduleSpec(workflow=schedule.workflow, cron=schedule.cron,
                              timezone=schedule.timezone, run_at=schedule.run_at, payload={})
        resumed = self.schedules.resume_schedule(schedule_id, timing.first_run_at(now), now)
        return schedule_view(resumed, now)

    def delete(self, schedule_id: str, *, environment: str | None = None) -> None:
        """Delete it; its executions stay in the log."""
        self.get(schedule_id, environment=environment)
        self.schedules.delete_schedule(schedule_id)

    def trigger(self, schedule_id: str, now: datetime, *,
                environment: str | None = None) -> ExecutionRecord:
        """Queue one execution of its workflow now, with its payload (``source=manual``)."""
        schedule = self.get(schedule_id, environment=environment)
        self.workflows.get_workflow(schedule.environment, schedule.workflow)
        correlation = Correlation(execution_id=new_id(), request_id=new_id(),
                                  source=Source.MANUAL, workflow=schedule.workflow,
                                  environment=schedule.environment, trigger_id=schedule.id,
                                  payload=schedule.payload)
        record, _ = self.executions.create_execution(correlation, now, enqueue=True,
                                                     priority=schedule.priority)
        return record

    def backfill(self, schedule_id: str, now: datetime, *, start: Any, end: Any,
                 overlap: Any = None, environment: str | None = None) -> BackfillRecord:
        """One execution (``source=backfill``) per occurrence in ``[start, end]`` that has none
        yet (:func:`~orchestrator.domain.backfills.validate_backfill`), through the queue; with
        ``cancel_other``, the schedule's open executions are cancelled (the kept occurrence
        starts after they end)."""
        from orchestrator.domain.backfills import validate_backfill  # croniter: when used

        schedule = self.get(schedule_id, environment=environment)
        spec = validate_backfill(schedule, start=start, end=end, overlap=overlap, now=now)
        self.workflows.get_workflow(schedule.environment, schedule.workflow)  # else NotFound
        record, cancel = self.occurrences.create_backfill(schedule, spec, now)
        for execution_id in cancel:
            self.cancellation.cancel(execution_id, now)
        return record

    def backfills(self, schedule_id: str, *, environment: str | None = None,
                  limit: int = 50) -> list[BackfillRecord]:
        """The schedule's backfills, newest first, each with its executions by status."""
        self.get(schedule_id, environment=environment)
        return self.occurrences.list_backfills(schedule_id, limit)

    def get_backfill(self, schedule_id: str, backfill_id: str, *,
                     environment: str | None = None) -> BackfillRecord:
        """One backfill of the schedule (of another schedule, or unknown: NotFound)."""
        self.get(schedule_id, environment=environment)
        record = self.occurrences.get_backfill(backfill_id)
        if record.schedule_id != schedule_id:
            raise NotFound("backfill", backfill_id)
        return record

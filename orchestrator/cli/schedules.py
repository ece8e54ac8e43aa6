"""``orchestrator schedules ...``: create (with overlap, jitter and priority), list, show, pause,
resume, delete, trigger, backfill and backfills, on :class:`~orchestrator.services.schedules.
ScheduleService` (the API's rules and validation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli.common import env_option, open_store, parse_payload, utc_now
from orchestrator.cli.output import emit, json_option
from orchestrator.exceptions import InvalidInput, Problem

if TYPE_CHECKING:
    from orchestrator.services.schedules import ScheduleService

@click.group()
def schedules() -> None:
    """Cron (with an IANA timezone) and one-time schedules."""


def _service() -> ScheduleService:
    from orchestrator.services.schedules import ScheduleService

    return ScheduleService.on(open_store())


SCHEDULE_COLUMNS = ["id", "environment", "workflow", "cron", "timezone", "run_at", "enabled",
                    "next_run_at", "overlap", "key"]
OVERLAP_CHOICES = ("skip", "buffer_one", "buffer_all", "cancel_other", "allow_all")


@schedules.command("create")
@click.option("--workflow", "-w", required=True, help="Workflow name.")
@click.option("--cron", default=None, help="5-field cron expression, e.g. '*/5 * * * *'.")
@click.option("--timezone", "--tz", "timezone", default="UTC", show_default=True,
              help="IANA timezone the cron expression is read in.")
@click.option("--at", "run_at", default=None, help="One time, ISO-8601 with offset.")
@click.option("--payload", default=None, help="JSON object passed as trigger.payload.")
@click.option("--key", default=None, help="Your key: creating again with it updates instead.")
@click.option("--overlap", type=click.Choice(OVERLAP_CHOICES), default="allow_all",
              show_default=True, help="While an execution of the schedule is queued or running: "
              "skip the occurrence, hold one (buffer_one) or all (buffer_all) to start after "
              "it, cancel it (cancel_other), or start anyway (allow_all).")
@click.option("--jitter", default=None, help="Start each occurrence at a deterministic offset "
              "below this (e.g. 30s; at most 1h, less than the cron's shortest interval).")
@click.option("--priority", type=click.IntRange(-10, 10), default=0, show_default=True,
              help="Its executions' priority (higher starts first within the environment).")
@env_option
@json_option
def schedules_create(workflow: str, cron: str | None, timezone: str, run_at: str | None,
                     payload: str | None, key: str | None, overlap: str, jitter: str | None,
                     priority: int, environment: str, as_json: bool) -> None:
    """Create a schedule (or update the one with --key)."""
    from orchestrator.domain.schedules import validate_schedule

    now = utc_now()
    problems: list[Problem] = []
    body: dict[str, Any] = {}
    try:
        body = parse_payload(payload)
    except InvalidInput as exc:
        problems += exc.problems
    try:
        spec = validate_schedule(workflow=workflow, environment=environment, cron=cron,
                                 timezone=timezone, run_at=run_at, payload=body, key=key,
                                 overlap=overlap, jitter=jitter, priority=priority, now=now)
    except InvalidInput as exc:
        problems += exc.problems
    if problems:
        raise InvalidInput(problems, subject="schedule")
    emit(_service().create(spec, now).to_dict(), as_json=as_json)


@schedules.command("list")
@click.option("--environment", "-e", default=None, help="Only this environment.")
@click.option("--workflow", "-w", default=None, help="Only this workflow.")
@json_option
def schedules_list(environment: str | None, workflow: str | None, as_json: bool) -> None:
    """List schedules."""
    rows = [s.to_dict() for s in _service().records(environment, workflow)]
    emit(rows, as_json=as_json, columns=SCHEDULE_COLUMNS)


@schedules.command("show")
@click.argument("schedule_id")
@json_option
def schedules_show(schedule_id: str, as_json: bool) -> None:
    """Show a schedule with its next five fire times (``upcoming``)."""
    emit(_service().show(schedule_id, utc_now()).to_dict(), as_json=as_json)


@schedules.command("pause")
@click.argument("schedule_id")
@json_option
def schedules_pause(schedule_id: str, as_json: bool) -> None:
    """Stop a schedule from firing."""
    emit(_service().pause(schedule_id, utc_now()).to_dict(), as_json=as_json)


@schedules.command("resume")
@click.argument("schedule_id")
@json_option
def schedules_resume(schedule_id: str, as_json: bool) -> None:
    """Resume a paused schedule from now on (missed occurrences are not replayed)."""
    emit(_service().resume(schedule_id, utc_now()).to_dict(), as_json=as_json)


@schedules.command("delete")
@click.argument("schedule_id")
def schedules_delete(schedule_id: str) -> None:
    """Delete a schedule (its executions stay in the log)."""
    _service().delete(schedule_id)
    click.echo(f"deleted schedule {schedule_id}")


@schedules.command("trigger")
@click.argument("schedule_id")
@json_option
def schedules_trigger(schedule_id: str, as_json: bool) -> None:
    """Queue one execution of the schedule's workflow now, with its payload."""
    record = _service().trigger(schedule_id, utc_now())
    emit({"execution_id": record.execution_id, "request_id": record.request_id,
          "status": record.status.value}, as_json=as_json)


BACKFILL_COLUMNS = ["id", "created_at", "start", "end", "overlap", "occurrences", "created",
                    "existing", "skipped", "statuses"]


def _as_options(exc: InvalidInput) -> InvalidInput:
    """The domain's field names as this command's options."""
    names = {"start": "--start", "end": "--end", "overlap": "--overlap", "schedule_id": "ID"}
    return InvalidInput([Problem(field=names.get(p.field, p.field), message=p.message)
                         for p in exc.problems], subject=exc.subject)


@schedules.command("backfill")
@click.argument("schedule_id")
@click.option("--start", required=True, help="First instant covered (ISO-8601 with offset).")
@click.option("--end", required=True, help="Last instant covered (ISO-8601 with offset, not "
              "in the future).")
@click.option("--overlap", type=click.Choice(OVERLAP_CHOICES), default=None,
              help="The backfill's own overlap policy (default: the schedule's).")
@json_option
def schedules_backfill(schedule_id: str, start: str, end: str, overlap: str | None,
                       as_json: bool) -> None:
    """Queue one execution (source backfill) per occurrence in [start, end] that has none yet
    (at most 10,000); repeating it creates nothing new."""
    try:
        record = _service().backfill(schedule_id, utc_now(), start=start, end=end,
                                       overlap=overlap)
    except InvalidInput as exc:
        raise _as_options(exc) from None
    emit(record.to_dict(), as_json=as_json)


@schedules.command("backfills")
@click.argument("schedule_id")
@json_option
def schedules_backfills(schedule_id: str, as_json: bool) -> None:
    """The schedule's backfills, newest first, with their executions counted by status."""
    rows = [b.to_dict() for b in _service().backfills(schedule_id)]
    emit(rows, as_json=as_json, columns=BACKFILL_COLUMNS)

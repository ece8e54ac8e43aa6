"""``/v1/schedules``: create (or upsert by key), list, show, pause, resume, delete; the same
validation as ``orchestrator schedules create`` (:func:`validate_schedule`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator.api.http import parse_json, read_body
from orchestrator.api.models import ScheduleBody, parse
from orchestrator.domain.correlation import iso_utc
from orchestrator.domain.cron import CronSchedule
from orchestrator.domain.records import ScheduleRecord
from orchestrator.domain.schedules import upcoming, validate_schedule
from orchestrator.exceptions import InvalidInput, NotFound, Problem

if TYPE_CHECKING:
    from orchestrator.api.app import Api


def schedule_view(schedule: ScheduleRecord, now: datetime) -> dict[str, Any]:
    data = schedule.to_dict()
    data["upcoming"] = [iso_utc(u) for u in upcoming(schedule, now)]
    return data


def _own(api: Api, schedule_id: str, environment: str) -> ScheduleRecord:
    schedule = api.store.get_schedule(schedule_id)
    if schedule.environment != environment:
        raise NotFound("schedule", schedule_id)
    return schedule


async def create_schedule(api: Api, request: Request) -> Response:
    """
    summary: Create a schedule (or update the one with the same key)
    requestBody:
      content: {application/json: {schema: {$ref: '#/components/schemas/ScheduleBody'}}}
    responses:
      201: {description: created}
      200: {description: updated (same key)}
      422: {description: "invalid cron, timezone, run_at in the past, ... (field named)"}
    """
    environment = await api.environment(request)
    body = parse(ScheduleBody, parse_json(await read_body(request)))
    now = api.clock()
    spec = validate_schedule(workflow=body.workflow, environment=environment, cron=body.cron,
                             timezone=body.timezone, run_at=body.run_at, payload=body.payload,
                             key=body.key, now=now)
    record, created = await run_in_threadpool(api.store.create_schedule, spec, now)
    return JSONResponse(schedule_view(record, now) | {"created": created},
                        status_code=201 if created else 200)


async def list_schedules(api: Api, request: Request) -> Response:
    """
    summary: Schedules of the key's environment
    parameters:
      - {name: workflow, in: query, schema: {type: string}}
    responses:
      200: {description: "{schedules: [...]}"}
    """
    environment = await api.environment(request)
    records = await run_in_threadpool(api.store.list_schedules, environment,
                                      request.query_params.get("workflow"))
    now = api.clock()
    return JSONResponse({"schedules": [schedule_view(s, now) for s in records]})


async def get_schedule(api: Api, request: Request) -> Response:
    """
    summary: One schedule with its next five fire times (upcoming)
    responses:
      200: {description: the schedule}
      404: {description: no such schedule in the key's environment}
    """
    environment = await api.environment(request)
    record = await run_in_threadpool(_own, api, request.path_params["schedule_id"], environment)
    return JSONResponse(schedule_view(record, api.clock()))


async def delete_schedule(api: Api, request: Request) -> Response:
    """
    summary: Delete a schedule (its executions stay in the log)
    responses:
      204: {description: deleted}
    """
    environment = await api.environment(request)
    schedule_id = request.path_params["schedule_id"]

    def delete() -> None:
        _own(api, schedule_id, environment)
        api.store.delete_schedule(schedule_id)

    await run_in_threadpool(delete)
    return Response(status_code=204)


async def pause_schedule(api: Api, request: Request) -> Response:
    """
    summary: Pause a schedule
    responses:
      200: {description: the paused schedule}
    """
    environment = await api.environment(request)
    schedule_id, now = request.path_params["schedule_id"], api.clock()

    def pause() -> ScheduleRecord:
        _own(api, schedule_id, environment)
        return api.store.pause_schedule(schedule_id, now)

    return JSONResponse(schedule_view(await run_in_threadpool(pause), now))


async def resume_schedule(api: Api, request: Request) -> Response:
    """
    summary: Resume a schedule from now on (missed occurrences are not replayed)
    responses:
      200: {description: the resumed schedule}
      422: {description: a one-time schedule whose instant has passed}
    """
    environment = await api.environment(request)
    schedule_id, now = request.path_params["schedule_id"], api.clock()

    def resume() -> ScheduleRecord:
        schedule = _own(api, schedule_id, environment)
        api.store.get_workflow(schedule.environment, schedule.workflow)
        if schedule.cron is None and schedule.run_at is not None and schedule.run_at <= now:
            raise InvalidInput(Problem(field="run_at", message="this one-time schedule's "
                                       "instant has passed; create a new schedule"))
        nxt = (CronSchedule(expression=schedule.cron, timezone=schedule.timezone)
               .next_after(now) if schedule.cron else schedule.run_at)
        assert nxt is not None
        return api.store.resume_schedule(schedule_id, nxt, now)

    return JSONResponse(schedule_view(await run_in_threadpool(resume), now))


Handler = Callable[["Api", Request], Awaitable[Response]]
ROUTES: list[tuple[str, str, Handler, list[str]]] = [
    ("/v1/schedules", "schedules", list_schedules, ["GET"]),
    ("/v1/schedules", "schedule_create", create_schedule, ["POST"]),
    ("/v1/schedules/{schedule_id}", "schedule", get_schedule, ["GET"]),
    ("/v1/schedules/{schedule_id}", "schedule_delete", delete_schedule, ["DELETE"]),
    ("/v1/schedules/{schedule_id}/pause", "schedule_pause", pause_schedule, ["POST"]),
    ("/v1/schedules/{schedule_id}/resume", "schedule_resume", resume_schedule, ["POST"]),
]

"""``/v1/schedules``: create (or upsert by key), list, show, pause, resume, delete; the same
validation as ``orchestrator schedules create`` (:func:`validate_schedule`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator.api.http import parse_json, read_body
from orchestrator.api.models import ScheduleBody, parse
from orchestrator.domain.schedules import validate_schedule

if TYPE_CHECKING:
    from orchestrator.api.app import Api


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
    view = await run_in_threadpool(api.schedules.create, spec, now)
    return JSONResponse(view.to_dict(), status_code=201 if view.created else 200)


async def list_schedules(api: Api, request: Request) -> Response:
    """
    summary: Schedules of the key's environment
    parameters:
      - {name: workflow, in: query, schema: {type: string}}
    responses:
      200: {description: "{schedules: [...]}"}
    """
    environment = await api.environment(request)
    views = await run_in_threadpool(api.schedules.listing, environment,
                                    request.query_params.get("workflow"), api.clock())
    return JSONResponse({"schedules": [v.to_dict() for v in views]})


async def get_schedule(api: Api, request: Request) -> Response:
    """
    summary: One schedule with its next five fire times (upcoming)
    responses:
      200: {description: the schedule}
      404: {description: no such schedule in the key's environment}
    """
    environment = await api.environment(request)
    view = await run_in_threadpool(api.schedules.show, request.path_params["schedule_id"],
                                   api.clock(), environment=environment)
    return JSONResponse(view.to_dict())


async def delete_schedule(api: Api, request: Request) -> Response:
    """
    summary: Delete a schedule (its executions stay in the log)
    responses:
      204: {description: deleted}
    """
    environment = await api.environment(request)
    await run_in_threadpool(api.schedules.delete, request.path_params["schedule_id"],
                            environment=environment)
    return Response(status_code=204)


async def pause_schedule(api: Api, request: Request) -> Response:
    """
    summary: Pause a schedule
    responses:
      200: {description: the paused schedule}
    """
    environment = await api.environment(request)
    view = await run_in_threadpool(api.schedules.pause, request.path_params["schedule_id"],
                                   api.clock(), environment=environment)
    return JSONResponse(view.to_dict())


async def resume_schedule(api: Api, request: Request) -> Response:
    """
    summary: Resume a schedule from now on (missed occurrences are not replayed)
    responses:
      200: {description: the resumed schedule}
      422: {description: a one-time schedule whose instant has passed}
    """
    environment = await api.environment(request)
    view = await run_in_threadpool(api.schedules.resume, request.path_params["schedule_id"],
                                   api.clock(), environment=environment)
    return JSONResponse(view.to_dict())


Handler = Callable[["Api", Request], Awaitable[Response]]
ROUTES: list[tuple[str, str, Handler, list[str]]] = [
    ("/v1/schedules", "schedules", list_schedules, ["GET"]),
    ("/v1/schedules", "schedule_create", create_schedule, ["POST"]),
    ("/v1/schedules/{schedule_id}", "schedule", get_schedule, ["GET"]),
    ("/v1/schedules/{schedule_id}", "schedule_delete", delete_schedule, ["DELETE"]),
    ("/v1/schedules/{schedule_id}/pause", "schedule_pause", pause_schedule, ["POST"]),
    ("/v1/schedules/{schedule_id}/resume", "schedule_resume", resume_schedule, ["POST"]),
]

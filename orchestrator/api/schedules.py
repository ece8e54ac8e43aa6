"""Schedule handlers under ``/v1/schedules``: create (or upsert by key), list, show, pause,
resume, delete and backfill, scoped to the key's environment. The rules are
:class:`~orchestrator.services.schedules.ScheduleService`'s, the validation
:func:`~orchestrator.domain.schedules.validate_schedule`'s: the same as the CLI's."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from orchestrator.api.context import Api
from orchestrator.api.models import BackfillBody, ScheduleBody, ScheduleQuery
from orchestrator.api.operations import Call
from orchestrator.domain.schedules import validate_schedule


async def create_schedule(api: Api, call: Call) -> Response:
    body: ScheduleBody = call.body
    now = api.clock()
    spec = validate_schedule(workflow=body.workflow, environment=call.environment,
                             cron=body.cron, timezone=body.timezone, run_at=body.run_at,
                             payload=body.payload, key=body.key, overlap=body.overlap,
                             jitter=body.jitter, priority=body.priority, now=now)
    view = await run_in_threadpool(api.schedules.create, spec, now)
    return JSONResponse(view.to_dict(), status_code=201 if view.created else 200)


async def list_schedules(api: Api, call: Call) -> Response:
    query: ScheduleQuery = call.query
    views = await run_in_threadpool(api.schedules.listing, call.environment, query.workflow,
                                    api.clock())
    return JSONResponse({"schedules": [v.to_dict() for v in views]})


async def get_schedule(api: Api, call: Call) -> Response:
    view = await run_in_threadpool(api.schedules.show, call.path["schedule_id"], api.clock(),
                                   environment=call.environment)
    return JSONResponse(view.to_dict())


async def delete_schedule(api: Api, call: Call) -> Response:
    await run_in_threadpool(api.schedules.delete, call.path["schedule_id"],
                            environment=call.environment)
    return Response(status_code=204)


async def pause_schedule(api: Api, call: Call) -> Response:
    view = await run_in_threadpool(api.schedules.pause, call.path["schedule_id"], api.clock(),
                                   environment=call.environment)
    return JSONResponse(view.to_dict())


async def resume_schedule(api: Api, call: Call) -> Response:
    view = await run_in_threadpool(api.schedules.resume, call.path["schedule_id"], api.clock(),
                                   environment=call.environment)
    return JSONResponse(view.to_dict())


async def backfill_schedule(api: Api, call: Call) -> Response:
    body: BackfillBody = call.body
    record = await run_in_threadpool(lambda: api.schedules.backfill(
        call.path["schedule_id"], api.clock(), start=body.start, end=body.end,
        overlap=body.overlap, environment=call.environment))
    return JSONResponse(record.to_dict(), status_code=202)


async def list_backfills(api: Api, call: Call) -> Response:
    records = await run_in_threadpool(lambda: api.schedules.backfills(
        call.path["schedule_id"], environment=call.environment))
    return JSONResponse({"backfills": [r.to_dict() for r in records]})


async def get_backfill(api: Api, call: Call) -> Response:
    record = await run_in_threadpool(lambda: api.schedules.get_backfill(
        call.path["schedule_id"], call.path["backfill_id"], environment=call.environment))
    return JSONResponse(record.to_dict())

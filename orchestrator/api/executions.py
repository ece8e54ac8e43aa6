"""Execution handlers: ``GET /v1/executions``, ``GET /v1/executions/{execution_id}`` (the key's
environment, buffered executions included, as ``queued``), ``POST …/cancel`` and
``POST …/replay`` (a new execution through the trigger path, 202)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from orchestrator.api.context import Api
from orchestrator.api.models import ExecutionQuery, ReplayBody
from orchestrator.api.operations import Call
from orchestrator.api.views import execution_view, list_views
from orchestrator.domain.correlation import Source


async def get_execution(api: Api, call: Call) -> Response:
    found = await run_in_threadpool(api.executions.find, call.path["execution_id"],
                                    call.environment)
    return JSONResponse(execution_view(found))


async def list_executions(api: Api, call: Call) -> Response:
    query: ExecutionQuery = call.query
    found = await run_in_threadpool(
        lambda: api.executions.visible(call.environment, workflow=query.workflow,
                                       status=query.status, limit=query.limit))
    return JSONResponse({"executions": list_views(found)})


async def cancel_execution(api: Api, call: Call) -> Response:
    execution_id = call.path["execution_id"]
    await run_in_threadpool(api.executions.cancel, execution_id, api.clock(), call.environment)
    found = await run_in_threadpool(api.executions.find, execution_id, call.environment)
    return JSONResponse(execution_view(found))


async def replay_execution(api: Api, call: Call) -> Response:
    body: ReplayBody = call.body
    replay = await run_in_threadpool(api.executions.replay, call.path["execution_id"],
                                     environment=call.environment, payload=body.payload,
                                     same_version=body.same_version)
    [admission] = await api.admit(api.triggers.prepare(
        environment=replay.environment, workflow=replay.workflow, items=[replay.item],
        request_id=call.request_id, source=Source.REPLAY, now=api.clock()))
    api.count(call.environment, Source.REPLAY, [admission])
    return JSONResponse({**admission.body(), "replayed_from": call.path["execution_id"]},
                        status_code=202, headers={"X-Request-Id": admission.request_id})

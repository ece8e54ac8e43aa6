"""Trigger handlers: ``POST /v1/workflows/{name}/trigger`` (and ``trigger-batch``) and signed
webhook deliveries. Each prepares a job for
:class:`~orchestrator.services.triggers.IngestService` and hands it to the writer thread
(:meth:`Api.admit <orchestrator.api.context.Api.admit>`), which admits it with whatever other
requests are waiting, in one transaction."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from orchestrator.api.context import Api
from orchestrator.api.errors import ApiError
from orchestrator.api.http import parse_json, read_body, request_id_of
from orchestrator.api.models import BatchBody, TriggerBody
from orchestrator.api.operations import Call
from orchestrator.domain.correlation import Source
from orchestrator.domain.signatures import verify_delivery
from orchestrator.services.triggers import TriggerInput


async def trigger(api: Api, call: Call) -> Response:
    body: TriggerBody = call.body
    [admission] = await api.admit(api.triggers.prepare(
        environment=call.environment, workflow=call.path["name"], items=[body.to_input()],
        request_id=call.request_id, source=Source.API, now=api.clock()))
    api.count(call.environment, Source.API, [admission])
    return JSONResponse(admission.body(), status_code=202,
                        headers={"X-Request-Id": admission.request_id})


async def trigger_batch(api: Api, call: Call) -> Response:
    body: BatchBody = call.body
    admissions = await api.admit(api.triggers.prepare(
        environment=call.environment, workflow=call.path["name"],
        items=[item.to_input() for item in body.items], request_id=call.request_id,
        source=Source.API, now=api.clock(), batch_key=body.idempotency_key, batched=True))
    api.count(call.environment, Source.API, admissions)
    return JSONResponse({"items": [a.body() for a in admissions]}, status_code=202)


async def webhook(api: Api, call: Call) -> Response:
    request = call.request
    hook = await run_in_threadpool(api.access.get_webhook, call.path["webhook_id"])
    body = await read_body(request)
    now = api.clock()
    delivery = verify_delivery(hook.secrets(now), request.headers, body, now)
    if isinstance(delivery, str):
        raise ApiError(401, "invalid_signature", delivery)
    value = parse_json(body)
    payload = value if isinstance(value, dict) else {"body": value}
    [admission] = await api.admit(api.triggers.prepare(
        environment=hook.environment, workflow=hook.workflow,
        items=[TriggerInput(payload=payload)], request_id=request_id_of(request),
        source=Source.WEBHOOK, now=now, trigger_id=hook.id,
        receipt=(hook.id, delivery.message_id)))
    api.count(hook.environment, Source.WEBHOOK, [admission])
    return JSONResponse(admission.body(), status_code=202)

"""The HTTP API (Starlette, served by uvicorn): triggers, webhooks, executions, schedules,
``/healthz``, ``/metrics`` and the OpenAPI document at ``/openapi.json``.

Handlers are thin: parse and authenticate here, decide in
:class:`~orchestrator.triggers.ingest.IngestService` and the store. Triggers are admitted by one
writer thread per process, concurrent requests sharing a transaction
(:class:`~orchestrator.triggers.group_commit.GroupCommit`); other store calls run in the thread
pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from orchestrator.api import schedules as schedule_routes
from orchestrator.api.errors import ApiError, to_response
from orchestrator.api.http import (
    KeyCache,
    environment_of,
    parse_json,
    read_body,
    refuse_nul,
    request_id_of,
)
from orchestrator.api.metrics import ApiMetrics
from orchestrator.api.models import BatchBody, TriggerBody, parse
from orchestrator.api.openapi import openapi_document
from orchestrator.api.settings import ApiSettings
from orchestrator.api.views import execution_view, list_views
from orchestrator.domain.burst import BurstGate
from orchestrator.domain.correlation import Source
from orchestrator.domain.ingest import Admission, AdmissionJob
from orchestrator.domain.records import ExecutionStatus
from orchestrator.domain.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from orchestrator.services.executions import STATUSES, ExecutionService
from orchestrator.services.schedules import ScheduleService
from orchestrator.store import Store
from orchestrator.triggers.group_commit import GroupCommit
from orchestrator.triggers.ingest import IngestService, TriggerInput

Clock = Callable[[], datetime]
Handler = Callable[[Request], Awaitable[Response]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Api:
    """The app's collaborators, shared by the handlers."""

    def __init__(self, settings: ApiSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.store = Store(settings.store.database_url)
        self.access = self.store.access
        self.keys = KeyCache(self.access)
        gate = BurstGate(settings.burst) if settings.burst.enabled else None
        self.service = IngestService(self.store, gate)
        self.admissions: GroupCommit[AdmissionJob, list[Admission]] = GroupCommit(
            self.service.admit, name="trigger-admission")
        self.metrics = ApiMetrics(self.store.queue, clock)
        self.schedules = ScheduleService(self.store.workflows, self.store.schedules,
                                         self.store.executions)
        self.executions = ExecutionService(self.store.executions, self.store.admission)

    async def admit(self, job: AdmissionJob) -> list[Admission]:
        """Admit ``job`` with whatever other requests are waiting (one shared transaction)."""
        return await asyncio.wrap_future(self.admissions.submit(job))

    async def environment(self, request: Request) -> str:
        return await environment_of(request, self.keys)

    def count(self, environment: str, source: Source, admissions: list[Admission]) -> None:
        for a in admissions:
            if a.deduplicated or a.debounced:
                self.metrics.deduplicated.labels(environment).inc()
            else:
                self.metrics.accepted.labels(environment, source.value).inc()
            if a.buffered:
                self.metrics.buffered.labels(environment).inc()


def create_app(settings: ApiSettings, *, clock: Clock = _utcnow) -> Starlette:
    """The ASGI app for ``settings`` (``clock`` is injectable for tests)."""
    api = Api(settings, clock)

    def endpoint(route: str, fn: Callable[[Api, Request], Awaitable[Response]]) -> Handler:
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            try:
                refuse_nul(request)
                response = await fn(api, request)
            except ClientDisconnect:  # the caller went away mid-body: nothing was admitted
                api.metrics.rejected.labels("client_disconnected").inc()
                return Response(status_code=499)
            except Exception as exc:  # every failure is a structured JSON error
                response = to_response(exc, settings.retry_after_seconds)
                api.metrics.rejected.labels(_code(response)).inc()
            api.metrics.latency.labels(route).observe(time.perf_counter() - started)
            return response

        handle.__doc__ = fn.__doc__
        return handle

    routes: list[BaseRoute] = [
        Route("/healthz", endpoint("healthz", healthz), methods=["GET"]),
        Route("/metrics", endpoint("metrics", metrics), methods=["GET"],
              include_in_schema=False),
        Route("/v1/workflows/{name}/trigger", endpoint("trigger", trigger), methods=["POST"]),
        Route("/v1/workflows/{name}/trigger-batch", endpoint("trigger_batch", trigger_batch),
              methods=["POST"]),
        Route("/v1/webhooks/{webhook_id}", endpoint("webhook", webhook), methods=["POST"]),
        Route("/v1/executions", endpoint("executions", list_executions), methods=["GET"]),
        Route("/v1/executions/{execution_id}", endpoint("execution", get_execution),
              methods=["GET"]),
        *[Route(path, endpoint(name, fn), methods=methods)
          for path, name, fn, methods in schedule_routes.ROUTES],
    ]
    schema_routes = list(routes)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(schema_routes))

    routes.append(Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False))

    async def fallback(request: Request, exc: Exception) -> Response:
        return to_response(exc, settings.retry_after_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(api.admissions.close)

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: fallback, 405: fallback, Exception: fallback})
    app.state.api = api
    return app


def app_from_env() -> Starlette:
    """The app of ``orchestrator serve`` (each uvicorn worker process builds its own).

    Everything loaded so far (Dagster, SQLAlchemy, pydantic: ~400,000 objects) lives as long as
    the process, so it is moved out of the collector's sight (``gc.freeze``): a full collection
    otherwise scans all of it, a ~100 ms pause of every request in flight under load."""
    app = create_app(ApiSettings.from_env())
    gc.collect()
    gc.freeze()
    return app


def _code(response: Response) -> str:
    return {400: "malformed_json", 401: "unauthorized", 404: "not_found", 409: "conflict",
            413: "payload_too_large", 422: "invalid_field", 503: "store_unavailable"}.get(
                response.status_code, str(response.status_code))


# ------------------------------------------------------------------------------------ handlers

async def healthz(api: Api, request: Request) -> Response:
    """
    summary: Liveness, with a store check
    security: []
    responses:
      200: {description: the server and its store answer}
      503: {description: the store is unreachable}
    """
    await run_in_threadpool(api.store.list_workflows, "-")
    return JSONResponse({"status": "ok"})


async def metrics(api: Api, request: Request) -> Response:
    return Response(generate_latest(api.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def trigger(api: Api, request: Request) -> Response:
    """
    summary: Trigger a workflow
    description: >
      Queues one execution (202). The same idempotency_key (per environment and workflow,
      within its TTL) answers the same execution_id with deduplicated true. X-Request-Id,
      when sent, becomes the execution's request_id.
    parameters: [{$ref: '#/components/parameters/RequestId'}]
    requestBody:
      content: {application/json: {schema: {$ref: '#/components/schemas/TriggerBody'}}}
    responses:
      202: {description: "accepted: {execution_id, request_id, status, deduplicated}"}
      400: {description: malformed JSON}
      404: {description: unknown workflow}
      413: {description: body over 1 MiB}
      422: {description: an invalid field (named)}
      503: {description: store unreachable; retry after Retry-After seconds}
    """
    environment = await api.environment(request)
    request_id = request_id_of(request)
    body = parse(TriggerBody, parse_json(await read_body(request)))
    name = request.path_params["name"]
    [admission] = await api.admit(api.service.prepare(
        environment=environment, workflow=name, items=[body.to_input()],
        request_id=request_id, source=Source.API, now=api.clock()))
    api.count(environment, Source.API, [admission])
    return JSONResponse(admission.body(), status_code=202,
                        headers={"X-Request-Id": admission.request_id})


async def trigger_batch(api: Api, request: Request) -> Response:
    """
    summary: Trigger a workflow for up to 500 items
    description: >
      All items are accepted or none. An item without its own idempotency_key gets the batch
      idempotency_key plus ":<index>". Batch items bypass the burst gate.
    parameters: [{$ref: '#/components/parameters/RequestId'}]
    requestBody:
      content: {application/json: {schema: {$ref: '#/components/schemas/BatchBody'}}}
    responses:
      202: {description: "{items: [{execution_id, request_id, status, deduplicated}]}"}
    """
    environment = await api.environment(request)
    request_id = request_id_of(request)
    body = parse(BatchBody, parse_json(await read_body(request)))
    name = request.path_params["name"]
    admissions = await api.admit(api.service.prepare(
        environment=environment, workflow=name, items=[item.to_input() for item in body.items],
        request_id=request_id, source=Source.API, now=api.clock(),
        batch_key=body.idempotency_key, batched=True))
    api.count(environment, Source.API, admissions)
    return JSONResponse({"items": [a.body() for a in admissions]}, status_code=202)


async def webhook(api: Api, request: Request) -> Response:
    """
    summary: A signed webhook delivery
    description: >
      Headers X-Orchestrator-Timestamp (unix seconds) and X-Orchestrator-Signature
      ("sha256=" + hex HMAC-SHA256 of "<timestamp>.<body>" with the webhook secret). Outside a
      5-minute window, or a signature already accepted, is refused. The JSON body (an object)
      becomes the payload; any other JSON value arrives as {"body": value}.
    security: []
    parameters:
      - {name: X-Orchestrator-Timestamp, in: header, required: true, schema: {type: string}}
      - {name: X-Orchestrator-Signature, in: header, required: true, schema: {type: string}}
      - {$ref: '#/components/parameters/RequestId'}
    requestBody:
      content: {application/json: {schema: {}}}
    responses:
      202: {description: "accepted: {execution_id, request_id, status, deduplicated}"}
      401: {description: "missing, stale or wrong signature"}
      404: {description: unknown webhook}
      409: {description: replayed delivery}
    """
    webhook_id = request.path_params["webhook_id"]
    hook = await run_in_threadpool(api.access.get_webhook, webhook_id)
    body = await read_body(request)
    now = api.clock()
    signature = request.headers.get(SIGNATURE_HEADER)
    problem = verify(hook.secret, request.headers.get(TIMESTAMP_HEADER), signature, body, now)
    if problem is not None:
        raise ApiError(401, "invalid_signature", problem)
    assert signature is not None
    value = parse_json(body)
    payload = value if isinstance(value, dict) else {"body": value}
    [admission] = await api.admit(api.service.prepare(
        environment=hook.environment, workflow=hook.workflow,
        items=[TriggerInput(payload=payload)], request_id=request_id_of(request),
        source=Source.WEBHOOK, now=now, trigger_id=hook.id, receipt=(hook.id, signature)))
    api.count(hook.environment, Source.WEBHOOK, [admission])
    return JSONResponse(admission.body(), status_code=202)


async def get_execution(api: Api, request: Request) -> Response:
    """
    summary: One execution (buffered ones included, as queued)
    responses:
      200: {description: "the execution with its correlation, status, outcome and blocks"}
      404: {description: no such execution in the key's environment}
    """
    environment = await api.environment(request)
    found = await run_in_threadpool(api.executions.find, request.path_params["execution_id"],
                                    environment)
    return JSONResponse(execution_view(found))


async def list_executions(api: Api, request: Request) -> Response:
    """
    summary: Executions of the key's environment, most recent first
    parameters:
      - {name: workflow, in: query, schema: {type: string}}
      - name: status
        in: query
        schema: {type: string, enum: [queued, running, success, error, cancelled]}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 50}}
    responses:
      200: {description: "{executions: [...]}"}
    """
    environment = await api.environment(request)
    query = request.query_params
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(422, "invalid_field", f"status: use one of {', '.join(STATUSES)}",
                       field="status")
    raw_limit = query.get("limit", "50")
    # isdigit() alone admits "¹" and other digits int() refuses
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= 1000:
        raise ApiError(422, "invalid_field", "limit: use a whole number from 1 to 1000",
                       field="limit")
    found = await run_in_threadpool(
        lambda: api.executions.visible(environment, workflow=query.get("workflow"),
                                       status=ExecutionStatus(status) if status else None,
                                       limit=int(raw_limit)))
    return JSONResponse({"executions": list_views(found)})


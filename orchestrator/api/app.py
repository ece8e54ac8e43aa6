"""The HTTP API (Starlette, served by uvicorn): the operations of the route table
(:mod:`orchestrator.api.routes`: triggers, webhooks, executions, schedules, ``/healthz``), plus
``/metrics`` (operators only: ``ORCHESTRATOR_OPERATOR_TOKEN``) and the OpenAPI document
generated from the table at ``/openapi.json``.

Handlers are thin: the app authenticates and parses each request as its operation declares
(:mod:`orchestrator.api.operations`), the handler calls a service and answers. Triggers are
admitted by one writer thread per process, concurrent requests sharing a transaction
(:class:`~orchestrator.triggers.group_commit.GroupCommit`); other store calls run in the thread
pool.
"""

from __future__ import annotations

import contextlib
import functools
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

from orchestrator.api.context import Api, Clock
from orchestrator.api.errors import to_response
from orchestrator.api.http import (
    parse_json,
    read_body,
    refuse_nul,
    request_id_of,
    require_operator,
)
from orchestrator.api.models import parse
from orchestrator.api.openapi import openapi_document
from orchestrator.api.operations import Call, Operation, parse_query
from orchestrator.api.routes import OPERATIONS
from orchestrator.api.settings import ApiSettings


def _utcnow() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _openapi_body() -> bytes:
    """``/openapi.json``'s body: the route table's document, built on its first request and
    kept (pydantic's JSON Schema of every model takes ~60 ms, which each app created would
    otherwise pay at start)."""
    return bytes(JSONResponse(openapi_document(OPERATIONS)).body)


def create_app(settings: ApiSettings, *, clock: Clock = _utcnow, freeze: bool = False
               ) -> Starlette:
    """The ASGI app for ``settings`` (``clock`` is injectable for tests). At startup it warms
    up (:meth:`Api.warm_up <orchestrator.api.context.Api.warm_up>`), then with ``freeze``
    moves everything alive out of the collector's sight (:func:`app_from_env`)."""
    api = Api(settings, clock)

    def endpoint(route: str, answer: Callable[[Request], Awaitable[Response]]
                 ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            try:
                refuse_nul(request)
                response = await answer(request)
            except ClientDisconnect:  # the caller went away mid-body: nothing was admitted
                api.metrics.rejected.labels("client_disconnected").inc()
                return Response(status_code=499)
            except Exception as exc:  # every failure is a structured JSON error
                response = to_response(exc, settings.retry_after_seconds)
                api.metrics.rejected.labels(_code(response)).inc()
            api.metrics.latency.labels(route).observe(time.perf_counter() - started)
            return response

        return handle

    def serve(op: Operation) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            environment = "" if op.public else await api.environment(request)
            request_id = request_id_of(request) if op.request_id and not op.public else None
            body = parse(op.body, parse_json(await read_body(request))) if op.body else None
            query = parse_query(op.query, request) if op.query else None
            return await op.handler(api, Call(request, environment, request_id, body, query))

        return answer

    async def metrics(request: Request) -> Response:
        require_operator(request, settings.operator_token)
        return Response(generate_latest(api.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return Response(_openapi_body(), media_type="application/json")

    routes: list[BaseRoute] = [
        Route(op.path, endpoint(op.name, serve(op)), methods=[op.method]) for op in OPERATIONS]
    routes += [Route("/metrics", endpoint("metrics", metrics), methods=["GET"],
                     include_in_schema=False),
               Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False)]

    async def fallback(request: Request, exc: Exception) -> Response:
        return to_response(exc, settings.retry_after_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # uvicorn takes connections once this is done: each worker process warms up first,
        # and what that keeps (compiled statements, a pooled connection) is frozen too.
        await run_in_threadpool(api.warm_up)
        if freeze:
            gc.collect()
            gc.freeze()
        yield
        await run_in_threadpool(api.admissions.close)

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: fallback, 405: fallback, Exception: fallback})
    app.state.api = api
    return app


def app_from_env() -> Starlette:
    """The app of ``orchestrator serve`` (each uvicorn worker process builds its own).

    Everything loaded by its startup (SQLAlchemy, pydantic, the warmed-up statements: 80,000
    objects the collector tracks, ``gc.get_freeze_count()`` in a worker) lives as long as the
    process, so it is moved out of the collector's sight (``gc.freeze``): a full collection
    otherwise scans all of it, a ~100 ms pause of every request in flight under load."""
    return create_app(ApiSettings.from_env(), freeze=True)


def _code(response: Response) -> str:
    return {400: "malformed_json", 401: "unauthorized", 404: "not_found", 409: "conflict",
            413: "payload_too_large", 422: "invalid_field", 503: "store_unavailable"}.get(
                response.status_code, str(response.status_code))

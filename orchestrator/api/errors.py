"""Structured JSON errors ``{"error": {"code", "message"}}``: every failure a client can see.
Nothing from a driver, a stack trace or a connection string ever reaches a response."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from orchestrator.domain.failures import classify
from orchestrator.domain.records import Outcome
from orchestrator.exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    OrchestratorError,
    StoreError,
)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as is (status, code, message)."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers
        self.extra = extra


def error_response(status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}},
                        status_code=status, headers=headers)


def to_response(exc: Exception, retry_after: int) -> JSONResponse:
    """The response for any exception raised while handling a request."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers,
                              **exc.extra)
    if isinstance(exc, OrchestratorError):
        if classify(exc) is Outcome.USER_ERROR:
            return _user_error(exc)
        if isinstance(exc, StoreError):
            return error_response(503, "store_unavailable", str(exc),
                                  headers={"Retry-After": str(retry_after)})
    if isinstance(exc, HTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                              str(exc.detail))
    log.exception("unexpected error answering a request")
    return error_response(500, "internal_error", "internal error; the server log has details")


def _user_error(exc: OrchestratorError) -> JSONResponse:
    """The caller's mistake (``classify`` says so); its shape says which one."""
    if isinstance(exc, InvalidInput):
        first = exc.problems[0]
        return error_response(
            422, "invalid_field", "; ".join(str(p) for p in exc.problems), field=first.field,
            problems=[{"field": p.field, "message": p.message} for p in exc.problems])
    if isinstance(exc, NotFound):
        return error_response(404, "not_found", f"{exc.kind} {exc.key.split('/')[-1]!r} "
                              "not found")
    if isinstance(exc, Conflict):
        if exc.execution_id:
            return error_response(409, "conflict", str(exc), execution_id=exc.execution_id)
        return error_response(409, "conflict", str(exc))
    return error_response(422, "invalid_request", str(exc))

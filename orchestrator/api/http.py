"""Request plumbing shared by the handlers: bounded JSON bodies, API-key auth, request ids."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from orchestrator.api.errors import ApiError
from orchestrator.store.access import AccessStore

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


async def read_body(request: Request) -> bytes:
    """The raw body, refused (413) past 1 MiB without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """An empty body is ``{}``; anything else must be JSON (400 otherwise)."""
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" \
            if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, "malformed_json", f"the body is not valid JSON{where}") from None


def _too_large() -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")


def request_id_of(request: Request) -> str | None:
    """The caller's ``X-Request-Id`` (kept as the execution's request_id), if any."""
    value = request.headers.get(REQUEST_ID_HEADER)
    if value is None:
        return None
    if not REQUEST_ID_PATTERN.match(value):
        raise ApiError(422, "invalid_field", f"{REQUEST_ID_HEADER}: use 1-128 characters of "
                       "letters, digits and . _ : / -", field=REQUEST_ID_HEADER)
    return value


async def environment_of(request: Request, access: AccessStore) -> str:
    """The environment of the request's API key (``Authorization: Bearer <key>``)."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized", "send an API key: Authorization: Bearer <key> "
                       "(create one with `orchestrator keys create --environment ENV`)",
                       headers={"WWW-Authenticate": "Bearer"})
    environment = await run_in_threadpool(access.environment_of_key, key.strip())
    if environment is None:
        raise ApiError(401, "unauthorized", "the API key is not valid",
                       headers={"WWW-Authenticate": "Bearer"})
    return str(environment)

"""Request plumbing shared by the handlers: bounded JSON bodies, API-key auth, request ids."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from orchestrator.api.errors import ApiError
from orchestrator.domain.access import hash_api_key
from orchestrator.domain.payloads import field_name, load_json, unstorable
from orchestrator.store.interfaces import AccessRepository

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


async def read_body(request: Request) -> bytes:
    """The raw body, refused (413) past 1 MiB without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() \
            and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """An empty body is ``{}``; anything else must be JSON (400 otherwise) whose every value the
    store can keep (422 naming the field otherwise: see
    :func:`~orchestrator.domain.payloads.unstorable`; fields are named from the body's
    top-level keys, or from ``body`` when it is no object)."""
    if not body.strip():
        return {}
    try:
        value = load_json(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" \
            if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, "malformed_json", f"the body is not valid JSON{where}") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "the body nests arrays or objects too deeply"
                       ) from None
    problem = unstorable(value, None if isinstance(value, dict) else "body")
    if problem is not None:
        raise ApiError(422, "invalid_field", str(problem), field=problem.field)
    return value


def refuse_nul(request: Request) -> None:
    """A NUL character in a path or query parameter: no object is named so (404), no filter
    can match it (422). PostgreSQL text cannot hold one, so it never reaches the store. A
    query parameter without a name filters nothing: ignored, as unknown parameters are."""
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            raise ApiError(404, "not_found", f"no object has this {name} (it has a NUL "
                           "character)")
    for name, value in request.query_params.multi_items():
        if name.strip() and "\x00" in name + value:
            field = field_name(name)
            raise ApiError(422, "invalid_field", f"{field}: has a NUL character", field=field)


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


class KeyCache:
    """The environments of recently checked API keys, kept ``ttl`` seconds: the trigger path
    skips a store read per request. Only valid keys are kept (a key created a moment ago works
    at once), and by hash, never in clear."""

    def __init__(self, access: AccessRepository, *, ttl: float = 5.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.access = access
        self.ttl = ttl
        self.max_keys = max_keys
        self.clock = clock
        self._known: dict[str, tuple[str, float]] = {}

    async def environment(self, key: str) -> str | None:
        digest = hash_api_key(key)
        known = self._known.get(digest)
        now = self.clock()
        if known is not None and known[1] > now:
            return known[0]
        environment = await run_in_threadpool(self.access.environment_of_key, key)
        if environment is not None:
            if len(self._known) >= self.max_keys:
                self._known.clear()
            self._known[digest] = (environment, now + self.ttl)
        return environment


async def environment_of(request: Request, keys: KeyCache) -> str:
    """The environment of the request's API key (``Authorization: Bearer <key>``)."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized", "send an API key: Authorization: Bearer <key> "
                       "(create one with `orchestrator keys create --environment ENV`)",
                       headers={"WWW-Authenticate": "Bearer"})
    environment = await keys.environment(key.strip())
    if environment is None:
        raise ApiError(401, "unauthorized", "the API key is not valid",
                       headers={"WWW-Authenticate": "Bearer"})
    return environment

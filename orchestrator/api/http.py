"""Request plumbing shared by the handlers: bounded JSON bodies, API-key auth, request ids."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from orchestrator.api.errors import ApiError
from orchestrator.domain.access import KeyGrant, hash_api_key
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


# How long a server trusts a key it checked without asking the store again: a revoked key is
# refused by every server process within this (an expired one at its instant, by the clock).
KEY_CACHE_SECONDS = 0.5


class KeyCache:
    """What recently checked API keys grant, kept ``ttl`` seconds: the trigger path skips a
    store read per request (one read per key per ``ttl`` per process). Only valid keys are
    kept (a key created a moment ago works at once), by hash, never in clear. Expiry is
    checked on every request against the API's clock."""

    def __init__(self, access: AccessRepository, *, ttl: float = KEY_CACHE_SECONDS,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.access = access
        self.ttl = ttl
        self.max_keys = max_keys
        self.clock = clock
        self._known: dict[str, tuple[KeyGrant, float]] = {}
        self._reading: dict[str, asyncio.Future[KeyGrant | None]] = {}

    async def environment(self, key: str, now: datetime) -> str | None:
        digest = hash_api_key(key)
        known = self._known.get(digest)
        tick = self.clock()
        if known is not None and known[1] > tick:
            grant: KeyGrant | None = known[0]
        else:
            grant = await self._read(key, digest, now, tick)
        return grant.environment if grant is not None and grant.valid_at(now) else None

    async def _read(self, key: str, digest: str, now: datetime, tick: float) -> KeyGrant | None:
        """One store read per key at a time: the requests that find the key stale while it runs
        share its answer (at a burst's rate, each entry's expiry sent every request waiting then
        to the store at once, and each to record the key's last use: writes queued behind the
        admission writer)."""
        reading = self._reading.get(digest)
        if reading is None:
            reading = asyncio.ensure_future(self._check(key, digest, now, tick))
            self._reading[digest] = reading
            reading.add_done_callback(lambda done: self._reading.pop(digest, None)
                                      if self._reading.get(digest) is done else None)
        return await asyncio.shield(reading)

    async def _check(self, key: str, digest: str, now: datetime, tick: float) -> KeyGrant | None:
        grant = await run_in_threadpool(self.access.check_api_key, key, now)
        if grant is None:
            self._known.pop(digest, None)
        else:
            if len(self._known) >= self.max_keys:
                self._known.clear()
            self._known[digest] = (grant, tick + self.ttl)
        return grant


async def environment_of(request: Request, keys: KeyCache, now: datetime) -> str:
    """The environment of the request's API key (``Authorization: Bearer <key>``)."""
    key = bearer_token(request)
    if key is None:
        raise ApiError(401, "unauthorized", "send an API key: Authorization: Bearer <key> "
                       "(create one with `orchestrator keys create --environment ENV`)",
                       headers={"WWW-Authenticate": "Bearer"})
    environment = await keys.environment(key, now)
    if environment is None:
        raise ApiError(401, "unauthorized", "the API key is not valid (unknown, revoked or "
                       "expired)", headers={"WWW-Authenticate": "Bearer"})
    return environment


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, if the request sends one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def require_operator(request: Request, token: str | None) -> None:
    """Operator-wide routes (``/metrics``: it names every environment) answer only to
    ``Authorization: Bearer <ORCHESTRATOR_OPERATOR_TOKEN>``; an API key is no operator token."""
    sent = bearer_token(request)
    if token is None:
        raise ApiError(401, "unauthorized", "operator routes need the operator token: start the "
                       "server with ORCHESTRATOR_OPERATOR_TOKEN set, then send Authorization: "
                       "Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    if sent is None or not hmac.compare_digest(sent.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "send the operator token: Authorization: Bearer "
                       "<ORCHESTRATOR_OPERATOR_TOKEN>", headers={"WWW-Authenticate": "Bearer"})

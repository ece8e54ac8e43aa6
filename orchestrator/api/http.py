"""Request plumbing shared by the handlers: bounded JSON bodies, API-key auth, request ids."""

from __future__ import annotations

import json
import math
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
    """An empty body is ``{}``; anything else must be JSON (400 otherwise) whose every value the
    store can keep (422 naming the field otherwise: see :func:`_unstorable`)."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_int=_int_or_marker)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" \
            if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, "malformed_json", f"the body is not valid JSON{where}") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "the body nests arrays or objects too deeply"
                       ) from None
    problem = _unstorable(value)
    if problem is not None:
        field, message = problem
        raise ApiError(422, "invalid_field", f"{field}: {message}", field=field)
    return value


class _TooLong:
    """Stands for an integer literal past Python's digit limit until it is reported."""


def _int_or_marker(literal: str) -> int | _TooLong:
    try:
        return int(literal)
    except ValueError:  # more than sys.get_int_max_str_digits() digits
        return _TooLong()


def _unstorable(value: Any) -> tuple[str, str] | None:
    """A value (its dotted path, and why) that is JSON to Python but that neither
    PostgreSQL's jsonb nor a text column can hold: a NUL character, an unpaired surrogate, a
    non-finite number (NaN, Infinity, 1e999), an integer of thousands of digits. Iterative:
    bodies nest as deep as the JSON parser allows."""
    # fields are named from the body's top-level keys, or from "body" when it is no object
    stack: list[tuple[tuple[str, ...], Any]] = [((() if isinstance(value, dict) else ("body",)),
                                                 value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if _bad_text(key):
                    return _dotted((*path, key)), "the name has a NUL character or an " \
                        "unpaired surrogate; use valid Unicode text"
                stack.append(((*path, key), child))
        elif isinstance(item, list):
            stack.extend(((*path, str(i)), child) for i, child in enumerate(item))
        elif isinstance(item, str) and _bad_text(item):
            return _dotted(path), "has a NUL character or an unpaired surrogate; use valid " \
                "Unicode text"
        elif isinstance(item, float) and not math.isfinite(item):
            return _dotted(path), "must be a finite number"
        elif isinstance(item, _TooLong):
            return _dotted(path), "is a number with too many digits"
    return None


def refuse_nul(request: Request) -> None:
    """A NUL character in a path or query parameter: no object is named so (404), no filter
    can match it (422). PostgreSQL text cannot hold one, so it never reaches the store."""
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            raise ApiError(404, "not_found", f"no object has this {name} (it has a NUL "
                           "character)")
    for name, value in request.query_params.multi_items():
        if "\x00" in name + value:
            field = _dotted((name,))
            raise ApiError(422, "invalid_field", f"{field}: has a NUL character", field=field)


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _dotted(path: tuple[str, ...]) -> str:
    """``a.b.0`` (``body`` for the root); names that cannot be shown as text are escaped."""
    return ".".join(p if not _bad_text(p) else ascii(p)[1:-1] for p in path) or "body"


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

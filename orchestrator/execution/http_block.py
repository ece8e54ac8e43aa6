"""The ``http`` block: one HTTP request through a real client (httpx).

Classification follows who is at fault: a 4xx answer is the workflow's error (wrong URL, bad
credentials, bad payload) and becomes a user error carrying the status and the provider's own
message. A 5xx answer, a 408/429, a timeout or a refused connection may pass: the block retries
with exponential backoff and, when the retries are spent, fails as a user error too (the provider
is the workflow's dependency, not our machinery).

``with``: ``url`` (required), ``method`` (GET), ``headers``, ``params``, ``json`` or ``body``,
``timeout_seconds`` (10), ``retries`` (3), ``backoff_seconds`` (0.5).
Output: ``{"status": int, "headers": {...}, "body": parsed JSON or text}``.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import httpx

from orchestrator.domain.failures import retryable_status
from orchestrator.domain.retry import exponential, retry_call
from orchestrator.exceptions import WorkflowError
from orchestrator.execution.blocks import BlockContext, register_block_type, require

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_BACKOFF_SECONDS = 30.0
MAX_TIMEOUT_SECONDS = 300.0
MAX_RETRIES = 10
MESSAGE_LIMIT = 300


def _number(inputs: dict[str, Any], field: str, default: float, low: float, high: float,
            context: BlockContext) -> float:
    value = inputs.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise WorkflowError(f"block `{context.block_id}`: `{field}` must be a number from {low:g} "
                            f"to {high:g}, got {value!r}", block_id=context.block_id)
    return float(value)


def _provider_message(response: httpx.Response) -> str:
    """The provider's own explanation: a JSON ``message``/``error``/``detail``, else the text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "detail", "error_description"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value[:MESSAGE_LIMIT]
    text = response.text.strip()
    return text[:MESSAGE_LIMIT] if text else (response.reason_phrase or "no message")


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


@register_block_type("http")
def http_block(inputs: dict[str, Any], context: BlockContext) -> dict[str, Any]:
    url = require(inputs, "url", context)
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WorkflowError(f"block `{context.block_id}`: `url` must be an http(s) URL, got "
                            f"{str(url)[:100]!r}", block_id=context.block_id)
    method = str(inputs.get("method", "GET")).upper()
    if method not in METHODS:
        raise WorkflowError(f"block `{context.block_id}`: `method` must be one of "
                            f"{', '.join(METHODS)}, got {method!r}", block_id=context.block_id)
    timeout = _number(inputs, "timeout_seconds", 10, 0.1, MAX_TIMEOUT_SECONDS, context)
    retries = int(_number(inputs, "retries", 3, 0, MAX_RETRIES, context))
    backoff = _number(inputs, "backoff_seconds", 0.5, 0, 60, context)
    request: dict[str, Any] = {"headers": inputs.get("headers") or {},
                               "params": inputs.get("params") or None}
    if "json" in inputs:
        request["json"] = inputs["json"]
    elif "body" in inputs:
        request["content"] = str(inputs["body"])

    client = shared_client()

    def attempt() -> httpx.Response:
        try:
            response = client.request(method, str(url), timeout=timeout, **request)
        except httpx.TimeoutException:
            raise ProviderUnavailable(f"timed out after {timeout:g}s") from None
        except httpx.TransportError as exc:  # refused, reset, DNS
            raise ProviderUnavailable(f"could not connect ({type(exc).__name__})") from None
        if retryable_status(response.status_code):
            raise ProviderUnavailable(f"HTTP {response.status_code}: "
                                      f"{_provider_message(response)}")
        if response.status_code >= 400:  # the workflow's error: never retried
            raise WorkflowError(
                f"block `{context.block_id}`: {method} {_safe(url)} answered HTTP "
                f"{response.status_code}: {_provider_message(response)}",
                block_id=context.block_id)
        return response

    try:
        response = retry_call(attempt, exponential(backoff, retries, cap=MAX_BACKOFF_SECONDS),
                              what=f"block `{context.block_id}` request")
    except ProviderUnavailable as exc:
        raise WorkflowError(f"block `{context.block_id}`: {method} {_safe(url)} failed after "
                            f"{retries + 1} attempt(s): {exc}", block_id=context.block_id) from None
    return {"status": response.status_code, "headers": dict(response.headers),
            "body": _body(response)}


class ProviderUnavailable(WorkflowError):
    """The provider did not answer, or answered that it cannot now (5xx, 408, 429): retried
    by the policy; when the retries are spent, the block fails with a user error."""

    transient = True


_CLIENT: httpx.Client | None = None
_CLIENT_LOCK = threading.Lock()


def shared_client() -> httpx.Client:
    """One client per process, shared by every block (httpx clients are thread-safe): creating
    one costs ~40 ms of CPU (its TLS context), which a batch run would otherwise pay for every
    execution; sharing also keeps connections to a provider alive between executions."""
    global _CLIENT
    with _CLIENT_LOCK:
        if _CLIENT is None:
            _CLIENT = httpx.Client(follow_redirects=True,
                                   limits=httpx.Limits(max_connections=200,
                                                       max_keepalive_connections=50))
        return _CLIENT


def _safe(url: Any) -> str:
    """The URL without credentials or query string (which may carry tokens)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"

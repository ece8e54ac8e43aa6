"""The ``trigger`` block: starts another workflow of the same environment as a child execution.

The child is started through the block's context (:meth:`BlockContext.spawn_child`, admitted by
:mod:`orchestrator.execution.children` like any trigger): ``parent_execution_id`` is the running
execution, ``source`` is ``child``, ``request_id`` is the parent's (one request id follows the
whole tree), and it bypasses the burst gate. It is queued; ``queued_trigger_sensor`` launches its
run. The parent does not wait for it. The idempotency key's expiry is counted from the
execution's clock (``context.now()``).

``with``: ``workflow`` (required, a workflow name of the parent's environment), ``payload`` (an
object, default ``{}``), ``idempotency_key`` and ``idempotency_ttl`` (as in the HTTP API: while
the key holds, triggering again answers the same child with ``deduplicated: true``; a key makes a
re-run of the parent start no second child).
Output: ``{"execution_id", "request_id", "status", "deduplicated"}``.

A bad field or an unknown workflow is the workflow's error (a user error naming the block and the
field); the store failing is a pipeline fault.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.domain.ingest import DEFAULT_IDEMPOTENCY_TTL, parse_idempotency_ttl
from orchestrator.domain.payloads import unstorable
from orchestrator.domain.schedules import KEY_PATTERN
from orchestrator.domain.workflow import NAME_PATTERN
from orchestrator.exceptions import InvalidInput, NotFound, WorkflowError
from orchestrator.execution.blocks import (
    BlockContext,
    ChildTrigger,
    register_block_type,
    require,
)

FIELDS = ("workflow", "payload", "idempotency_key", "idempotency_ttl")


def _error(context: BlockContext, message: str) -> WorkflowError:
    return WorkflowError(f"block `{context.block_id}`: {message}", block_id=context.block_id)


@register_block_type("trigger")
def trigger_block(inputs: dict[str, Any], context: BlockContext) -> dict[str, Any]:
    unknown = sorted(set(inputs) - set(FIELDS))
    if unknown:
        hint = (" (a child always runs in its parent's environment)"
                if "environment" in unknown else "")
        raise _error(context, f"unknown field(s) {', '.join(f'`{u}`' for u in unknown)}; "
                              f"allowed: {', '.join(FIELDS)}{hint}")
    workflow = require(inputs, "workflow", context)
    if not isinstance(workflow, str) or not NAME_PATTERN.match(workflow):
        raise _error(context, f"`workflow` must be a workflow name, got {str(workflow)[:80]!r}")
    payload = inputs.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise _error(context, f"`payload` must be an object, got {type(payload).__name__}")
    try:
        json.dumps(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _error(context, f"`payload` must be JSON ({exc})") from None
    # The child's payload is input, checked as the HTTP API checks it (not made storable: the
    # child must see what the parent sent, or nothing).
    problem = unstorable(payload, "payload")
    if problem is not None:
        raise _error(context, str(problem))
    key = inputs.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not KEY_PATTERN.match(key)):
        raise _error(context, "`idempotency_key` must be 1-200 characters: letters, digits and "
                              f"_ . : / - (starting with a letter or digit), got {str(key)[:80]!r}")
    ttl = DEFAULT_IDEMPOTENCY_TTL
    if inputs.get("idempotency_ttl") is not None:
        try:
            ttl = parse_idempotency_ttl(inputs["idempotency_ttl"])
        except ValueError as exc:
            raise _error(context, f"`idempotency_ttl` {exc}") from None
    child = ChildTrigger(workflow=workflow, payload=payload, idempotency_key=key,
                         idempotency_ttl=ttl)
    try:
        answer = context.spawn_child(child)
    except NotFound:
        raise _error(context, f"`workflow`: no workflow {workflow!r} in environment "
                              f"{context.environment!r}") from None
    except InvalidInput as exc:
        raise _error(context, "; ".join(str(p) for p in exc.problems)) from None
    return dict(answer)

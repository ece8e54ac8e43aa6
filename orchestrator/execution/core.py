"""The execution core: runs a workflow's blocks in dependency order and finalizes the execution.

Classification happens here, at the boundary around the blocks (by
:func:`~orchestrator.domain.failures.classify`): a :class:`WorkflowError` or an exception raised
by a block's own code is a **user error**, recorded and finalized by the core; anything that
escapes (the store failing, a bug outside the blocks) is a **pipeline fault** and propagates to
the caller, unfinalized.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from orchestrator.domain.failures import classify
from orchestrator.domain.payloads import (
    MAX_MESSAGE_CHARS,
    MAX_OUTPUT_BYTES,
    storable,
    storable_text,
    text_of,
)
from orchestrator.domain.records import BlockEntry, ExecutionRecord, ExecutionStatus, Outcome
from orchestrator.domain.templating import render
from orchestrator.domain.workflow import WorkflowSpec
from orchestrator.exceptions import WorkflowError
from orchestrator.execution.blocks import BlockContext, BlockFunction, block_types
from orchestrator.execution.children import StoreChildren
from orchestrator.execution.session import LoggingSession

log = logging.getLogger(__name__)
FINALIZED_BY_CORE = "core"


@dataclass(frozen=True, kw_only=True)
class ExecutionResult:
    record: ExecutionRecord

    @property
    def outcome(self) -> Outcome | None:
        return self.record.outcome

    @property
    def error(self) -> dict[str, Any] | None:
        return self.record.error


def trigger_scope(session: LoggingSession) -> dict[str, Any]:
    c = session.correlation
    return {
        "payload": c.payload,
        "source": c.source.value,
        "scheduled_for": c.scheduled_for.isoformat() if c.scheduled_for else None,
        "execution_id": c.execution_id,
        "request_id": c.request_id,
        "trigger_id": c.trigger_id,
    }


def run_workflow(spec: WorkflowSpec, session: LoggingSession) -> ExecutionResult:
    """Run every block of ``spec`` and write the terminal state through ``session``.

    Each block runs on a thread of its own so that ``timeout_seconds`` bounds the whole
    workflow, whatever a block does; a block still running at the deadline is abandoned (its
    thread cannot write to the execution log) and the execution ends as a user error.
    """
    c = session.correlation
    types = block_types()
    scope: dict[str, Any] = {"trigger": trigger_scope(session)}
    deadline = time.monotonic() + spec.timeout_seconds
    last = spec.blocks[-1]
    for block in spec.blocks:
        started = session.clock()
        t0 = time.perf_counter()
        running = BlockEntry(block_id=block.id, block_type=block.type, status="running",
                             started_at=started, finished_at=None, duration_ms=None,
                             error=None, output_size=None)
        context = BlockContext(execution_id=c.execution_id, block_id=block.id,
                               workflow=spec.name, environment=spec.environment,
                               request_id=c.request_id, clock=session.clock,
                               children=StoreChildren(session.store))
        try:
            inputs = render(block.inputs, scope, block_id=block.id)
            output = _call(types[block.type], inputs, context,
                           deadline=deadline, timeout=spec.timeout_seconds,
                           slow_after=session.running_entry_delay,
                           on_slow=partial(session.block_running, running))
        except Exception as exc:
            if classify(exc, raised_by_block=True) is not Outcome.USER_ERROR:
                raise  # the machinery failed (the store): a pipeline fault, not finalized here
            message = (str(exc) if isinstance(exc, WorkflowError) else
                       f"block `{block.id}` raised {type(exc).__name__}: {text_of(exc)}")
            return _fail(session, block.id, block.type, started, t0, message, inputs_of(block))
        scope[block.id] = output  # references see what the block returned; the store, `stored`
        stored = storable(output)
        if block is last and stored.size > MAX_OUTPUT_BYTES:
            return _fail(session, block.id, block.type, started, t0,
                         _too_large(block.id, stored.size), inputs_of(block),
                         output_size=stored.size)
        entry = BlockEntry(block_id=block.id, block_type=block.type, status="success",
                           started_at=started, finished_at=session.clock(),
                           duration_ms=(time.perf_counter() - t0) * 1000, error=None,
                           output_size=stored.size)
        if block is not last:  # durable before the next block starts
            session.block(entry)
    record = session.finish(status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                            finalized_by=FINALIZED_BY_CORE, output=stored.value,
                            block=entry)
    return ExecutionResult(record=record)


def _start(fn: BlockFunction, inputs: dict[str, Any], context: BlockContext) -> Future[Any]:
    """Run the block on a daemon thread of its own: one abandoned at the deadline can neither
    write to the execution log nor keep the run worker's process alive once the run is over
    (an executor's threads are joined at interpreter exit)."""
    future: Future[Any] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(inputs, context))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True,
                     name=f"block-{context.execution_id}-{context.block_id}").start()
    return future


def _call(fn: BlockFunction, inputs: dict[str, Any],
          context: BlockContext, *, deadline: float, timeout: int, slow_after: float,
          on_slow: Callable[[], None]) -> Any:
    """Run one block on its own thread until ``deadline``; ``on_slow()`` once it has run for
    ``slow_after`` seconds (called on this thread, while the block runs on its own)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise WorkflowError(f"workflow timed out after {timeout}s before block "
                            f"`{context.block_id}`", block_id=context.block_id)
    future = _start(fn, inputs, context)
    try:
        if slow_after < remaining:
            try:
                return future.result(timeout=slow_after)
            except TimeoutError:
                if future.done():  # the block itself raised TimeoutError
                    raise
            on_slow()
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        if future.done():  # the block itself raised TimeoutError
            raise
        raise WorkflowError(f"workflow timed out after {timeout}s in block "
                            f"`{context.block_id}`", block_id=context.block_id) from None


def inputs_of(block: Any) -> dict[str, str]:
    """The shape of a block's inputs (names and types), never their values."""
    return {k: type(v).__name__ for k, v in block.inputs.items()}


def _fail(session: LoggingSession, block_id: str, block_type: str, started: Any, t0: float,
          message: str, input_shape: dict[str, str],
          output_size: int | None = None) -> ExecutionResult:
    message = storable_text(message, limit=MAX_MESSAGE_CHARS)
    log.info("user error in block %s: %s", block_id, message,
             extra=session.correlation.log_fields())
    record = session.finish(
        status=ExecutionStatus.ERROR, outcome=Outcome.USER_ERROR, finalized_by=FINALIZED_BY_CORE,
        error={"message": message, "block": block_id, "inputs": input_shape,
               "classification": Outcome.USER_ERROR.value},
        block=BlockEntry(block_id=block_id, block_type=block_type, status="error",
                         started_at=started, finished_at=session.clock(),
                         duration_ms=(time.perf_counter() - t0) * 1000, error=message,
                         output_size=output_size))
    return ExecutionResult(record=record)


def _too_large(block_id: str, size: int) -> str:
    """The user error of a workflow whose output the store would not keep (like Temporal's
    payload limit: the workflow's error, never retried)."""
    return (f"block `{block_id}` output is {size:,} bytes as JSON, over the "
            f"{MAX_OUTPUT_BYTES:,}-byte limit of an execution's stored output; return less "
            "(e.g. pick the fields you need in a `transform` block)")

"""The logging session: the durable execution-log record of one execution.

``queued -> running -> success | error | cancelled``. Exactly one terminal write wins (the store's
conditional update); a repeated completion returns the first outcome; a failed terminal write is
retried with backoff. The finalized marker lives in the store, never in process memory.

Writes are synchronous and few: opening is one transaction; a block's final entry is written
when it ends (the last block's together with the terminal state); a block shows as ``running``
only once it has run for ``running_entry_delay`` (a block that ends sooner gets its final entry
alone).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from orchestrator.domain.correlation import Correlation
from orchestrator.domain.records import (
    BlockEntry,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    WorkflowRecord,
)
from orchestrator.domain.retry import STORE_WRITE_DELAYS, retry_call
from orchestrator.exceptions import StoreError
from orchestrator.store import Store

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
T = TypeVar("T")
RUNNING_ENTRY_DELAY = 0.5  # seconds; short enough that a watcher sees a slow block as running


def utc_now() -> datetime:
    return datetime.now(UTC)


class LoggingSession:
    """Writes one execution's log through ``store``; ``clock`` is injected for tests."""

    def __init__(self, store: Store, correlation: Correlation, *, clock: Clock = utc_now,
                 retry_delays: Sequence[float] = STORE_WRITE_DELAYS,
                 running_entry_delay: float = RUNNING_ENTRY_DELAY, attempt: int = 0) -> None:
        self.store = store
        self.correlation = correlation
        self.clock = clock
        self.retry_delays = retry_delays
        self.running_entry_delay = running_entry_delay
        self.attempt = attempt  # set by open(), or given for an execution opened with a batch

    def open(self, *, dagster_run_id: str) -> tuple[WorkflowRecord, ExecutionRecord]:
        """Begin this attempt in one transaction: the workflow's current version, and the
        execution marked running with it (created when it does not exist yet: a run launched by
        hand). Raises :class:`NotFound` for a missing or deleted workflow, writing nothing."""
        workflow, record = self.store.open_execution(self.correlation,
                                                     dagster_run_id=dagster_run_id,
                                                     now=self.clock())
        self.attempt = record.attempts
        return workflow, record

    def block(self, entry: BlockEntry) -> None:
        """Write a block's entry now (a failed write raises: a pipeline fault)."""
        self.store.record_block(self.correlation.execution_id, attempt=self.attempt,
                                entry=entry)

    def block_running(self, entry: BlockEntry) -> None:
        """Show a slow block as running. Only a progress mark: the block is already running on
        another thread, so a failed write is logged, not raised (raising would abandon the
        block mid-way); the block's final entry is written, or fails the execution, as usual."""
        try:
            self.block(entry)
        except StoreError:
            log.warning("could not mark block %s as running; its final entry follows",
                        entry.block_id, extra=self.correlation.log_fields())

    def finish(self, *, status: ExecutionStatus, outcome: Outcome, finalized_by: str,
               error: dict[str, Any] | None = None, output: Any = None,
               block: BlockEntry | None = None) -> ExecutionRecord:
        """The terminal write, retried with backoff while the failure is transient; returns the
        stored (first) outcome. ``block``: the final entry of the block that ended the
        execution, written in the same transaction."""
        record, won = with_store_retries(
            lambda: self.store.finish_execution(
                self.correlation.execution_id, status=status, outcome=outcome,
                finalized_by=finalized_by, now=self.clock(), error=error, output=output,
                block=(self.attempt, block) if block is not None else None),
            self.retry_delays, context=self.correlation.log_fields())
        if not won:
            log.info("execution already finalized as %s; keeping the first outcome",
                     record.outcome, extra=self.correlation.log_fields())
        return record


def with_store_retries(call: Callable[[], T], delays: Sequence[float] = STORE_WRITE_DELAYS, *,
                       context: dict[str, Any] | None = None) -> T:
    """``call()``, retried after each delay while the store fails transiently (the retry
    policy); the last failure, or one that trying again cannot fix, raises."""
    return retry_call(call, delays, what="store write", log_extra=context)


class Heartbeat:
    """Renews a lease every ``interval`` seconds on a daemon thread, for as long as the ``with``
    block runs: ``beat(now)`` renews it and returns False once nothing is left to renew (the
    execution, or every execution of a batch, is finalized). A run worker that dies stops
    renewing; the reconciler notices."""

    def __init__(self, beat: Callable[[datetime], bool], *, name: str, interval: float,
                 clock: Clock = utc_now) -> None:
        self.beat = beat
        self.name = name
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{name}")

    @classmethod
    def of_execution(cls, store: Store, execution_id: str, *, interval: float) -> Heartbeat:
        return cls(lambda now: store.heartbeat(execution_id, now), name=execution_id,
                   interval=interval)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat(self.clock()):
                    return  # finalized: nothing left to renew
            except StoreError:
                log.warning("heartbeat of %s failed; retrying in %ss", self.name, self.interval)

"""The logging session: the durable execution-log record of one execution.

``queued -> running -> success | error | cancelled``. Exactly one terminal write wins (the store's
conditional update); a repeated completion returns the first outcome; a failed terminal write is
retried with backoff. The finalized marker lives in the store, never in process memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from orchestrator.domain.correlation import Correlation
from orchestrator.domain.records import BlockEntry, ExecutionRecord, ExecutionStatus, Outcome
from orchestrator.exceptions import StoreError
from orchestrator.store import Store

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
T = TypeVar("T")
STORE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)


def utc_now() -> datetime:
    return datetime.now(UTC)


class LoggingSession:
    """Writes one execution's log through ``store``; ``clock`` is injected for tests."""

    def __init__(self, store: Store, correlation: Correlation, *, clock: Clock = utc_now,
                 retry_delays: Sequence[float] = STORE_RETRY_DELAYS) -> None:
        self.store = store
        self.correlation = correlation
        self.clock = clock
        self.retry_delays = retry_delays
        self.attempt = 0

    def open(self, *, dagster_run_id: str, workflow_version: int | None) -> ExecutionRecord:
        """Mark the execution running for this attempt, creating it when it does not exist yet
        (a run launched by hand): one transaction."""
        record = self.store.open_execution(self.correlation, dagster_run_id=dagster_run_id,
                                           workflow_version=workflow_version, now=self.clock())
        self.attempt = record.attempts
        return record

    def block(self, entry: BlockEntry) -> None:
        self.store.record_block(self.correlation.execution_id, self.attempt, entry)

    def finish(self, *, status: ExecutionStatus, outcome: Outcome, finalized_by: str,
               error: dict[str, Any] | None = None, output: Any = None) -> ExecutionRecord:
        """The terminal write, retried with backoff; returns the stored (first) outcome."""
        record, won = with_store_retries(
            lambda: self.store.finish_execution(
                self.correlation.execution_id, status=status, outcome=outcome,
                finalized_by=finalized_by, now=self.clock(), error=error, output=output),
            self.retry_delays, context=self.correlation.log_fields())
        if not won:
            log.info("execution already finalized as %s; keeping the first outcome",
                     record.outcome, extra=self.correlation.log_fields())
        return record


def with_store_retries(call: Callable[[], T], delays: Sequence[float] = STORE_RETRY_DELAYS, *,
                       context: dict[str, Any] | None = None) -> T:
    """``call()``, retried after each delay while the store fails; the last failure raises."""
    for delay in (*delays, None):
        try:
            return call()
        except StoreError:
            if delay is None:
                raise
            log.warning("store write failed; retrying in %.1fs", delay, extra=context)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class Heartbeat:
    """Renews the execution's lease every ``interval`` seconds on a daemon thread, for as long as
    the ``with`` block runs. A run worker that dies stops renewing; the reconciler notices."""

    def __init__(self, store: Store, execution_id: str, *, interval: float,
                 clock: Clock = utc_now) -> None:
        self.store = store
        self.execution_id = execution_id
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"heartbeat-{execution_id}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.store.heartbeat(self.execution_id, self.clock()):
                    return  # finalized: nothing left to renew
            except StoreError:
                log.warning("heartbeat of execution %s failed; retrying in %ss",
                            self.execution_id, self.interval)

"""The one classifier and the one retry policy: what each exception means, and that nothing
retries an error that trying again cannot fix (a non-transient store error was retried four
times, 3.7 s, by the logging session's terminal write before it was keyed on ``retryable``)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.failures import classify, retryable, retryable_status
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.domain.retry import STORE_WRITE_DELAYS, exponential, retry_call
from orchestrator.exceptions import (
    Conflict,
    DagsterStorageError,
    InvalidInput,
    NotFound,
    Problem,
    StoreError,
    WorkflowError,
)
from orchestrator.execution.session import LoggingSession


@pytest.mark.parametrize(("exc", "outcome", "in_block"), [
    (InvalidInput(Problem(field="f", message="m")), Outcome.USER_ERROR, Outcome.USER_ERROR),
    (NotFound("workflow", "w"), Outcome.USER_ERROR, Outcome.USER_ERROR),
    (Conflict("seen"), Outcome.USER_ERROR, Outcome.USER_ERROR),
    (WorkflowError("bad reference"), Outcome.USER_ERROR, Outcome.USER_ERROR),
    (StoreError("write"), Outcome.PIPELINE_FAULT, Outcome.PIPELINE_FAULT),
    (DagsterStorageError("OSError"), Outcome.PIPELINE_FAULT, Outcome.PIPELINE_FAULT),
    (ValueError("a bug, or a python block raising"), Outcome.PIPELINE_FAULT,
     Outcome.USER_ERROR),
    (KeyboardInterrupt(), Outcome.CANCELLED, Outcome.CANCELLED),
])
def test_classify(exc: BaseException, outcome: Outcome, in_block: Outcome) -> None:
    assert classify(exc) is outcome
    assert classify(exc, raised_by_block=True) is in_block


def test_classify_reads_our_error_in_the_chain_of_causes() -> None:
    try:
        try:
            raise StoreError("read")
        except StoreError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        assert classify(exc, raised_by_block=True) is Outcome.PIPELINE_FAULT


def test_retryable() -> None:
    assert retryable(StoreError("write"))
    assert not retryable(StoreError("write", transient=False))
    assert not retryable(WorkflowError("bad"))
    assert not retryable(ConnectionError("not ours: the caller translates it first"))
    assert [s for s in (200, 400, 404, 408, 409, 429, 500, 503) if retryable_status(s)] == \
        [408, 429, 500, 503]
    assert exponential(0.5, 4, cap=1.5) == (0.5, 1.0, 1.5, 1.5)


class FailingStore:
    """A store whose terminal write fails with ``error`` ``failures`` times, then works."""

    def __init__(self, error: StoreError, failures: int) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    def finish_execution(self, execution_id: str, **_: Any) -> tuple[Any, bool]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return _Record(), True


class _Record:
    outcome = Outcome.SUCCESS


def _finish(store: FailingStore, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[float]]:
    sleeps: list[float] = []
    monkeypatch.setattr("orchestrator.domain.retry.time.sleep", sleeps.append)
    correlation = Correlation(execution_id="e-1", request_id="r-1", source=Source.API,
                              workflow="digest", environment="default")
    session = LoggingSession(store, correlation)  # type: ignore[arg-type]
    return session.finish(status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                          finalized_by="core"), sleeps


def test_terminal_write_retries_a_transient_store_error_with_the_policy_delays(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FailingStore(StoreError("finish"), failures=2)
    record, sleeps = _finish(store, monkeypatch)
    assert record.outcome is Outcome.SUCCESS
    assert (store.calls, sleeps) == (3, list(STORE_WRITE_DELAYS[:2]))


def test_terminal_write_never_retries_a_non_transient_store_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("orchestrator.domain.retry.time.sleep", sleeps.append)
    store = FailingStore(StoreError("finish", transient=False), failures=1)
    session = LoggingSession(store, Correlation(  # type: ignore[arg-type]
        execution_id="e-1", request_id="r-1", source=Source.API, workflow="digest",
        environment="default"))
    with pytest.raises(StoreError) as raised:
        session.finish(status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                       finalized_by="core")
    assert not raised.value.transient
    assert (store.calls, sleeps) == (1, [])


def test_retries_spent_raise_the_last_failure() -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise StoreError(f"attempt {len(calls)}")

    with pytest.raises(StoreError, match="attempt 3"):
        retry_call(call, (0.0, 0.0))

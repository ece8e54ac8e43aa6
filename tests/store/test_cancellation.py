"""Cancelling an execution, on SQLite, PostgreSQL and the in-memory store: whatever its state,
one transaction decides what happens (buffered or queued: cancelled now; running: a request
the reconciler carries out; finished: nothing)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.ingest import TriggerRequest
from orchestrator.domain.records import CancelOutcome, ExecutionStatus, Outcome
from orchestrator.exceptions import NotFound
from orchestrator.store import Store
from tests.conftest import ALL_BACKENDS, NOW

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
LATER = NOW + timedelta(seconds=5)


def _c(execution_id: str) -> Correlation:
    return Correlation(execution_id=execution_id, request_id="r", source=Source.API,
                       workflow="digest", environment="default", payload={"user": "ada"})


def test_a_queued_execution_ends_cancelled_at_once(store: Store, make_workflow) -> None:
    make_workflow()
    store.create_execution(_c("q"), NOW, enqueue=True)
    record, outcome = store.cancellation.cancel("q", LATER)
    assert outcome is CancelOutcome.CANCELLED
    assert (record.status, record.outcome, record.finalized_by, record.finished_at) == (
        ExecutionStatus.CANCELLED, Outcome.CANCELLED, "cancel", LATER)
    assert record.error == {"message": "cancelled on request"}
    assert store.queued_triggers(10) == []  # no run will be requested for it
    assert store.list_alerts() == []
    # Again: it has finished; nothing changes.
    again, outcome = store.cancellation.cancel("q", LATER + timedelta(seconds=1))
    assert (outcome, again.finished_at) == (CancelOutcome.FINISHED, LATER)


def test_a_buffered_execution_is_cancelled_without_ever_running(store: Store,
                                                                make_workflow) -> None:
    make_workflow()
    [admission] = store.admission.admit([TriggerRequest(correlation=_c("b"))], NOW,
                                        buffer=[True])
    assert admission.buffered
    record, outcome = store.cancellation.cancel("b", LATER)
    assert (outcome, record.status) == (CancelOutcome.CANCELLED, ExecutionStatus.CANCELLED)
    assert store.queue.drain(10) == []  # gone from the buffer: the drainer makes nothing of it
    assert store.get_execution("b").status is ExecutionStatus.CANCELLED


def test_a_running_execution_gets_a_request(store: Store, make_workflow) -> None:
    make_workflow()
    store.create_execution(_c("r"), NOW, enqueue=True)
    store.start_execution("r", dagster_run_id="run-r", workflow_version=1, now=NOW)
    record, outcome = store.cancellation.cancel("r", LATER)
    assert (outcome, record.status, record.cancel_requested_at) == (
        CancelOutcome.REQUESTED, ExecutionStatus.RUNNING, LATER)
    store.cancellation.cancel("r", LATER + timedelta(seconds=9))  # the first request stands
    [requested] = store.cancellation.cancel_requested()
    assert (requested.execution_id, requested.cancel_requested_at) == ("r", LATER)


def test_an_unknown_execution_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.cancellation.cancel("nope", NOW)

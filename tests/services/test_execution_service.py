"""The execution service on the in-memory store (no database): the operator's log listing,
what one environment sees (the burst buffer included) and reading one execution."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.records import CancelOutcome, ExecutionStatus, Outcome
from orchestrator.exceptions import Conflict, NotFound
from orchestrator.services.executions import STATUSES, ExecutionService
from orchestrator.services.triggers import IngestService, TriggerInput
from orchestrator.store import Store
from tests.conftest import NOW

pytestmark = pytest.mark.backends("memory")


@pytest.fixture
def service(store: Store) -> ExecutionService:
    return ExecutionService(store.executions, store.admission, store.cancellation)


def _queued(store: Store, environment: str, at_seconds: int) -> str:
    correlation = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                              workflow="digest", environment=environment)
    store.create_execution(correlation, NOW + timedelta(seconds=at_seconds), enqueue=True)
    return correlation.execution_id


def test_statuses_are_the_enum() -> None:
    assert STATUSES == ("queued", "running", "success", "error", "cancelled", "expired")


def test_log_lists_every_environment_newest_first_with_filters(service: ExecutionService,
                                                               store: Store) -> None:
    a, b, c = _queued(store, "a", 1), _queued(store, "b", 2), _queued(store, "a", 3)
    assert [r.execution_id for r in service.log()] == [c, b, a]
    assert [r.execution_id for r in service.log(environment="a", limit=1)] == [c]
    assert service.log(status=ExecutionStatus.SUCCESS) == []
    assert len(service.log(status=ExecutionStatus.QUEUED)) == 3


def test_visible_and_find_include_the_burst_buffer(service: ExecutionService, store: Store,
                                                   make_workflow) -> None:
    make_workflow(environment="a")
    gate = BurstPolicy(enabled=True, environments={"a"}, threshold=1,
                       window=timedelta(seconds=60))
    ingest = IngestService(store.admission, gate)
    admitted = [ingest.trigger(environment="a", workflow="digest", request_id=None,
                               source=Source.API, now=NOW + timedelta(seconds=i),
                               items=[TriggerInput(payload={})])[0] for i in range(3)]
    assert any(a.buffered for a in admitted)
    buffered = next(a for a in admitted if a.buffered)
    seen = service.visible("a")
    assert {v.execution.execution_id for v in seen} == {a.execution_id for a in admitted}
    assert service.visible("a", status=ExecutionStatus.RUNNING) == []
    assert service.visible("b") == []
    assert service.find(buffered.execution_id, "a").buffered
    with pytest.raises(NotFound):
        service.find(buffered.execution_id, "b")
    logged = next(a for a in admitted if not a.buffered)
    assert service.find(logged.execution_id).execution.execution_id == logged.execution_id


def test_cancel_is_scoped_to_the_environment_and_refuses_what_has_ended(store: Store) -> None:
    now = NOW
    service = ExecutionService(store.executions, store.admission, store.cancellation)
    for execution_id in ("a", "b"):
        store.create_execution(Correlation(execution_id=execution_id, request_id="r",
                                           source=Source.API, workflow="digest",
                                           environment="acme"), now, enqueue=True)
    with pytest.raises(NotFound):
        service.cancel("a", now, environment="other")
    record, outcome = service.cancel("a", now, environment="acme")
    assert (record.status, outcome) == (ExecutionStatus.CANCELLED, CancelOutcome.CANCELLED)
    with pytest.raises(Conflict, match="already ended"):
        service.cancel("a", now)
    store.finish_execution("b", status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                           finalized_by="core", now=now)
    with pytest.raises(Conflict):
        service.cancel("b", now)

"""A trigger's delay (``not_before``) and TTL (``expires_at``), on SQLite, PostgreSQL and the
in-memory store, with an injected clock: a delayed trigger is queued, visible with its
``not_before`` and not startable before it; one not started by its TTL ends ``expired``
(whether the queue sensor, its own run or its batch run finds it first), with no alert."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.ingest import TriggerRequest, parse_expiry, parse_start
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.store import Store
from tests.conftest import ALL_BACKENDS, NOW

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
MINUTE = timedelta(minutes=1)


def _request(execution_id: str, **timing: object) -> TriggerRequest:
    c = Correlation(execution_id=execution_id, request_id="r", source=Source.API,
                    workflow="digest", environment="default", payload={"user": "ada"})
    return TriggerRequest(correlation=c, **timing)  # type: ignore[arg-type]


@pytest.mark.parametrize("buffered", [False, True], ids=["queued", "buffered"])
def test_a_delayed_trigger_waits_for_its_instant(store: Store, make_workflow,
                                                 buffered: bool) -> None:
    make_workflow()
    start = NOW + 10 * MINUTE
    store.admission.admit([_request("d", not_before=start, expires_at=start + MINUTE)], NOW,
                          buffer=[buffered])
    store.queue.drain(10)  # a buffered trigger keeps its timing into the queue
    record = store.get_execution("d")
    assert (record.status, record.not_before, record.expires_at) == (
        ExecutionStatus.QUEUED, start, start + MINUTE)
    assert store.queue.queued(NOW, 10) == []
    assert store.queue.next_startable_at(NOW) == start
    assert [q.execution_id for q in store.queue.queued(start, 10)] == ["d"]


def test_the_queue_expires_what_its_ttl_left_behind(store: Store, make_workflow) -> None:
    make_workflow()
    store.admission.admit([_request("late", expires_at=NOW + MINUTE),
                           _request("fine", expires_at=NOW + 10 * MINUTE),
                           _request("forever")], NOW)
    assert store.queue.expire(NOW + MINUTE, 10) == []  # exactly at its TTL: still valid
    assert store.queue.expire(NOW + 2 * MINUTE, 10) == ["late"]
    late = store.get_execution("late")
    assert (late.status, late.outcome, late.finalized_by, late.finished_at) == (
        ExecutionStatus.EXPIRED, Outcome.EXPIRED, "ttl", NOW + 2 * MINUTE)
    assert late.error == {"message": "expired: its ttl passed before it started"}
    assert {q.execution_id for q in store.queue.queued(NOW + 2 * MINUTE, 10)} == {
        "fine", "forever"}
    assert store.list_alerts() == []


def test_a_run_that_starts_after_the_ttl_runs_nothing(store: Store, make_workflow) -> None:
    make_workflow()
    store.admission.admit([_request("own", expires_at=NOW + MINUTE),
                           _request("m1", expires_at=NOW + MINUTE), _request("m2")], NOW)
    _, record = store.executions.open_execution(store.get_execution("own").correlation(),
                                                dagster_run_id="run-1", now=NOW + 2 * MINUTE)
    assert (record.status, record.attempts) == (ExecutionStatus.EXPIRED, 0)
    batch = store.batches.claim_queued("default", ["m1", "m2"], NOW)
    assert batch is not None
    opening = store.batches.open(batch.batch_id, dagster_run_id="run-2", now=NOW + 2 * MINUTE)
    assert [r.execution_id for r in opening.running] == ["m2"]
    assert [(r.execution_id, r.status) for r in opening.finalized] == [
        ("m1", ExecutionStatus.EXPIRED)]


def test_timing_is_written_as_users_write_it() -> None:
    assert parse_start("10m", None, NOW) == NOW + 10 * MINUTE
    assert parse_start(None, "2030-01-15T13:30:00+01:00", NOW) == NOW + timedelta(
        minutes=29, seconds=30)  # an offset of its own, read as the instant it names
    assert parse_start(None, None, NOW) is None
    assert parse_expiry("1h", NOW) == NOW + timedelta(hours=1)
    assert parse_expiry(None, NOW) is None
    for delay, run_at, field in (("10m", "2031-01-01T00:00:00Z", "delay"),
                                 ("soon", None, "delay"), ("400d", None, "delay"),
                                 # past datetime's range once added: a 422, not a 500
                                 ("083239884940215.97s", None, "delay"),
                                 (None, "2020-01-01T00:00:00Z", "run_at"),
                                 (None, "2030-02-01T00:00:00", "run_at"),
                                 (None, "tomorrow", "run_at")):
        with pytest.raises(ValueError) as info:
            parse_start(delay, run_at, NOW)
        assert str(info.value).startswith(f"{field}: ")
    with pytest.raises(ValueError, match=r"^ttl: "):
        parse_expiry("0s", NOW)


def test_priority_orders_an_environment_not_the_environments(store: Store,
                                                             make_workflow) -> None:
    make_workflow()
    make_workflow(environment="other")
    store.admission.admit([_request("low", priority=-5), _request("plain"),
                           _request("high", priority=7)], NOW)
    theirs = Correlation(execution_id="theirs", request_id="r", source=Source.API,
                         workflow="digest", environment="other")
    store.admission.admit([TriggerRequest(correlation=theirs, priority=-10)],
                          NOW + timedelta(seconds=1))
    order = [q.execution_id for q in store.queue.queued(NOW + MINUTE, 10)]
    # default's turn first (it has waited longest), then other's, then default's next ...
    assert order == ["high", "theirs", "plain", "low"]
    assert store.get_execution("high").priority == 7


def test_priority_is_a_small_documented_range() -> None:
    from orchestrator.domain.ingest import parse_priority

    assert [parse_priority(v) for v in (None, -10, 0, 10)] == [0, -10, 0, 10]
    for bad in (11, -11, 1.5, "3", True):
        with pytest.raises(ValueError, match="from -10 to 10"):
            parse_priority(bad)

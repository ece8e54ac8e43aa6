"""Retention and pruning, on SQLite, PostgreSQL and the in-memory store, with an injected clock:
what is past its environment's retention goes (with its block entries, queue rows, keys and
alerts), nothing non-terminal or within retention is touched, whatever its age."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.ingest import Debounce, TriggerRequest
from orchestrator.domain.records import BlockEntry, ExecutionStatus, Outcome, TriggerStatus
from orchestrator.exceptions import InvalidInput, NotFound
from orchestrator.lifecycle.prune import prune
from orchestrator.lifecycle.retention import parse_retention
from orchestrator.services.triggers import IngestService, TriggerInput
from orchestrator.store import Store
from tests.conftest import ALL_BACKENDS, NOW

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
KEEP = timedelta(days=30)
SECOND = timedelta(seconds=1)


def _done(store: Store, execution_id: str, *, finished: timedelta, environment: str = "default",
          status: ExecutionStatus = ExecutionStatus.SUCCESS, key: str | None = None) -> str:
    """A terminal execution finished ``finished`` before NOW (created an hour before that)."""
    c = Correlation(execution_id=execution_id, request_id=f"r-{execution_id}",
                    source=Source.API, workflow="digest", environment=environment,
                    payload={"user": "ada"}, idempotency_key=key)
    at = NOW - finished
    if key is None:
        store.create_execution(c, at - timedelta(hours=1), enqueue=True)
    else:
        store.admission.admit([TriggerRequest(correlation=c, idempotency_ttl=KEEP * 2)],
                              at - timedelta(hours=1))
    store.mark_dispatched([execution_id], at - timedelta(minutes=30))
    store.start_execution(execution_id, dagster_run_id=f"run-{execution_id}",
                          workflow_version=1, now=at - timedelta(minutes=1))
    store.record_block(execution_id, 1, BlockEntry(
        block_id="fetch", block_type="transform", status="success", started_at=at - SECOND,
        finished_at=at, duration_ms=1.0, error=None, output_size=2))
    store.finish_execution(execution_id, status=status, outcome=Outcome.SUCCESS
                           if status is ExecutionStatus.SUCCESS else Outcome.PIPELINE_FAULT,
                           finalized_by="core", now=at)
    return execution_id


def _exists(store: Store, execution_id: str) -> bool:
    try:
        store.get_execution(execution_id)
    except NotFound:
        return False
    return True


def _kept(store: Store, ids: Sequence[str]) -> list[str]:
    return [i for i in ids if _exists(store, i)]


def test_only_terminal_executions_past_retention_are_pruned(store: Store, make_workflow) -> None:
    make_workflow()
    outside = _done(store, "outside", finished=KEEP + SECOND)
    boundary = _done(store, "boundary", finished=KEEP)  # exactly the retention: kept
    inside = _done(store, "inside", finished=KEEP - SECOND)
    ancient = NOW - timedelta(days=400)
    store.create_execution(Correlation(execution_id="queued", request_id="r", source=Source.API,
                                       workflow="digest", environment="default"),
                           ancient, enqueue=True)
    store.create_execution(Correlation(execution_id="running", request_id="r", source=Source.API,
                                       workflow="digest", environment="default"), ancient)
    store.start_execution("running", dagster_run_id="run-x", workflow_version=1, now=ancient)

    assert [e.execution_id for e in store.retention.expired(NOW, KEEP, 10)] == [outside]
    assert store.retention.count_expired(NOW, KEEP) == 1
    report = prune(store, now=NOW, default_retention=KEEP)
    assert report.removed["executions"] == 1 and report.removed["blocks"] == 1
    assert _kept(store, [outside, boundary, inside, "queued", "running"]) == [
        boundary, inside, "queued", "running"]
    assert store.get_execution("queued").status is ExecutionStatus.QUEUED
    assert store.retention.prune_totals()["executions"] == 1
    assert prune(store, now=NOW, default_retention=KEEP).removed["executions"] == 0


def test_an_environment_override_applies_to_it_alone(store: Store, make_workflow) -> None:
    make_workflow()
    make_workflow(environment="acme")
    store.retention.set_retention("acme", timedelta(days=7), NOW)
    assert store.retention.retentions() == {"acme": timedelta(days=7)}
    acme_old = _done(store, "acme-old", finished=timedelta(days=7) + SECOND, environment="acme")
    acme_new = _done(store, "acme-new", finished=timedelta(days=7) - SECOND, environment="acme")
    default_old = _done(store, "default-8d", finished=timedelta(days=8))
    prune(store, now=NOW, default_retention=KEEP)
    assert _kept(store, [acme_old, acme_new, default_old]) == [acme_new, default_old]

    store.retention.set_retention("acme", None, NOW)  # back to the default
    assert store.retention.retentions() == {}
    prune(store, now=NOW, default_retention=timedelta(days=7, hours=12))
    assert _kept(store, [acme_new, default_old]) == [acme_new]


def test_alerts_keys_and_queue_rows_go_with_their_execution(store: Store, make_workflow) -> None:
    make_workflow()
    old = _done(store, "old", finished=KEEP * 2, status=ExecutionStatus.ERROR, key="k-old")
    new = _done(store, "new", finished=timedelta(days=1), status=ExecutionStatus.ERROR)
    for e in (old, new):
        store.record_alert(execution_id=e, kind="pipeline_fault", message="boom", details={},
                           environment="default", workflow="digest", now=NOW, deliver=False)
    report = prune(store, now=NOW, default_retention=KEEP)
    assert {k: report.removed[k] for k in ("executions", "alerts", "idempotency_keys")} == {
        "executions": 1, "alerts": 1, "idempotency_keys": 1}
    assert [a.execution_id for a in store.list_alerts()] == [new]
    # The key went with its execution: the same key now makes a new execution.
    c = Correlation(execution_id="again", request_id="r", source=Source.API, workflow="digest",
                    environment="default", idempotency_key="k-old")
    [admission] = store.admission.admit([TriggerRequest(correlation=c)], NOW)
    assert admission.execution_id == "again"


def test_a_batch_and_its_incident_alert_go_with_the_last_member(store: Store,
                                                                make_workflow) -> None:
    make_workflow()
    first = _done(store, "m1", finished=KEEP * 2)
    second = _done(store, "m2", finished=timedelta(days=1))
    store.record_alert(execution_id=None, kind="batch_fault", message="run died",
                       details={"count": 2}, environment="default", workflow=None, now=NOW,
                       deliver=False, incident="run:r1", executions=[first, second])
    assert store.retention.emptied_batches([first]) == []  # no batch: nothing to empty
    prune(store, now=NOW, default_retention=KEEP)
    [alert] = store.list_alerts()
    assert alert.kind == "batch_fault"  # m2 is still named by it
    prune(store, now=NOW + timedelta(days=30), default_retention=KEEP)
    assert store.list_alerts() == [] and _kept(store, [first, second]) == []


def test_housekeeping_removes_only_what_nothing_can_read(store: Store, make_workflow) -> None:
    make_workflow()
    finished = _done(store, "finished", finished=timedelta(days=1))  # its queue row: dispatched
    waiting = Correlation(execution_id="waiting", request_id="r", source=Source.API,
                          workflow="digest", environment="default", idempotency_key="live")
    store.admission.admit([TriggerRequest(correlation=waiting, idempotency_ttl=timedelta(hours=1),
                                          debounce=Debounce(key="d", delay=timedelta(hours=2)))],
                          NOW - timedelta(minutes=1))
    expired = Correlation(execution_id="expired-key", request_id="r", source=Source.API,
                          workflow="digest", environment="default", idempotency_key="old")
    store.admission.admit([TriggerRequest(correlation=expired, idempotency_ttl=timedelta(hours=1))],
                          NOW - timedelta(hours=2))

    dry = prune(store, now=NOW, default_retention=KEEP, dry_run=True)
    assert (dry.removed["idempotency_keys"], dry.removed["queue"]) == (1, 1)
    assert dry.removed["executions"] == 0
    assert store.retention.prune_totals() == {}  # a dry run removes nothing
    report = prune(store, now=NOW, default_retention=KEEP)
    assert (report.removed["idempotency_keys"], report.removed["queue"]) == (1, 1)
    assert report.removed["debounces"] == 0  # its execution still waits in the queue
    queued = {q.execution_id: q.status for q in store.queued_triggers(100)}
    assert queued == {"waiting": TriggerStatus.QUEUED, "expired-key": TriggerStatus.QUEUED}
    assert _exists(store, finished)  # only its queue row went


def test_housekeeping_removes_the_burst_counters_of_environments_that_went_quiet(
        store: Store, make_workflow) -> None:
    """An environment admitting again sweeps its own old counters; one that stopped leaves
    them to the prune, which removes those older than the longest window allowed (a day)."""
    make_workflow()
    make_workflow(environment="quiet")
    gate = BurstPolicy(enabled=True, environments=frozenset({"*"}), threshold=100,
                       window=timedelta(minutes=1))
    service = IngestService(store.admission, gate)
    for environment, at in (("quiet", NOW - timedelta(days=2)),
                            ("default", NOW - timedelta(hours=1))):
        service.admit([service.prepare(environment=environment, workflow="digest",
                                       items=(TriggerInput(payload={}),), request_id=None,
                                       source=Source.API, now=at)])
    assert prune(store, now=NOW, default_retention=KEEP, dry_run=True).removed[
        "burst_counts"] == 1
    assert prune(store, now=NOW, default_retention=KEEP).removed["burst_counts"] == 1
    assert prune(store, now=NOW, default_retention=KEEP).removed["burst_counts"] == 0
    assert prune(store, now=NOW + timedelta(days=1), default_retention=KEEP).removed[
        "burst_counts"] == 1


def test_a_prune_is_bounded_and_the_next_one_goes_on(store: Store, make_workflow) -> None:
    make_workflow()
    ids = [_done(store, f"e{i}", finished=KEEP * 2 + i * SECOND) for i in range(5)]
    first = prune(store, now=NOW, default_retention=KEEP, batch_size=2, max_batches=1)
    assert (first.removed["executions"], first.more) == (2, True)
    assert _kept(store, ids) == ids[:3]  # the oldest-finished went first
    rest = prune(store, now=NOW, default_retention=KEEP, batch_size=2)
    assert (rest.removed["executions"], rest.more) == (3, False)
    assert store.retention.prune_totals()["executions"] == 5


def test_a_prune_killed_after_deleting_runs_resumes(store: Store, make_workflow) -> None:
    make_workflow()
    ids = [_done(store, f"e{i}", finished=KEEP * 2) for i in range(3)]
    keep = _done(store, "keep", finished=timedelta(days=1))

    class Killed(Exception):
        pass

    class DiesAfterRuns:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def delete_runs(self, execution_ids: Sequence[str], batch_ids: Sequence[str]) -> int:
            self.seen += execution_ids
            raise Killed  # the process died between Dagster's deletion and the store's

    with pytest.raises(Killed):
        prune(store, now=NOW, default_retention=KEEP, runs=DiesAfterRuns())
    assert _kept(store, [*ids, keep]) == [*ids, keep]  # nothing removed yet
    resumed = DiesAfterRuns()
    resumed.delete_runs = lambda e, b: len(e)  # type: ignore[method-assign]
    assert prune(store, now=NOW, default_retention=KEEP, runs=resumed).dagster_runs == 3
    assert _kept(store, [*ids, keep]) == [keep]


@pytest.mark.parametrize("raw", ["0", "30m", "-1d", "soon", "", "1e999"])
def test_bad_retention_names_the_field(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_retention(raw, "RETENTION")
    assert info.value.problems[0].field == "RETENTION"


def test_retention_is_written_as_users_write_it() -> None:
    assert parse_retention("7d", "x") == timedelta(days=7)
    assert parse_retention("36h", "x") == timedelta(hours=36)
    assert parse_retention("Default", "x") is None


@pytest.mark.backends("sqlite", "postgres")
def test_pruning_beside_admission_and_dispatch_loses_nothing(store: Store,
                                                             make_workflow) -> None:
    """A pruner working through a backlog while triggers are admitted, dispatched and
    finished: every new execution survives, every expired one goes, nothing errs."""
    import threading

    make_workflow()
    old = [_done(store, f"old{i}", finished=KEEP * 2) for i in range(60)]
    stop = threading.Event()
    failures: list[BaseException] = []

    def pruner() -> None:
        try:
            while not stop.is_set():
                prune(store, now=NOW, default_retention=KEEP, batch_size=5, max_batches=2)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=pruner)
    thread.start()
    new = []
    try:
        for i in range(40):
            c = Correlation(execution_id=f"new{i}", request_id="r", source=Source.API,
                            workflow="digest", environment="default",
                            idempotency_key=f"k{i}")
            store.admission.admit([TriggerRequest(correlation=c)], NOW)
            store.mark_dispatched([c.execution_id], NOW)
            if i % 2:
                store.finish_execution(c.execution_id, status=ExecutionStatus.SUCCESS,
                                       outcome=Outcome.SUCCESS, finalized_by="core", now=NOW)
            new.append(c.execution_id)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    prune(store, now=NOW, default_retention=KEEP)
    assert _kept(store, old) == [] and _kept(store, new) == new


def test_a_paced_prune_pauses_as_long_as_each_batch_took(store: Store, make_workflow) -> None:
    make_workflow()
    for i in range(4):
        _done(store, f"e{i}", finished=KEEP * 2)
    ticks = iter(range(1000))
    slept: list[float] = []
    prune(store, now=NOW, default_retention=KEEP, batch_size=2, duty=0.5,
          monotonic=lambda: float(next(ticks)), sleep=slept.append)
    assert slept == [1.0, 1.0]  # one pause per batch of executions, as long as the batch

"""The burst gate in the store, on SQLite and PostgreSQL: an environment trips above its
threshold, and while more than half its hold remains its plain triggers are buffered without
counting the window, by one statement guarded by what the full admission would read (the
workflow live, the trip in the store); its last half counts again and extends the trip. A
server process warms these statements up before its first request, keeping nothing. The window
is the sum of each server's counters (a row per environment, tenth of the window and server):
what a server buffered uncounted it writes later, a refused trigger leaves no counter, and old
counters are swept."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine.interfaces import CacheStats

from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.correlation import Source
from orchestrator.domain.ingest import Admission, AdmissionJob
from orchestrator.domain.workflow import parse_workflow
from orchestrator.exceptions import NotFound
from orchestrator.execution.blocks import block_types
from orchestrator.services.triggers import IngestService, TriggerInput
from orchestrator.store import Store
from orchestrator.store import engine as engines
from orchestrator.store import tables as t
from tests.conftest import ALL_BACKENDS, NOW, SQL_BACKENDS, row_count, workflow_doc

pytestmark = pytest.mark.backends(*ALL_BACKENDS)

GATE = BurstPolicy(enabled=True, environments=frozenset({"acme"}), threshold=3,
                   window=timedelta(seconds=60), hold=timedelta(seconds=60))


def _job(service: IngestService, now: datetime, *items: TriggerInput,
         environment: str = "acme") -> AdmissionJob:
    return service.prepare(environment=environment, workflow="digest",
                           items=items or (TriggerInput(payload={}),), request_id=None,
                           source=Source.API, now=now)


def _admitted(service: IngestService, *jobs: AdmissionJob) -> list[Admission]:
    results = service.admit(jobs)
    assert all(isinstance(result, list) for result in results), results
    return [admission for result in results for admission in result]  # type: ignore[union-attr]


def _tripped(store: Store, service: IngestService, now: datetime = NOW) -> None:
    """Four plain triggers at ``now``: three queued, the fourth trips the environment."""
    admitted = _admitted(service, *(_job(service, now) for _ in range(4)))
    assert [a.buffered for a in admitted] == [False, False, False, True]


def _buffered(store: Store) -> list[str]:
    """The buffered executions of ``acme``, as readers see them."""
    return [v.execution.execution_id for v in store.admission.visible("acme") if v.buffered]


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(" ".join(statement.split()))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)


def test_a_tripped_environment_buffers_every_field_of_its_plain_triggers(
        store: Store, make_workflow) -> None:
    make_workflow(environment="acme")
    make_workflow(environment="calm")
    service = IngestService(store.admission, GATE)
    _tripped(store, service)
    later = NOW + timedelta(seconds=5)
    items = [TriggerInput(payload={"n": 1, "text": "é\u2603"}, delay=timedelta(minutes=2),
                          ttl=timedelta(minutes=10), priority=-3, concurrency_key="tenant-7"),
             TriggerInput(payload={"n": 2})]
    jobs = [_job(service, later, item) for item in items]
    calm = _job(service, later, environment="calm")  # not gated: queued, in the same group
    *buffered, queued = _admitted(service, *jobs, calm)
    assert [a.buffered for a in buffered] == [True, True] and not queued.buffered
    assert store.get_execution(queued.execution_id).status.value == "queued"
    first, second = (store.admission.find(a.execution_id, "acme") for a in buffered)
    assert first.buffered and second.buffered
    one, two = first.execution, second.execution
    assert (one.payload, one.request_id, one.environment, one.workflow, one.source.value,
            one.created_at, one.not_before, one.expires_at, one.priority,
            one.concurrency_key, one.idempotency_key) == \
        ({"n": 1, "text": "é\u2603"}, jobs[0].requests[0].correlation.request_id, "acme",
         "digest", "api", later, later + timedelta(minutes=2),
         later + timedelta(minutes=12), -3, "tenant-7", None)
    assert (two.payload, two.not_before, two.expires_at, two.priority, two.concurrency_key) \
        == ({"n": 2}, None, None, 0, None)


def test_a_group_of_several_tripped_workflows_buffers_each_trigger_as_its_own(
        store: Store, make_workflow) -> None:
    """One group, its jobs in no particular order, of two tripped environments and two
    workflows of one of them: each trigger is buffered with its own environment and workflow
    (never the neighbour's: another tenant's trigger)."""
    gate = replace(GATE, environments=frozenset({"acme", "beta"}))
    for environment, workflow in (("acme", "digest"), ("acme", "alerts"), ("beta", "digest")):
        make_workflow(workflow, environment=environment)
    service = IngestService(store.admission, gate)
    for environment in ("acme", "beta"):
        admitted = _admitted(service, *(_job(service, NOW, environment=environment)
                                        for _ in range(4)))
        assert admitted[-1].buffered
    later = NOW + timedelta(seconds=1)
    order = [("beta", "digest"), ("acme", "alerts"), ("beta", "digest"), ("acme", "digest")]
    jobs = [service.prepare(environment=environment, workflow=workflow,
                            items=(TriggerInput(payload={"n": n}),), request_id=None,
                            source=Source.API, now=later)
            for n, (environment, workflow) in enumerate(order)]
    admitted = _admitted(service, *jobs)
    assert all(a.buffered for a in admitted)
    for n, ((environment, workflow), admission) in enumerate(zip(order, admitted, strict=True)):
        other = "beta" if environment == "acme" else "acme"
        with pytest.raises(NotFound):
            store.admission.find(admission.execution_id, other)
        found = store.admission.find(admission.execution_id, environment)
        assert found.buffered
        assert (found.execution.environment, found.execution.workflow,
                found.execution.payload) == (environment, workflow, {"n": n})


@pytest.mark.backends(*SQL_BACKENDS)
def test_while_tripped_a_group_of_plain_triggers_is_one_statement(store: Store,
                                                                  make_workflow) -> None:
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    _tripped(store, service)
    jobs = [_job(service, NOW + timedelta(seconds=1), TriggerInput(payload={"n": n}))
            for n in range(5)]
    with _statements(store) as seen:
        admitted = _admitted(service, *jobs)
    assert all(a.buffered for a in admitted) and len(_buffered(store)) == 6
    # SQLite's own BEGIN IMMEDIATE; on PostgreSQL, the PREPARE of a connection's first use
    written = [s for s in seen if not s.startswith(("BEGIN", "PREPARE orch_buffer_"))]
    one = "EXECUTE orch_buffer_" if store.engine.dialect.name == "postgresql" \
        else "INSERT INTO orch_burst_buffer"
    assert len(written) == 1 and written[0].startswith(one), seen


def test_a_workflow_deleted_while_tripped_is_refused_and_nothing_written(
        store: Store, make_workflow) -> None:
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    _tripped(store, service)
    store.delete_workflow("acme", "digest", NOW)
    [refused] = service.admit([_job(service, NOW + timedelta(seconds=1))])
    assert isinstance(refused, NotFound) and "acme/digest" in str(refused)
    assert len(_buffered(store)) == 1


@pytest.mark.backends(*SQL_BACKENDS)
def test_a_trip_the_store_does_not_hold_is_not_trusted(store: Store, make_workflow) -> None:
    """This process saw the environment tripped, but the store holds no such trip (a trip is
    never shortened; here it is removed by hand): the guard fails and the full admission
    counts the window (of one second: empty again)."""
    make_workflow(environment="acme")
    service = IngestService(store.admission, replace(GATE, window=timedelta(seconds=1)))
    _tripped(store, service)  # tripped until NOW + 60 s
    with store.db.write() as conn:
        conn.execute(t.burst_trips.delete())
    [admission] = _admitted(service, _job(service, NOW + timedelta(seconds=5)))
    assert not admission.buffered
    assert store.get_execution(admission.execution_id).status.value == "queued"


def test_the_last_half_of_the_hold_counts_and_a_sustained_burst_extends_the_trip(
        store: Store, make_workflow) -> None:
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    _tripped(store, service)  # tripped until NOW + 60 s
    for seconds in (10, 20, 40, 50):  # the first half uncounted, then counted (4 in window)
        assert all(a.buffered for a in _admitted(service, _job(
            service, NOW + timedelta(seconds=seconds))))
    # past the first trip's end, the burst (40 s and 50 s in the window) keeps it tripped
    [admission] = _admitted(service, _job(service, NOW + timedelta(seconds=65)))
    assert admission.buffered
    # a quiet window later the environment is open again
    [admission] = _admitted(service, _job(service, NOW + timedelta(seconds=200)))
    assert not admission.buffered


def test_triggers_that_bypass_the_gate_are_queued_while_tripped(store: Store,
                                                                make_workflow) -> None:
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    _tripped(store, service)
    [parent, *_] = store.list_executions(environment="acme")
    later = NOW + timedelta(seconds=1)
    plain = _job(service, later)
    child = _job(service, later, TriggerInput(payload={},
                                              parent_execution_id=parent.execution_id))
    [buffered, queued] = _admitted(service, plain, child)
    assert buffered.buffered and not queued.buffered
    assert store.get_execution(queued.execution_id).parent_execution_id == parent.execution_id


@pytest.mark.backends(*SQL_BACKENDS)
def test_warm_up_keeps_nothing_and_prepares_every_admission_statement(store_url: str) -> None:
    """What a server process does before its first request: afterwards every table is as it
    was, and the statements of an open admission, a trip and tripped groups of up to 16 are
    compiled already (SQLAlchemy's cache hits them; a fresh engine, so nothing earlier did)."""
    engines.dispose_all()
    store = Store(store_url)
    store.apply_workflow(parse_workflow(workflow_doc("digest"), block_types()), NOW)
    before = {table.name: row_count(store, table) for table in t.metadata.sorted_tables}
    store.admission.warm_up(NOW)
    assert {table.name: row_count(store, table) for table in t.metadata.sorted_tables} == \
        before
    compiled: list[tuple[str, bool]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if context is not None and context.cache_hit in (CacheStats.CACHE_HIT,
                                                         CacheStats.CACHE_MISS):
            compiled.append((" ".join(statement.split())[:60],
                             context.cache_hit is CacheStats.CACHE_HIT))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        service = IngestService(store.admission, replace(GATE, environments=frozenset({"*"})))
        first = _admitted(service, *(_job(service, NOW, environment="default")
                                     for _ in range(4)))
        assert [a.buffered for a in first] == [False, False, False, True]
        for rows in (1, 2, 3, 5, 8, 13):
            assert all(a.buffered for a in _admitted(service, *(
                _job(service, NOW + timedelta(seconds=1), environment="default")
                for _ in range(rows))))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    missed = [statement for statement, hit in compiled if not hit]
    assert compiled and not missed, missed
    engines.dispose_all()


def _counters(store: Store) -> list[tuple[datetime, str, int]]:
    """``orch_burst_counts``: (bucket, server, count) of ``acme``, oldest first."""
    c = t.burst_counts
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(  # type: ignore[misc]
            sa.select(c.c.bucket, c.c.server, c.c.count).where(c.c.environment == "acme")
            .order_by(c.c.bucket, c.c.server))]


@pytest.mark.backends(*SQL_BACKENDS)
def test_two_server_processes_count_one_window_each_in_rows_of_its_own(
        store_url: str, make_workflow) -> None:
    """Two servers (each its own store, as ``serve --workers 2`` runs them) admit into one
    window: the fourth trigger, whichever server takes it, trips the environment, and each
    server wrote only its own counter."""
    make_workflow(environment="acme")
    first, second = (IngestService(Store(store_url).admission, GATE) for _ in range(2))
    assert not any(a.buffered for a in _admitted(first, _job(first, NOW), _job(first, NOW)))
    [third] = _admitted(second, _job(second, NOW + timedelta(seconds=1)))
    [fourth] = _admitted(first, _job(first, NOW + timedelta(seconds=2)))
    assert not third.buffered and fourth.buffered
    [(bucket, server_a, a), (_, server_b, b)] = sorted(
        _counters(Store(store_url)), key=lambda row: -row[2])
    assert (a, b) == (3, 1) and server_a != server_b and bucket == GATE.bucket(NOW)


@pytest.mark.backends(*SQL_BACKENDS)
def test_triggers_buffered_uncounted_are_written_by_the_next_transaction_that_counts(
        store: Store, make_workflow) -> None:
    """Buffered by the guarded statement in the trip's first half, the triggers wait in this
    server's memory; its first admission of the last half writes them to its counters, so
    every server's count of the window includes them."""
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    _tripped(store, service)  # 4 counted at NOW, tripped until NOW + 60 s
    for _ in range(3):
        _admitted(service, _job(service, NOW + timedelta(seconds=10)))
    assert sum(n for _, _, n in _counters(store)) == 4
    _admitted(service, _job(service, NOW + timedelta(seconds=40)))
    assert [(bucket, n) for bucket, _, n in _counters(store)] == [
        (GATE.bucket(NOW), 4), (GATE.bucket(NOW + timedelta(seconds=10)), 3),
        (GATE.bucket(NOW + timedelta(seconds=40)), 1)]


@pytest.mark.backends(*SQL_BACKENDS)
def test_counters_that_left_the_window_are_deleted(store: Store, make_workflow) -> None:
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    _admitted(service, _job(service, NOW))
    later = NOW + GATE.window + GATE.bucket_width
    _admitted(service, _job(service, later))
    assert [(bucket, n) for bucket, _, n in _counters(store)] == [(GATE.bucket(later), 1)]


@pytest.mark.backends(*SQL_BACKENDS)
def test_jobs_of_different_policies_in_one_transaction_each_count_their_own_window(
        store: Store, make_workflow) -> None:
    make_workflow(environment="acme")
    make_workflow(environment="beta")
    strict = replace(GATE, environments=frozenset({"beta"}), threshold=1,
                     window=timedelta(seconds=10))
    lenient, tight = IngestService(store.admission, GATE), IngestService(store.admission, strict)
    _admitted(lenient, _job(lenient, NOW), _job(lenient, NOW))
    _admitted(tight, _job(tight, NOW, environment="beta"))
    results = store.admission.admit_jobs([_job(lenient, NOW), _job(lenient, NOW),
                                          _job(tight, NOW, environment="beta")])
    assert [[a.buffered for a in result] for result in results] == [  # type: ignore[union-attr]
        [False], [True], [True]]


@pytest.mark.backends("postgres")
def test_on_postgresql_a_plain_group_of_an_open_window_is_one_statement(
        store: Store, make_workflow) -> None:
    """A group of plain triggers of a gated environment, below the threshold: one statement
    checks the workflow, the trip and the window's room, inserts the group's executions with
    their queue rows and adds the group to this server's counter."""
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    _admitted(service, _job(service, NOW))
    with _statements(store) as seen:
        assert not any(a.buffered for a in _admitted(service, _job(service, NOW), _job(
            service, NOW)))
    executed = [s.split()[1].rsplit("_", 1)[0] for s in seen if not s.startswith("PREPARE")]
    assert executed == ["orch_open"], seen
    assert [n for _, _, n in _counters(store)] == [3]


def test_the_bucket_the_window_starts_in_counts_by_its_share_inside(
        store: Store, make_workflow) -> None:
    """Six triggers in the first tenth (6 s) of a 60 s window; 63 s later half that tenth is
    still inside, so they count as three: with threshold 10 the eighth trigger then trips."""
    make_workflow(environment="acme")
    service = IngestService(store.admission, replace(GATE, threshold=10))
    start = GATE.bucket(NOW)
    _admitted(service, *(_job(service, start) for _ in range(6)))
    later = start + timedelta(seconds=63)
    admitted = _admitted(service, *(_job(service, later) for _ in range(8)))
    assert [a.buffered for a in admitted] == [False] * 7 + [True]


@pytest.mark.backends(*SQL_BACKENDS)
def test_a_group_of_more_workflows_than_prepared_reads_the_same_window(
        store: Store, make_workflow) -> None:
    """Nine workflows in one transaction (more pairs than the prepared statements hold): the
    window is read and counted as for one."""
    names = [f"w{i}" for i in range(9)]
    for name in ["digest", *names]:
        make_workflow(name, environment="acme")
    service = IngestService(store.admission, GATE)
    _admitted(service, _job(service, NOW), _job(service, NOW))  # "digest": 2 in the window
    jobs = [service.prepare(environment="acme", workflow=name, items=(TriggerInput(payload={}),),
                            request_id=None, source=Source.API, now=NOW) for name in names]
    assert [a.buffered for a in _admitted(service, *jobs)] == [False] + [True] * 8
    assert sum(n for _, _, n in _counters(store)) == 11


@pytest.mark.backends(*SQL_BACKENDS)
def test_a_trigger_refused_for_an_unknown_workflow_leaves_no_counter(
        store: Store, make_workflow) -> None:
    """On PostgreSQL the read counts a group's plain triggers before it knows their workflows;
    a refused one is taken back, and the counter it made is gone."""
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    missing = service.prepare(environment="acme", workflow="nope",
                              items=(TriggerInput(payload={}),), request_id=None,
                              source=Source.API, now=NOW)
    [refused] = service.admit([missing])
    assert isinstance(refused, NotFound) and _counters(store) == []
    [refused, [admitted]] = service.admit([missing, _job(service, NOW)])  # type: ignore[misc]
    assert isinstance(refused, NotFound) and not admitted.buffered
    assert [n for _, _, n in _counters(store)] == [1]


@pytest.mark.backends("postgres")
def test_on_postgresql_counters_of_many_buckets_are_written_by_one_statement(
        store: Store, make_workflow) -> None:
    """Buffered uncounted across four buckets, then the window is read (the trip is due to be
    extended): the four counters are one statement, as every server does at that moment."""
    make_workflow(environment="acme")
    service = IngestService(store.admission, GATE)
    _tripped(store, service)
    seconds = (6, 12, 18, 24)  # a bucket each (6 s) after NOW's, in the trip's first half
    for s in seconds:
        [admission] = _admitted(service, _job(service, NOW + timedelta(seconds=s)))
        assert admission.buffered
    with _statements(store) as seen:
        _admitted(service, _job(service, NOW + timedelta(seconds=40)))
    counted = [s for s in seen if s.startswith("EXECUTE orch_counts_")]
    assert len(counted) == 1, seen
    assert [(bucket, n) for bucket, _, n in _counters(store)] == [
        (GATE.bucket(NOW), 4), *((GATE.bucket(NOW + timedelta(seconds=s)), 1) for s in seconds),
        (GATE.bucket(NOW + timedelta(seconds=40)), 1)]


@pytest.mark.backends(*SQL_BACKENDS)
def test_a_trip_another_server_stored_is_honoured_by_a_server_that_never_saw_it(
        store_url: str, make_workflow) -> None:
    """The first server trips the environment; the second, which admitted nothing since, buffers
    its next trigger (on PostgreSQL its one-statement path finds the trip and writes nothing,
    and the full path buffers)."""
    make_workflow(environment="acme")
    first, second = (IngestService(Store(store_url).admission, GATE) for _ in range(2))
    _tripped(Store(store_url), first)
    [admission] = _admitted(second, _job(second, NOW + timedelta(seconds=1)))
    assert admission.buffered
    assert admission.execution_id in _buffered(Store(store_url))

"""Concurrency limits, on SQLite, PostgreSQL and the in-memory store, with the queue tick driven
directly and an injected clock: an environment's ``max_concurrent`` and a workflow's
``concurrency.key_limit`` per ``concurrency_key`` are never passed (lone runs, batch runs, two
dispatchers at once); the others wait, highest priority then oldest, and run once a place
frees."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest

from orchestrator.alerts import Alerter
from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.ingest import TriggerRequest
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.store import Store
from orchestrator.triggers.dispatch import RunState
from orchestrator.triggers.queue import QueueTick, dispatch_queued_triggers
from orchestrator.triggers.schedules import dispatch_due_schedules
from tests.conftest import ALL_BACKENDS, NOW

pytestmark = pytest.mark.backends(*ALL_BACKENDS)


def _admit(store: Store, n: int, *, environment: str = "default", key: str | None = None,
           priority: int = 0, start: int = 0, prefix: str = "e") -> list[str]:
    ids = [f"{prefix}{start + i:04d}" for i in range(n)]
    for i, execution_id in enumerate(ids):
        store.admission.admit([TriggerRequest(
            correlation=Correlation(execution_id=execution_id, request_id="r",
                                    source=Source.API, workflow="digest",
                                    environment=environment),
            priority=priority, concurrency_key=key)], NOW + timedelta(seconds=start + i))
    return ids


def _tick(store: Store, *, batch: int = 1, runs: dict[str, RunState] | None = None,
          at: timedelta = timedelta(minutes=1)) -> QueueTick:
    alerter = Alerter(store=store, webhook_url=None, ui_url="http://127.0.0.1:3000",
                      clock=lambda: NOW + at)
    known = runs or {}
    return dispatch_queued_triggers(store, now=NOW + at, limit=50, alerter=alerter,
                                    runs=lambda keys: {k: known[k] for k in keys if k in known},
                                    max_batch_size=batch)


def _dispatched(tick: QueueTick, store: Store) -> list[str]:
    """Every execution the tick hands to a run (lone runs and batch runs' members)."""
    lone = [d.correlation.execution_id for d in tick.dispatches]
    return lone + [m.execution_id for b in tick.batches for m in store.batches.members(b.batch_id)]


def _finish(store: Store, ids: Sequence[str]) -> None:
    for execution_id in ids:
        store.start_execution(execution_id, dagster_run_id=f"run-{execution_id}",
                              workflow_version=1, now=NOW)
        store.finish_execution(execution_id, status=ExecutionStatus.SUCCESS,
                               outcome=Outcome.SUCCESS, finalized_by="core", now=NOW)


def test_an_environment_limit_holds_and_the_rest_wait_in_order(store: Store,
                                                               make_workflow) -> None:
    make_workflow()
    make_workflow(environment="free")
    store.concurrency.set_limit("default", 2, NOW)
    low = _admit(store, 3)
    [high] = _admit(store, 1, priority=5, start=10)
    [other] = _admit(store, 1, environment="free", prefix="f")
    first = _tick(store)
    assert sorted(_dispatched(first, store)) == sorted([high, low[0], other])
    assert store.concurrency.in_flight() == {"default": 2, "free": 1}
    # Their runs were not seen yet: the same two are requested again (same run keys), no more.
    again = _tick(store)
    assert sorted(_dispatched(again, store)) == sorted([high, low[0], other])
    _finish(store, [high])
    after = _tick(store, runs={f"trigger:{low[0]}": RunState.SUBMITTED,
                               f"trigger:{other}": RunState.SUBMITTED})
    assert _dispatched(after, store) == [low[1]]  # the oldest waiting, when a place frees
    assert store.concurrency.in_flight()["default"] == 2
    assert store.get_execution(low[2]).status is ExecutionStatus.QUEUED


def test_the_limit_counts_executions_of_batch_runs(store: Store, make_workflow) -> None:
    make_workflow()
    store.concurrency.set_limit("default", 3, NOW)
    ids = _admit(store, 10)
    tick = _tick(store, batch=10)
    [batch] = tick.batches
    assert (batch.size, tick.dispatches) == (3, [])
    assert [m.execution_id for m in store.batches.members(batch.batch_id)] == ids[:3]
    assert store.concurrency.in_flight() == {"default": 3}
    assert _dispatched(_tick(store, batch=10), store) == ids[:3]  # the same batch, again
    store.batches.mark_dispatched([batch.batch_id], NOW)
    assert _dispatched(_tick(store, batch=10), store) == []
    _finish(store, ids[:2])
    nxt = _tick(store, batch=10)
    assert _dispatched(nxt, store) == ids[3:5]
    assert store.concurrency.in_flight() == {"default": 3}


def test_a_key_limit_holds_per_key_and_defaults_to_one(store: Store, make_workflow) -> None:
    make_workflow(concurrency={"key_limit": 2})
    make_workflow("plain")
    a = _admit(store, 4, key="user-a")
    b = _admit(store, 3, key="user-b", start=10)
    assert sorted(_dispatched(_tick(store), store)) == sorted([*a[:2], *b[:2]])
    store.admission.admit([TriggerRequest(correlation=Correlation(
        execution_id=f"p{i}", request_id="r", source=Source.API, workflow="plain",
        environment="default"), concurrency_key="k") for i in range(3)], NOW)
    assert [d for d in _dispatched(_tick(store), store) if d.startswith("p")] == ["p0"]
    _finish(store, [a[0]])
    assert a[2] in _dispatched(_tick(store), store)
    assert a[3] not in _dispatched(_tick(store), store)


def test_without_a_limit_nothing_is_held_back(store: Store, make_workflow) -> None:
    make_workflow()
    ids = _admit(store, 5)
    assert sorted(_dispatched(_tick(store), store)) == ids
    assert store.concurrency.limits() == {}
    store.concurrency.set_limit("default", 4, NOW)
    store.concurrency.set_limit("default", None, NOW)
    assert store.concurrency.limits() == {}


def test_two_dispatchers_at_once_never_pass_the_limit(store_url: str, store: Store,
                                                      make_workflow) -> None:
    make_workflow()
    store.concurrency.set_limit("default", 3, NOW)
    ids = _admit(store, 12)
    pages = [store.queue.queued(NOW, 100)[:6], store.queue.queued(NOW, 100)[6:]]
    barrier = threading.Barrier(2)
    granted: list[list[str]] = [[], []]

    def grant(i: int) -> None:
        other = Store(store_url)  # as on another machine (the memory store shares its state)
        barrier.wait()
        granted[i] = other.concurrency.grant(pages[i], env_limits={"default": 3}, now=NOW)

    threads = [threading.Thread(target=grant, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted[0]) + len(granted[1]) == 3
    assert store.concurrency.in_flight() == {"default": 3}
    assert set(granted[0]) | set(granted[1]) <= set(ids)


def test_a_granted_trigger_is_handed_out_before_newer_higher_priority_ones(
        store: Store, make_workflow) -> None:
    make_workflow()
    store.concurrency.set_limit("default", 1, NOW)
    [first] = _admit(store, 1)
    [granted] = store.concurrency.grant(store.queue.queued(NOW, 10), env_limits={"default": 1},
                                        now=NOW)
    assert granted == first
    _admit(store, 60, priority=9, start=1)  # more than a page (50) ahead of it
    assert _dispatched(_tick(store), store) == [first]  # it holds the place: it runs


def test_schedule_occurrences_of_a_limited_environment_wait_in_the_queue(
        store: Store, make_workflow, make_schedule) -> None:
    """An environment's limit holds for its schedules too: their occurrences go to the queue
    (the schedule advanced in the same write) and start there within the limit."""
    make_workflow()
    store.concurrency.set_limit("default", 1, NOW)
    minute = NOW.replace(second=0, microsecond=0) + timedelta(minutes=1)
    schedules = [make_schedule(cron="* * * * *", payload={"user": f"u{i}"}, priority=i)
                 for i in range(2)]
    [running] = _admit(store, 1)
    assert _dispatched(_tick(store, at=timedelta(seconds=1)), store) == [running]
    store.start_execution(running, dagster_run_id="run-a", workflow_version=1, now=NOW)

    tick = dispatch_due_schedules(store, now=minute, limit=10, runs=lambda keys: {},
                                  catchup_window=timedelta(hours=1))
    assert (tick.queued, tick.advanced, tick.dispatches, tick.batches) == (2, 2, [], [])
    for schedule in schedules:  # advanced past the occurrence, its execution queued
        assert store.get_schedule(schedule.id).next_run_at == minute + timedelta(minutes=1)
    occurrences = sorted((e for s in schedules
                          for e in store.list_executions(trigger_id=s.id, limit=10)),
                         key=lambda e: -e.priority)
    assert [(e.status, e.scheduled_for) for e in occurrences] == \
        [(ExecutionStatus.QUEUED, minute)] * 2
    again = dispatch_due_schedules(store, now=minute + timedelta(seconds=1), limit=10,
                                   runs=lambda keys: {}, catchup_window=timedelta(hours=1))
    assert (again.queued, again.dispatches) == (0, [])  # nothing written twice

    at = minute - NOW + timedelta(seconds=2)
    assert _dispatched(_tick(store, at=at), store) == []  # the limit is taken
    _finish(store, [running])
    assert _dispatched(_tick(store, at=at), store) == [occurrences[0].execution_id]
    assert store.concurrency.in_flight() == {"default": 1}

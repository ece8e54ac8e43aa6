"""Group commit of trigger admission, on SQLite and PostgreSQL: several calls' jobs in one
transaction, each still all or none; concurrent requests gather into groups while the writer
commits; every caller hears its own job's result only once it is written."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from harness.processes import wait_for
from orchestrator.domain.correlation import Source
from orchestrator.domain.ingest import AdmissionJob
from orchestrator.exceptions import Conflict, InvalidInput, NotFound, StoreError
from orchestrator.services.triggers import IngestService, JobResult, TriggerInput
from orchestrator.store import Store
from orchestrator.store import tables as t
from orchestrator.triggers.group_commit import GroupCommit
from tests.conftest import ALL_BACKENDS, NOW, row_count

pytestmark = pytest.mark.backends(*ALL_BACKENDS)


def _count(store: Store, table: sa.Table) -> int:
    return row_count(store, table)


def _job(service: IngestService, *items: TriggerInput, workflow: str = "digest",
         environment: str = "default", receipt: tuple[str, str] | None = None,
         batched: bool = False) -> AdmissionJob:
    return service.prepare(environment=environment, workflow=workflow, items=items,
                           request_id=None, source=Source.API, now=NOW, receipt=receipt,
                           batched=batched)


def test_one_transaction_admits_each_job_or_refuses_it_alone(store: Store,
                                                             make_workflow) -> None:
    make_workflow()
    service = IngestService(store.admission)
    [parent] = service.trigger(environment="default", workflow="digest", items=[
        TriggerInput(payload={})], request_id=None, source=Source.API, now=NOW)
    jobs = [
        _job(service, TriggerInput(payload={"n": 1})),
        _job(service, TriggerInput(payload={}), workflow="missing"),
        _job(service, TriggerInput(payload={"n": 2}, idempotency_key="k-1")),
        _job(service, TriggerInput(payload={"n": 3}, idempotency_key="k-1")),
        # A batch whose second item names a parent that does not exist: none of it is written.
        _job(service, TriggerInput(payload={"n": 4}, idempotency_key="k-2"),
             TriggerInput(payload={}, parent_execution_id="no-such-execution"), batched=True),
        _job(service, TriggerInput(payload={"n": 5}, parent_execution_id=parent.execution_id)),
        _job(service, TriggerInput(payload={"n": 6}), TriggerInput(payload={"n": 7})),
    ]
    results = service.admit(jobs)

    plain, missing, keyed, same_key, bad_batch, child, pair = results
    assert isinstance(missing, NotFound) and "default/missing" in str(missing)
    assert isinstance(bad_batch, InvalidInput)
    assert bad_batch.problems[0].field == "items.1.parent_execution_id"
    assert isinstance(keyed, list) and isinstance(same_key, list)
    assert not keyed[0].deduplicated
    assert same_key[0].deduplicated and same_key[0].execution_id == keyed[0].execution_id
    written = [a for result in (plain, keyed, child, pair) if isinstance(result, list)
               for a in result]
    assert len(written) == 5
    for admission in written:
        record = store.get_execution(admission.execution_id)
        assert record.request_id == admission.request_id
    assert store.get_execution(child[0].execution_id).parent_execution_id == \
        parent.execution_id  # type: ignore[index]
    payloads = sorted(store.get_execution(a.execution_id).payload.get("n", 0) for a in written)
    assert payloads == [1, 2, 5, 6, 7]
    # The refused batch wrote nothing, not even its first item's idempotency claim.
    assert _count(store, t.executions) == 6 and _count(store, t.queued_triggers) == 6
    again = service.trigger(environment="default", workflow="digest", items=[
        TriggerInput(payload={}, idempotency_key="k-2")], request_id=None, source=Source.API,
        now=NOW)
    assert not again[0].deduplicated


def test_a_replayed_delivery_in_a_group_is_refused_alone(store: Store, make_workflow) -> None:
    make_workflow()
    service = IngestService(store.admission)
    first = _job(service, TriggerInput(payload={"a": 1}), receipt=("wh_1", "sha256=abc"))
    replay = _job(service, TriggerInput(payload={"a": 1}), receipt=("wh_1", "sha256=abc"))
    other = _job(service, TriggerInput(payload={"b": 2}))
    accepted, refused, plain = service.admit([first, replay, other])
    assert isinstance(refused, Conflict)
    assert isinstance(accepted, list) and isinstance(plain, list)
    assert _count(store, t.executions) == 2 and _count(store, t.webhook_receipts) == 1


def test_a_job_the_database_refuses_fails_alone(store: Store, make_workflow) -> None:
    """PostgreSQL refuses a NUL character in JSON (the HTTP edge refuses it first; here it
    reaches the store): the shared transaction fails, and each job is admitted again alone, so
    only that job is refused."""
    make_workflow()
    service = IngestService(store.admission)
    jobs = [_job(service, TriggerInput(payload={"n": 1})),
            _job(service, TriggerInput(payload={"bad": "a\x00b"})),
            _job(service, TriggerInput(payload={"n": 2}, idempotency_key="k"))]
    good, bad, keyed = service.admit(jobs)
    assert isinstance(good, list) and isinstance(keyed, list)
    if store.is_sql and store.engine.dialect.name == "postgresql":
        assert isinstance(bad, StoreError) and "accept the trigger" in str(bad)
        assert _count(store, t.executions) == 2
    else:  # SQLite stores it
        assert isinstance(bad, list) and _count(store, t.executions) == 3


def test_buffered_and_queued_plain_jobs_are_inserted_in_bulk(store: Store,
                                                            make_workflow) -> None:
    make_workflow()
    service = IngestService(store.admission)
    jobs = [_job(service, TriggerInput(payload={"i": i})) for i in range(6)]
    jobs = [AdmissionJob(environment=j.environment, workflow=j.workflow, requests=j.requests,
                         now=j.now + timedelta(seconds=i), buffer=(i % 2 == 0,))
            for i, j in enumerate(jobs)]
    results = service.admit(jobs)
    assert [r[0].buffered for r in results] == [True, False] * 3  # type: ignore[index]
    assert _count(store, t.burst_buffer) == 3 and _count(store, t.executions) == 3
    created = [store.get_execution(r[0].execution_id).created_at  # type: ignore[index]
               for r in results[1::2]]
    assert created == [NOW + timedelta(seconds=s) for s in (1, 3, 5)]


@pytest.mark.backends("memory")  # the writer's grouping is service logic; admission in one
# transaction on each backend is test_one_transaction_admits_each_job_or_refuses_it_alone
def test_waiting_jobs_share_the_next_transaction(store: Store, make_workflow) -> None:
    """While the writer commits one group, 40 callers arrive: they are written together, and
    each caller gets its own job's admission (or error)."""
    make_workflow()
    service = IngestService(store.admission)
    groups: list[int] = []
    release = threading.Event()

    def commit(jobs: Sequence[AdmissionJob]) -> list[JobResult]:
        groups.append(len(jobs))
        if len(groups) == 1:
            release.wait(10)
        return service.admit(jobs)

    writer: GroupCommit[AdmissionJob, list] = GroupCommit(commit, max_jobs=25)
    first = writer.submit(_job(service, TriggerInput(payload={"i": -1})))
    while not groups:
        threading.Event().wait(0.01)
    jobs = [_job(service, TriggerInput(payload={"i": i}),
                 workflow="missing" if i == 7 else "digest") for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(writer.submit, jobs))
    release.set()
    assert first.result(10)[0].execution_id
    for i, (job, future) in enumerate(zip(jobs, futures, strict=True)):
        if i == 7:
            with pytest.raises(NotFound):
                future.result(10)
            continue
        [admission] = future.result(10)
        assert admission.execution_id == job.requests[0].correlation.execution_id
        assert store.get_execution(admission.execution_id).payload == {"i": i}
    writer.close()
    assert groups == [1, 25, 15]
    assert _count(store, t.executions) == 40
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(jobs[0])


def test_a_failing_commit_fails_each_caller_of_its_group() -> None:
    def commit(jobs: Sequence[int]) -> list[int]:
        if 0 in jobs:
            raise ZeroDivisionError("boom")
        return [10 // j for j in jobs]

    writer: GroupCommit[int, int] = GroupCommit(commit)
    assert writer.submit(5).result(5) == 2
    with pytest.raises(ZeroDivisionError):
        writer.submit(0).result(5)
    assert writer.submit(2).result(5) == 5  # the writer lives on
    writer.close()


HOLDER = """
import sys, time
from pathlib import Path
from orchestrator.store.engine import sqlite_write_lock
with sqlite_write_lock(sys.argv[1]):
    Path(sys.argv[2]).write_text("held")
    while not Path(sys.argv[3]).exists():
        time.sleep(0.01)
"""


@pytest.mark.backends("sqlite")
def test_jobs_that_come_while_another_process_writes_join_the_writers_group(
        store: Store, make_workflow, tmp_path) -> None:
    """SQLite: while another process holds the file's write lock, the writer waits for its
    turn with the queue open, so the jobs that come meanwhile are admitted in its one
    transaction (not one transaction for the first job and another for the rest)."""
    make_workflow()
    service = IngestService(store.admission)
    groups: list[int] = []

    def commit(jobs: Sequence[AdmissionJob]) -> list[JobResult]:
        groups.append(len(jobs))
        return service.admit(jobs)

    held, release = tmp_path / "held", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, store.url, str(held),
                               str(release)])
    wait_for(held.exists, 30, "the other process to hold the write lock")
    writer: GroupCommit[AdmissionJob, list] = GroupCommit(
        commit, turn=store.admission.writer_turn)
    futures = [writer.submit(_job(service, TriggerInput(payload={"i": i}))) for i in range(10)]
    release.write_text("")
    assert holder.wait(timeout=30) == 0
    admitted = [future.result(30)[0].execution_id for future in futures]
    writer.close()
    assert groups == [10]
    assert [store.get_execution(e).payload for e in admitted] == [{"i": i} for i in range(10)]


def test_a_turn_that_fails_fails_its_group_and_the_writer_lives_on() -> None:
    turns = iter([OSError("no locks available"), None])

    @contextmanager
    def turn() -> Iterator[None]:
        error = next(turns, None)
        if error is not None:
            raise error
        yield

    writer: GroupCommit[int, int] = GroupCommit(lambda jobs: [j * 2 for j in jobs], turn=turn)
    with pytest.raises(OSError, match="no locks"):
        writer.submit(1).result(5)
    assert writer.submit(2).result(5) == 4
    writer.close()

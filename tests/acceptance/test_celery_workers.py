"""The production profile (``examples/dagster.yaml``) as a user runs it: PostgreSQL, the local
RabbitMQ, ``orchestrator daemon`` and ``orchestrator worker`` processes.

What this file proves: runs (single and batched) execute inside the workers' long-lived pool
processes, never a process of their own, and those are warm (connected) before the first run; terminating a run (what the Dagster UI does) stops it
in its worker, the run ends ``CANCELED`` and its execution ``cancelled`` with no alert, and the
pool process takes the next run; a worker killed with SIGKILL mid-run leaves its execution to the
heartbeat lease (one ``pipeline_fault``, one alert) while a second worker keeps draining; an
unreachable broker fails the run at launch with the broker error as an engine event, and its
execution is settled once with one alert.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from harness.celery_profile import (
    FAULTS_WORKSPACE,
    broker_unreachable,
    delete_queue,
    write_celery_home,
)
from harness.dagster_home import environment
from harness.processes import OrchestratorDaemon, Worker, free_port, wait_for
from orchestrator.dagster.storage import create_dagster_storage
from orchestrator.domain.correlation import TAG_EXECUTION_ID, Correlation, Source, new_id
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types, register_block_type
from orchestrator.store import Store
from orchestrator.store.migrate import upgrade
from tests.conftest import IN_CI, create_pg_database, drop_pg_database, workflow_doc

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
WORKSPACE = FAULTS_WORKSPACE
register_block_type("test_nap")(lambda inputs, context: None)  # the real one: faults/


@pytest.fixture
def profile(tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """A DAGSTER_HOME with ``examples/dagster.yaml`` as shipped (its queue unique to this test),
    a fresh PostgreSQL database, and the variables both need. RabbitMQ on loopback: the tests
    fail without it under CI=true (.ci/run starts it)."""
    problem = broker_unreachable()
    if problem:
        pytest.fail(problem) if IN_CI else pytest.skip(problem)
    home = tmp_path / "dagster_home"
    home.mkdir()
    url = create_pg_database("orch_celery")
    extra = write_celery_home(home, url)
    for name, value in extra.items():  # this process opens the instance too
        monkeypatch.setenv(name, value)
    yield home, url, extra
    delete_queue(home)
    drop_pg_database(url)


def _setup(url: str, home: Path, state: Path) -> Store:
    # What `orchestrator db upgrade` does, in this process (the profile's variables are set
    # here): the store, then Dagster's storage, before the processes start.
    upgrade(url)
    create_dagster_storage(home)
    store = Store(url)
    now = datetime.now(UTC)
    store.apply_workflow(parse_workflow(workflow_doc("quick"), block_types()), now)
    store.apply_workflow(parse_workflow(workflow_doc("nap", blocks=[
        {"id": "nap", "type": "test_nap", "with": {"seconds": "{{ trigger.payload.seconds }}"}}]),
        block_types()), now)
    state.mkdir()
    return store


def _enqueue(store: Store, workflow: str, **payload: Any) -> str:
    correlation = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                              workflow=workflow, environment="default",
                              payload={"user": "ada", **payload})
    store.create_execution(correlation, datetime.now(UTC), enqueue=True)
    return correlation.execution_id


def _pid(state: Path, execution_id: str) -> int | None:
    path = state / f"pid-{execution_id}"
    return int(path.read_text()) if path.exists() and path.read_text() else None


def _events(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run's event messages, as its page in the Dagster UI lists them."""
    entries = [r.event_log_entry for r in instance.get_records_for_run(run_id).records]
    return [(e.dagster_event.message if e.dagster_event else None) or e.user_message
            for e in entries]


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    """The process the run executed in, from its "Started process for run (pid: N)." event."""
    for message in _events(instance, run_id):
        if message.startswith("Started process for run (pid: "):
            return int(message.split("pid: ")[1].rstrip(")."))
    raise AssertionError(f"run {run_id} has no process event")


def _messages(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(_events(instance, run_id))


def _postgres_connections(pid: int, port: int = 5432) -> int:
    """TCP connections process ``pid`` holds open to ``port`` (its sockets' inodes, looked up in
    the kernel's connection table)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = fd.readlink().as_posix() if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    connected = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                connected += 1
    return connected


def _done(store: Store, ids: list[str]) -> bool:
    return all(store.get_execution(e).status.terminal for e in ids)


def test_runs_execute_in_warm_workers_and_terminating_one_stops_it_there(profile, tmp_path,
                                                                        sink):
    home, url, extra = profile
    state = tmp_path / "state"
    env = environment(home, url, ORCHESTRATOR_TEST_STATE_DIR=str(state),
                      ORCHESTRATOR_ALERT_WEBHOOK_URL=f"{sink.url}/alerts", **extra)
    store = _setup(url, home, state)
    worker = Worker(env, tmp_path / "worker.log", "w1", concurrency=2)
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log", WORKSPACE)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            worker.start(timeout=None)
            daemon.start()
            worker.ready()
            # Warm before the first run: each pool process holds its Dagster instance's and the
            # store's PostgreSQL connections already.
            wait_for(lambda: all(_postgres_connections(pid) >= 2 for pid in worker.pool()), 30,
                     "the pool processes to open their connections", worker.log)
            lone = []
            for _ in range(3):  # one at a time: each gets a run of its own
                lone.append(_enqueue(store, "quick"))
                wait_for(lambda: _done(store, lone), 120, "a lone execution", daemon.log)
            pile = [_enqueue(store, "quick") for _ in range(12)]
            wait_for(lambda: _done(store, pile), 120, "the pile", daemon.log)

            napping = _enqueue(store, "nap", seconds=120)
            wait_for(lambda: _pid(state, napping), 60, "the nap to start", worker.log)
            [nap_run] = instance.get_runs(dg.RunsFilter(tags={TAG_EXECUTION_ID: napping}))
            assert instance.run_coordinator.cancel_run(nap_run.run_id)  # the UI's "Terminate"
            wait_for(lambda: _done(store, [napping]), 60, "the terminated execution",
                     daemon.log)
            wait_for(lambda: instance.get_run_by_id(nap_run.run_id).is_finished, 60,
                     "the terminated run to end", daemon.log)
            after = _enqueue(store, "quick")
            wait_for(lambda: _done(store, [after]), 60, "a run after the termination",
                     daemon.log)
            pool = worker.pool()
        finally:
            daemon.stop()
            worker.stop()

        records = [store.get_execution(e) for e in [*lone, *pile, after]]
        assert {r.outcome for r in records} == {Outcome.SUCCESS}
        assert all(r.run_batch_id is None for r in records[:3])
        assert any(r.run_batch_id for r in records[3:15])  # the pile shared batch runs
        run_ids = {r.dagster_run_id for r in records if r.dagster_run_id}
        for run_id in run_ids:  # launched through the broker, executed in the worker's pool
            assert "Celery task has been forwarded to the broker." in _messages(instance, run_id)
        pids = {_run_pid(instance, run_id) for run_id in run_ids}
        assert pids <= pool and len(pids) <= 2, (pids, pool)  # two pool processes, kept warm

        assert instance.get_run_by_id(nap_run.run_id).status is dg.DagsterRunStatus.CANCELED
        nap = store.get_execution(napping)
        assert (nap.status, nap.outcome) == (ExecutionStatus.CANCELLED, Outcome.CANCELLED)
        assert _pid(state, napping) in pool  # its pool process lived on
        assert store.list_alerts() == [] and sink.hits("/alerts") == []


def test_a_killed_worker_is_settled_by_its_lease_and_the_survivor_drains(profile, tmp_path,
                                                                        sink):
    home, url, extra = profile
    state = tmp_path / "state"
    env = environment(home, url, ORCHESTRATOR_TEST_STATE_DIR=str(state),
                      ORCHESTRATOR_ALERT_WEBHOOK_URL=f"{sink.url}/alerts",
                      ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS="1",
                      ORCHESTRATOR_LEASE_TIMEOUT_SECONDS="4", ORCHESTRATOR_MAX_BATCH_SIZE="1",
                      **extra)
    store = _setup(url, home, state)
    workers = [Worker(env, tmp_path / f"worker{i}.log", f"w{i}", concurrency=1)
               for i in (1, 2)]
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log", WORKSPACE)
    try:
        for worker in workers:
            worker.start(timeout=None)
        daemon.start()
        for worker in workers:
            worker.ready()
        naps = [_enqueue(store, "nap", seconds=5), _enqueue(store, "nap", seconds=5)]
        wait_for(lambda: all(_pid(state, e) for e in naps), 90, "both naps in their workers",
                 daemon.log)
        victim = next(w for w in workers if _pid(state, naps[0]) in w.pool())
        survivor = next(w for w in workers if w is not victim)
        assert _pid(state, naps[1]) in survivor.pool()  # one run per worker
        victim.kill()
        later = [_enqueue(store, "quick") for _ in range(3)]
        wait_for(lambda: _done(store, [*naps, *later]), 120, "every execution to end",
                 daemon.log)
        wait_for(lambda: sink.hits("/alerts"), 30, "the alert", daemon.log)
    finally:
        daemon.stop()
        for worker in workers:
            worker.stop()

    killed, survived = (store.get_execution(e) for e in naps)
    assert (killed.outcome, killed.finalized_by) == (Outcome.PIPELINE_FAULT, "reconciler")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(killed.dagster_run_id or "")
        assert run is not None and run.status is dg.DagsterRunStatus.FAILURE
        # Failed by the heartbeat lease: dagster-celery cannot tell that the worker died.
        assert "no heartbeat" in _messages(instance, run.run_id)
    assert survived.outcome is Outcome.SUCCESS
    assert [store.get_execution(e).outcome for e in later] == [Outcome.SUCCESS] * 3
    # The killed worker's task was delivered again (acknowledged only when a run ends): the
    # survivor took it and did not execute the started run a second time (by then the
    # reconciler may have failed it).
    assert re.search(f"run {killed.dagster_run_id} is (STARTED|FAILURE): not executed again",
                     survivor.log.read_text())
    [alert] = store.list_alerts()
    assert alert.execution_id == naps[0]
    assert [p.json()["execution_id"] for p in sink.hits("/alerts")] == [naps[0]]


def test_an_unreachable_broker_fails_the_run_at_launch_with_one_alert(profile, tmp_path, sink):
    home, url, extra = profile
    state = tmp_path / "state"
    closed = f"pyamqp://guest:guest@127.0.0.1:{free_port()}//"
    env = environment(home, url, ORCHESTRATOR_TEST_STATE_DIR=str(state),
                      ORCHESTRATOR_ALERT_WEBHOOK_URL=f"{sink.url}/alerts",
                      **{**extra, "ORCHESTRATOR_CELERY_BROKER_URL": closed})
    store = _setup(url, home, state)
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log", WORKSPACE)
    daemon.start()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            execution_id = _enqueue(store, "quick")
            wait_for(lambda: _done(store, [execution_id]), 120, "the execution to be settled",
                     daemon.log)
            wait_for(lambda: sink.hits("/alerts"), 30, "the alert", daemon.log)
        finally:
            daemon.stop()
        [run] = instance.get_runs(dg.RunsFilter(tags={TAG_EXECUTION_ID: execution_id}))
        assert run.status is dg.DagsterRunStatus.FAILURE
        assert "Connection refused" in _messages(instance, run.run_id)
    execution = store.get_execution(execution_id)
    assert (execution.outcome, execution.finalized_by) == (Outcome.PIPELINE_FAULT, "reconciler")
    assert [a.execution_id for a in store.list_alerts()] == [execution_id]
    assert len(sink.hits("/alerts")) == 1

"""What no hook sees, with the real daemon (``orchestrator daemon``), on SQLite and PostgreSQL: a run terminated through the
Dagster instance ends ``cancelled``; a run worker killed with SIGKILL ends ``pipeline_fault`` with
one alert, within a reconciler tick of its lease expiring; a run that Dagster retries re-runs the
same execution id and finalizes it once."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from harness.dagster_home import environment, write_dagster_yaml
from harness.processes import OrchestratorDaemon, wait_for
from orchestrator.domain.correlation import TAG_EXECUTION_ID, TAG_OUTCOME, Correlation, Source
from orchestrator.domain.correlation import new_id as make_id
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types, register_block_type
from orchestrator.store import Store
from orchestrator.store.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database, workflow_doc

pytestmark = pytest.mark.slow
WORKSPACE = Path(__file__).parent / "faults" / "workspace.yaml"
# Registered here only so that `apply` accepts the document; the code server registers the real
# block (faults/definitions.py) that runs in the run worker.
register_block_type("test_nap")(lambda inputs, context: None)




@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    if request.param == "sqlite":
        yield home, f"sqlite:///{home / 'orchestrator.sqlite'}"
        return
    url = create_pg_database("orch_faults")
    yield home, url
    drop_pg_database(url)


def _setup(url: str, state: Path) -> Store:
    upgrade(url)
    store = Store(url)
    now = datetime.now(UTC)
    store.apply_workflow(parse_workflow(workflow_doc("nap", blocks=[
        {"id": "nap", "type": "test_nap", "with": {"seconds": 120}}]), block_types()), now)
    store.apply_workflow(parse_workflow(workflow_doc("flaky"), block_types()), now)
    state.mkdir()
    state.chmod(0o777)
    return store


def _enqueue(store: Store, workflow: str) -> str:
    correlation = Correlation(execution_id=make_id(), request_id=make_id(), source=Source.API,
                              workflow=workflow, environment="default", payload={"user": "ada"})
    store.create_execution(correlation, datetime.now(UTC), enqueue=True)
    return correlation.execution_id


def _runs_of(instance: dg.DagsterInstance, execution_id: str) -> list[dg.DagsterRun]:
    return list(reversed(instance.get_runs(dg.RunsFilter(tags={TAG_EXECUTION_ID: execution_id}))))


def _pid(state: Path, execution_id: str) -> int | None:
    path = state / f"pid-{execution_id}"
    return int(path.read_text()) if path.exists() and path.read_text() else None


def test_terminated_and_killed_runs_are_settled_by_the_reconciler(backend, tmp_path, sink):
    home, url = backend
    write_dagster_yaml(home, postgres_url=url if url.startswith("postgresql") else None)
    state = tmp_path / "state"
    store = _setup(url, state)
    terminated, killed = _enqueue(store, "nap"), _enqueue(store, "nap")
    env = environment(home, url, ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS="1",
                      ORCHESTRATOR_LEASE_TIMEOUT_SECONDS="4",
                      ORCHESTRATOR_MAX_BATCH_SIZE="1",  # one run each, to kill one
                      ORCHESTRATOR_ALERT_WEBHOOK_URL=f"{sink.url}/alerts",
                      ORCHESTRATOR_TEST_STATE_DIR=str(state))
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log", WORKSPACE)
    daemon.start()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            wait_for(lambda: _pid(state, terminated) and _pid(state, killed), 180,
                     "both runs to be inside their block", daemon.log)
            [run_t] = _runs_of(instance, terminated)
            assert instance.run_coordinator.cancel_run(run_t.run_id)
            os.kill(_pid(state, killed) or 0, signal.SIGKILL)

            wait_for(lambda: store.get_execution(terminated).status.terminal, 90,
                     "the terminated execution to be settled", daemon.log)
            wait_for(lambda: store.get_execution(killed).status.terminal, 90,
                     "the killed execution to be settled", daemon.log)
            [run_k] = _runs_of(instance, killed)
            wait_for(lambda: TAG_OUTCOME in instance.get_run_by_id(run_t.run_id).tags, 30,
                     "the cancelled run's outcome tag", daemon.log)
            wait_for(lambda: TAG_OUTCOME in instance.get_run_by_id(run_k.run_id).tags, 30,
                     "the killed run's outcome tag", daemon.log)
        finally:
            daemon.stop()
        run_t = instance.get_run_by_id(run_t.run_id)
        run_k = instance.get_run_by_id(run_k.run_id)

    assert run_t.status is dg.DagsterRunStatus.CANCELED
    assert run_t.tags[TAG_OUTCOME] == "cancelled"
    execution = store.get_execution(terminated)
    assert (execution.status, execution.outcome) == (ExecutionStatus.CANCELLED,
                                                     Outcome.CANCELLED)

    assert run_k.status is dg.DagsterRunStatus.FAILURE
    assert run_k.tags[TAG_OUTCOME] == "pipeline_fault"
    execution = store.get_execution(killed)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, "reconciler")
    # Dagster's code server notices its run worker died and fails the run; where it cannot (a
    # remote worker), the heartbeat lease expires (tests/dagster/test_reconciler.py).
    assert ("failed before the execution was finalized" in execution.error["message"]
            or "no heartbeat" in execution.error["message"])

    [alert] = store.list_alerts()  # one, for the killed run; none for the cancelled one
    assert alert.execution_id == killed and alert.delivery_status.value == "delivered"
    [post] = sink.hits("/alerts")
    assert post.json()["execution_id"] == killed


# Each scenario below starts a daemon (several seconds of CPU on the suite's two cores): it runs
# on one backend, the reconciler's settling of what it leaves is tested on both
# (tests/dagster/test_reconciler.py, test_batch_runs.py), and the scenario above on both.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # where run retries are used
def test_run_retried_by_dagster_reruns_the_same_execution_once(backend, tmp_path, sink):
    home, url = backend
    write_dagster_yaml(home, postgres_url=url if url.startswith("postgresql") else None,
                       run_retries=1)
    state = tmp_path / "state"
    store = _setup(url, state)
    execution_id = _enqueue(store, "flaky")
    (state / f"fail-{execution_id}").write_text("")  # the first block write fails
    env = environment(home, url, ORCHESTRATOR_ALERT_WEBHOOK_URL=f"{sink.url}/alerts",
                      ORCHESTRATOR_TEST_STATE_DIR=str(state))
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log", WORKSPACE)
    daemon.start()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            wait_for(lambda: store.get_execution(execution_id).status.terminal, 180,
                     "the retried execution to finish", daemon.log)
            wait_for(lambda: [r.status for r in _runs_of(instance, execution_id)] == [
                dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS], 60,
                "a failed run and its successful retry", daemon.log)
        finally:
            daemon.stop()
        first, retry = _runs_of(instance, execution_id)
    execution = store.get_execution(execution_id)
    assert (execution.status, execution.outcome, execution.finalized_by) == (
        ExecutionStatus.SUCCESS, Outcome.SUCCESS, "core")
    assert execution.attempts == 2 and execution.dagster_run_id == retry.run_id
    assert retry.tags[TAG_OUTCOME] == "success"
    assert TAG_OUTCOME not in first.tags  # left open for the retry, never finalized
    assert store.list_alerts() == [] and sink.hits("/alerts") == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the embedded default
def test_killed_batch_run_worker_settles_the_whole_batch_with_one_alert(backend, tmp_path,
                                                                         sink):
    """50 executions in one batch run; its worker is SIGKILLed while 8 of them are inside a
    block: all 50 end ``pipeline_fault`` (none left open, none finalized twice) and the alert
    channel gets one alert naming all 50."""
    home, url = backend
    # One run slot: the queue sensor hands all 50 to one batch run (with more free slots it
    # spreads them over several).
    write_dagster_yaml(home, postgres_url=url if url.startswith("postgresql") else None,
                       max_concurrent_runs=1)
    state = tmp_path / "state"
    store = _setup(url, state)
    members = [_enqueue(store, "nap") for _ in range(50)]
    env = environment(home, url, ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS="1",
                      ORCHESTRATOR_LEASE_TIMEOUT_SECONDS="4",
                      ORCHESTRATOR_ALERT_WEBHOOK_URL=f"{sink.url}/alerts",
                      ORCHESTRATOR_TEST_STATE_DIR=str(state))
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log", WORKSPACE)
    daemon.start()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            wait_for(lambda: sum(_pid(state, e) is not None for e in members) >= 8, 180,
                     "the batch run to be inside its blocks", daemon.log)
            [pid] = {_pid(state, e) for e in members if _pid(state, e) is not None}
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: all(store.get_execution(e).status.terminal for e in members), 90,
                     "every execution of the batch to be settled", daemon.log)
            wait_for(lambda: len(sink.hits("/alerts")) >= 1, 30, "the alert", daemon.log)
        finally:
            daemon.stop()
        [run] = instance.get_runs(dg.RunsFilter(job_name="execute_workflow_batch"))
    records = [store.get_execution(e) for e in members]
    assert {(r.status, r.outcome, r.attempts) for r in records} == {
        (ExecutionStatus.ERROR, Outcome.PIPELINE_FAULT, 1)}
    assert {r.dagster_run_id for r in records} == {run.run_id}
    assert run.status is dg.DagsterRunStatus.FAILURE
    [alert] = store.list_alerts()  # one incident, one alert
    assert alert.kind == "batch_fault" and sorted(alert.details["execution_ids"]) == sorted(
        members)
    [posted] = sink.hits("/alerts")
    assert posted.json()["count"] == 50 and posted.json()["dagster_run_id"] == run.run_id

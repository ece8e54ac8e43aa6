"""The real daemon (``orchestrator daemon``, as production runs it), killed with SIGKILL while it
dispatches due schedules and restarted: every occurrence still gets exactly one run. (A due
schedule launched with its correlation: ``test_api_daemon.py``.)"""

from __future__ import annotations

import collections
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from harness.dagster_home import environment, write_dagster_yaml
from harness.processes import OrchestratorDaemon, wait_for
from orchestrator.domain.correlation import (
    DAGSTER_RUN_KEY_TAG,
    TAG_BATCH_ID,
    TAG_BATCH_SIZE,
    TAG_EXECUTION_ID,
    derived_id,
    iso_utc,
)
from orchestrator.domain.schedules import validate_schedule
from orchestrator.store import Store
from orchestrator.store.migrate import upgrade
from tests.conftest import workflow_doc

pytestmark = pytest.mark.slow


def _store_with_workflow(url: str) -> Store:
    from orchestrator.domain.workflow import parse_workflow
    from orchestrator.execution.blocks import block_types

    upgrade(url)
    store = Store(url)
    store.apply_workflow(parse_workflow(workflow_doc(), block_types()), datetime.now(UTC))
    return store


def _runs_by_key(instance: dg.DagsterInstance) -> dict[str, list[dg.DagsterRun]]:
    runs: dict[str, list[dg.DagsterRun]] = collections.defaultdict(list)
    for run in instance.get_runs():
        key = run.tags.get(DAGSTER_RUN_KEY_TAG)
        if key:
            runs[key].append(run)
    return runs


@pytest.mark.parametrize("batch_size", [5], ids=["batch_runs"])
def test_sigkill_mid_dispatch_loses_nothing_and_duplicates_nothing(tmp_path: Path,
                                                                   batch_size: int) -> None:
    """40 one-time schedules due at once, 4 runs per tick (or 2 batch runs of 5): the daemon is
    killed twice while it works through them, then restarted. Runs are created and queued, not
    executed (the queued coordinator holds them), which is what the dispatch guarantee is about:
    every occurrence has exactly one execution, in exactly one run (its own, or one batch's)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    write_dagster_yaml(home, max_concurrent_runs=0)
    url = f"sqlite:///{home / 'orchestrator.sqlite'}"
    store = _store_with_workflow(url)
    now = datetime.now(UTC)
    due = (now + timedelta(seconds=2)).replace(microsecond=0)
    schedules = [store.create_schedule(validate_schedule(
        workflow="digest", run_at=iso_utc(due), payload={"n": i}, now=now), now)[0]
        for i in range(40)]
    expected_keys = {f"schedule:{s.id}:{iso_utc(due)}" for s in schedules}
    expected_runs = 40 // batch_size
    env = environment(home, url, ORCHESTRATOR_MAX_RUNS_PER_TICK="4" if batch_size == 1 else "2",
                      ORCHESTRATOR_MAX_BATCH_SIZE=str(batch_size))
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            for kill_after in ((5, 17) if batch_size == 1 else (1, 4)):
                daemon.start()
                wait_for(lambda n=kill_after: len(_runs_by_key(instance)) >= n, 120,
                         f"{kill_after} runs before the kill", daemon.log)
                daemon.kill()
                killed_with = len(_runs_by_key(instance))
                assert killed_with < expected_runs, "killed too late to prove anything"
                time.sleep(1)
            daemon.start()
            wait_for(lambda: all(not s.enabled for s in store.list_schedules()), 240,
                     "every one-time schedule to be dispatched and disabled", daemon.log)
        finally:
            daemon.stop()
        runs = _runs_by_key(instance)
    assert {k: len(v) for k, v in runs.items() if len(v) != 1} == {}  # no run twice
    executions = store.list_executions(limit=1000)
    assert len(executions) == 40  # one per occurrence: none lost, none twice
    assert {e.execution_id for e in executions} == {
        derived_id("execution", k) for k in expected_keys}
    if batch_size == 1:
        assert set(runs) == expected_keys
        assert {e.execution_id for e in executions} == {
            r[0].tags[TAG_EXECUTION_ID] for r in runs.values()}
        return
    # Each execution is in exactly one batch, and each batch has exactly one run.
    assert set(runs) == {f"batch:{e.run_batch_id}" for e in executions}
    assert all(run.tags[TAG_BATCH_SIZE] == str(sum(e.run_batch_id == run.tags[TAG_BATCH_ID]
                                                   for e in executions))
               for [run] in runs.values())

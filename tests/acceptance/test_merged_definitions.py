"""A team that runs Dagster already merges the orchestrator into its own code location
(``Definitions.merge(their_defs, orchestrator_definitions())``) and registers a block type from
its own module (``ORCHESTRATOR_BLOCK_MODULES``): the merge meets none of their names, the CLI
accepts a workflow using their block, and a trigger runs end to end in their code location."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from harness.dagster_home import environment, write_dagster_yaml
from harness.processes import BIN, REPO, OrchestratorDaemon, wait_for
from orchestrator.dagster.resources import STORE_RESOURCE
from orchestrator.domain.records import Outcome
from orchestrator.store import Store
from orchestrator.store.migrate import upgrade

pytestmark = pytest.mark.slow
MERGED = Path(__file__).parent / "merged"
MODULE = "tests.acceptance.merged.their_blocks"
WORKFLOW = {"name": "shouty", "blocks": [
    {"id": "loud", "type": "shout", "with": {"text": "hello {{ trigger.payload.user }}"}}]}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "orchestrator"), *args], env=env, cwd=REPO,
                          capture_output=True, text=True)


def test_merged_into_another_code_location_a_trigger_runs_their_block(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    url = f"sqlite:///{home / 'orchestrator.sqlite'}"
    upgrade(url)
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", url)
    monkeypatch.setenv("ORCHESTRATOR_BLOCK_MODULES", MODULE)
    from tests.acceptance.merged.definitions import defs  # what their code location loads

    repository = defs.get_repository_def()
    assert {"their_job", "execute_workflow", "execute_workflow_batch"} <= {
        j.name for j in repository.get_all_jobs()}
    assert {"store", STORE_RESOURCE} <= set(repository.get_top_level_resources())

    write_dagster_yaml(home)
    env = environment(home, url, ORCHESTRATOR_BLOCK_MODULES=MODULE,
                      PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    document = tmp_path / "shouty.json"
    document.write_text(json.dumps(WORKFLOW))

    store = Store(url)
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log", MERGED / "workspace.yaml")
    daemon.start()  # it loads their code location while the CLI applies and triggers
    try:
        unknown = _cli({**env, "ORCHESTRATOR_BLOCK_MODULES": "their_project.nowhere"},
                       "workflows", "apply", str(document))
        assert unknown.returncode == 2
        assert "ORCHESTRATOR_BLOCK_MODULES" in unknown.stderr and "their_project.nowhere" in \
            unknown.stderr and "Traceback" not in unknown.stderr
        applied = _cli(env, "workflows", "apply", str(document))
        assert applied.returncode == 0, applied.stderr
        triggered = _cli(env, "trigger", "shouty", "--payload", '{"user": "ada"}', "--json")
        assert triggered.returncode == 0, triggered.stderr
        execution_id = json.loads(triggered.stdout)["execution_id"]
        wait_for(lambda: store.get_execution(execution_id).status.terminal, 120,
                 "the execution to end", daemon.log)
    finally:
        daemon.stop()
    record = store.get_execution(execution_id)
    assert record.outcome is Outcome.SUCCESS, record.error
    assert record.output == {"text": "HELLO ADA"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(record.dagster_run_id or "")
        assert run is not None and run.job_name == "execute_workflow"
        assert run.remote_job_origin is not None
        assert run.remote_job_origin.location_name == "their_project"

"""Findable both ways, in the Dagster UI as a user sees it (headless Chromium on a real
``dagster-webserver``, SQLite ``DAGSTER_HOME``):

- from an execution id: the URL that ``orchestrator executions show ID --json`` prints
  (``dagster_run_url``) opens the run's page, and the page shows that execution with its
  outcome: for a single run its ``orchestrator/*`` tags (``View tags and config``), for a batch
  run the op's log line and the ``execution_table`` metadata naming each member;
- from the runs list filtered by an ``orchestrator/*`` tag in its URL
  (``/runs?q[]=tag:KEY=VALUE``): the run is there, under its short id, and the others are not.

A screenshot of every page checked is saved in the test's tmp dir (``screens/``).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import dagster as dg
import pytest
import yaml

from harness.dagster_home import environment, write_dagster_yaml
from harness.processes import BIN, CODE_SERVER, REPO, ProcessGroup, free_port
from orchestrator.dagster.batch_job import (
    batch_run_config,
    batch_run_tags,
    execute_workflow_batch,
)
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.store import Store
from orchestrator.store.engine import dispose_all
from tests.acceptance.browser import Chromium, chromium_path
from tests.conftest import IN_CI

pytestmark = pytest.mark.slow

ORCHESTRATOR = BIN / "orchestrator"
WORKFLOW = {
    "name": "digest",
    "blocks": [
        {"id": "fetch", "type": "transform", "with": {"total": 3}},
        {"id": "summary", "type": "transform",
         "with": {"count": "{{ fetch.total }}", "who": "{{ trigger.payload.user }}"}},
    ],
}
# The batch's members: the second has no `user`, so its `{{ trigger.payload.user }}` is a user
# error while the others succeed.
BATCH_PAYLOADS: list[dict[str, Any]] = [{"user": "ada"}, {}, {"user": "lin"}]
BATCH_OUTCOMES = ["success", "user_error", "success"]


@pytest.fixture
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = ("chromium is not installed: `make test` installs it (Debian: apt-get "
                   "install chromium)")
        if IN_CI:
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)
    return path


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(ORCHESTRATOR), *args], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (f"{proc.args!r} exited {proc.returncode}\nstdout:\n{stdout}\n"
                                  f"stderr:\n{stderr[-3000:]}")
    return stdout


def _ok(env: dict[str, str], *args: str) -> str:
    return _finish(_cli(env, *args))


@contextmanager
def _webserver(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``dagster-webserver`` on a free loopback port, in its own process group (it starts a
    code server); the whole group is stopped afterwards (the code server killed first), and
    nothing of it may survive."""
    port = free_port()
    server = ProcessGroup([str(BIN / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"),
                           "-h", "127.0.0.1", "-p", str(port)], env, log, abrupt=(CODE_SERVER,))
    server.start()
    assert server.process is not None
    try:
        yield f"http://127.0.0.1:{port}", server.process
    finally:
        server.stop()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path,
                   timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster-webserver exited ({process.returncode}):\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"dagster-webserver did not answer within {timeout}s:\n"
                         f"{log.read_text(errors='replace')[-3000:]}")


def _run_batch(home: Path, store_url: str) -> tuple[str, str, list[str]]:
    """Queue three executions, claim them as one batch and run it as the daemon would launch
    it (job ``execute_workflow_batch``, its run config and tags). Returns the batch id, the
    Dagster run id and the execution ids."""
    store = Store(store_url)
    now = datetime.now(UTC)
    ids = []
    for i, payload in enumerate(BATCH_PAYLOADS):
        correlation = Correlation(execution_id=new_id(), request_id=f"req-ui-{i}",
                                  source=Source.API, workflow="digest", environment="default",
                                  payload=payload)
        store.create_execution(correlation, now + timedelta(microseconds=i), enqueue=True)
        ids.append(correlation.execution_id)
    batch = store.batches.claim_queued("default", ids, now)
    assert batch is not None and batch.size == 3
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = execute_workflow_batch.execute_in_process(
            run_config=batch_run_config(batch.batch_id), instance=instance,
            tags=batch_run_tags(batch.batch_id, "default", batch.size),
            resources={STORE_RESOURCE: OrchestratorStore(database_url=store_url)})
    assert result.success
    dispose_all()
    return batch.batch_id, result.run_id, ids


def _runs_filtered(ui: str, key: str, value: str) -> str:
    """The runs list filtered by one tag, the URL form the UI itself writes when a tag filter
    is picked (``q[]=tag:KEY=VALUE``)."""
    return f"{ui}/runs?{urlencode({'q[]': f'tag:{key}={value}'})}"


def test_executions_are_findable_both_ways_in_the_dagster_ui(tmp_path: Path,
                                                             chromium: str) -> None:
    started = time.monotonic()
    home = tmp_path / "home"
    home.mkdir()
    write_dagster_yaml(home)
    # The UI's one-time "Join the Dagster community" dialog (shown on localhost until it is
    # dismissed) would cover the page: dismissed, as Dagster records it in DAGSTER_HOME.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    store_url = f"sqlite:///{tmp_path / 'orchestrator.sqlite'}"
    env = environment(home, store_url)
    (tmp_path / "digest.yaml").write_text(yaml.safe_dump(WORKFLOW, sort_keys=False))
    screens = tmp_path / "screens"
    screens.mkdir()
    web_log = tmp_path / "webserver.log"

    # The webserver starts (about 15 s on 2 busy cores) while the executions are made; loading
    # the definitions does not touch the store.
    with _webserver(env, web_log) as (ui, web):
        _ok(env, "db", "upgrade")
        _ok(env, "workflows", "apply", str(tmp_path / "digest.yaml"))
        single = json.loads(_ok(env, "run", "digest", "--payload", '{"user": "ada"}',
                                "--json"))
        assert single["outcome"] == "success", single
        batch_id, batch_run_id, members = _run_batch(home, store_url)

        # From each execution id, what `executions show` prints (in parallel: each is a
        # Python start-up).
        show_env = {**env, "ORCHESTRATOR_DAGSTER_UI_URL": ui}
        ids = [single["execution_id"], *members]
        procs = [_cli(show_env, "executions", "show", e, "--json") for e in ids]
        views = {e: json.loads(_finish(p)) for e, p in zip(ids, procs, strict=True)}
        for view in views.values():
            assert view["dagster_run_url"] == f"{ui}/runs/{view['dagster_run_id']}", view
        single_run_id = views[single["execution_id"]]["dagster_run_id"]
        assert single_run_id == single["dagster_run_id"]
        for e, outcome in zip(members, BATCH_OUTCOMES, strict=True):
            assert (views[e]["dagster_run_id"], views[e]["run_batch_id"],
                    views[e]["outcome"]) == (batch_run_id, batch_id, outcome), views[e]
        print(f"executions ready after {time.monotonic() - started:.1f}s")

        _wait_until_up(ui, web, web_log)
        print(f"webserver up after {time.monotonic() - started:.1f}s")
        with Chromium(tmp_path / "chromium", tmp_path / "chromium.log", chromium) as page:

            def shows(what: str, *needles: str, absent: tuple[str, ...] = (),
                      shot: str) -> str:
                text = page.wait_for_text(
                    lambda t: all(n in t for n in needles) and not any(a in t for a in absent),
                    what, screenshot=screens / f"{shot}-failed.png")
                page.screenshot(screens / f"{shot}.png")
                return text

            # (a) The single execution: its run's page, then its tags as the UI shows them.
            e = single["execution_id"]
            page.open(views[e]["dagster_run_url"])
            shows("the single run's page", single_run_id[:8], "execute_workflow", "Success",
                  shot="single-run")
            page.click("View tags and config")
            shows("the single run's tags", f"orchestrator/execution_id: {e}",
                  "orchestrator/outcome: success", "orchestrator/workflow: digest",
                  shot="single-run-tags")

            # (b) Each batched execution: the URL opens the batch run, whose op log names it
            # with its outcome; the metadata table holds the user error with its message.
            for e, outcome in zip(members, BATCH_OUTCOMES, strict=True):
                page.open(views[e]["dagster_run_url"])
                shows(f"batch member {e} with outcome {outcome}", batch_run_id[:8],
                      "execute_workflow_batch", f"batch {batch_id}: 3 execution(s)",
                      f"{e} digest {outcome}", shot=f"batch-run-{outcome}-{e[:8]}")
                if outcome == "user_error":
                    page.click("[Show Markdown]")
                    shows("the execution_table metadata", "execution_table",
                          f"{e}\tdigest\tuser_error\treference {{{{ trigger.payload.user }}}}",
                          shot="batch-run-execution-table")

            # From the runs list filtered by a tag: the run is there (its short id, as the list
            # shows it, and its tags), the other run is not. The filter chip ("Tag is KEY=VALUE")
            # is cut short on screen; its text names the filter this URL applied.
            single_short, batch_short = single_run_id[:8], batch_run_id[:8]
            page.open(_runs_filtered(ui, "orchestrator/execution_id", single["execution_id"]))
            shows("the runs list filtered by orchestrator/execution_id", "Tag is",
                  f"orchestrator/execution_id={single['execution_id']}", single_short,
                  "orchestrator/outcome: success", absent=(batch_short,),
                  shot="runs-by-execution-id")
            page.open(_runs_filtered(ui, "orchestrator/batch_id", batch_id))
            shows("the runs list filtered by orchestrator/batch_id", "Tag is",
                  f"orchestrator/batch_id={batch_id}", batch_short,
                  "orchestrator/outcomes: success=2,user_error=1", absent=(single_short,),
                  shot="runs-by-batch-id")
    print(f"done after {time.monotonic() - started:.1f}s; screenshots in {screens}")

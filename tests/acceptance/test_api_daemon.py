"""Correlation end to end, through ``orchestrator serve`` and the real daemon, on SQLite and on
PostgreSQL: a pile of HTTP triggers sharing batch runs, each execution keeping its own
correlation, outcome and block entries, findable from ``executions show`` to the batch run and
back; then an HTTP trigger and a signed webhook delivery, each into a Dagster run whose tags
carry the ``execution_id`` and ``request_id`` assigned at ingestion (the caller's
``X-Request-Id``), and back into the execution row; and a one-time schedule falling due
meanwhile, launched once in a run of its own with its occurrence in the tags. (One server and
one daemon for all three: each daemon a test starts costs the suite several seconds of CPU.)"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import requests

from harness.dagster_home import environment, write_dagster_yaml
from harness.processes import OrchestratorDaemon, free_port, wait_for
from orchestrator.domain.correlation import (
    DAGSTER_RUN_KEY_TAG,
    TAG_BATCH_ID,
    TAG_BATCH_SIZE,
    TAG_EXECUTION_ID,
    TAG_IDEMPOTENCY_KEY,
    TAG_OUTCOMES,
    TAG_REQUEST_ID,
    TAG_SCHEDULED_FOR,
    TAG_SOURCE,
    TAG_TRIGGER_ID,
    Source,
    iso_utc,
)
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.domain.schedules import validate_schedule
from orchestrator.domain.signatures import standard_headers
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database, workflow_doc

pytestmark = pytest.mark.slow
ORCHESTRATOR = Path(sys.executable).parent / "orchestrator"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    if request.param == "sqlite":
        write_dagster_yaml(home)
        yield home, f"sqlite:///{home / 'orchestrator.sqlite'}"
        return
    url = create_pg_database("orch_api")
    write_dagster_yaml(home, postgres_url=url)
    yield home, url
    drop_pg_database(url)


def test_http_and_webhook_triggers_reach_runs_with_their_correlation(backend, tmp_path: Path):
    """One server (two processes) and one daemon: first a pile of HTTP triggers queued before
    the daemon starts shares batch runs; then a lone HTTP trigger and a lone signed webhook
    delivery each get a run of their own, whose tags carry their correlation."""
    home, url = backend
    upgrade(url)
    store = Store(url)
    now = datetime.now(UTC)
    store.apply_workflow(parse_workflow(workflow_doc(), block_types()), now)
    key = store.access.create_api_key("default", now)[1]
    hook = store.access.create_webhook("default", "digest", now)
    # The pile of 25 fits one batch run of the default size (each run costs ~3 s of CPU).
    env = environment(home, url, ORCHESTRATOR_DAGSTER_UI_URL="http://127.0.0.1:3999")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # Two server processes: the key's second call may reach the other one.
        server = subprocess.Popen([str(ORCHESTRATOR), "serve", "--port", str(port),
                                   "--workers", "2"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    daemon = OrchestratorDaemon(env, tmp_path / "daemon.log")
    auth = {"Authorization": f"Bearer {key}"}
    try:
        wait_for(lambda: _up(base), 60, "orchestrator serve to answer /healthz", log)
        pile = _queue_a_pile(base, auth)
        # A one-time schedule falls due while the daemon works through the pile.
        due = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
        schedule, _ = store.create_schedule(validate_schedule(
            workflow="digest", run_at=iso_utc(due), payload={"user": "sched"},
            now=datetime.now(UTC)), datetime.now(UTC))
        daemon.start()
        wait_for(lambda: all(store.get_execution(e).status.terminal for e in pile), 180,
                 "every execution of the pile to end", daemon.log)
        answer, ids = _trigger_alone(store, base, auth, hook, daemon)
        wait_for(lambda: not store.get_schedule(schedule.id).enabled, 60,
                 "the one-time schedule to run and disable itself", daemon.log)
        [scheduled] = store.list_executions(trigger_id=schedule.id)
        wait_for(lambda: store.get_execution(scheduled.execution_id).status.terminal, 60,
                 "the scheduled execution to end", daemon.log)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # An execution is final once its core wrote it; its run ends (a batch run: with
            # its outcomes tag, once its last member has ended) a moment later.
            wait_for(lambda: all(_run_ended(instance, store.get_execution(e).dagster_run_id)
                                 for e in [*pile, *ids, scheduled.execution_id]), 60,
                     "every run to end", daemon.log)
        for _ in range(4):  # new connections: both processes answer with the key's execution
            again = requests.post(f"{base}/v1/workflows/digest/trigger",
                                  json={"idempotency_key": "order-42"}, headers=auth,
                                  timeout=30)
            assert again.json() == {**answer, "deduplicated": True}
    finally:
        daemon.stop()
        server.terminate()
        server.wait(timeout=30)
    served = log.read_text()
    assert served.count("Started server process") == 2, served  # 2 workers (and a parent)
    assert "Traceback" not in served, served
    _check_pile(store, home, env, pile)
    _check_correlation(store, home, hook, ids)
    _check_schedule(store, home, schedule.id, due)


def _queue_a_pile(base: str, auth: dict[str, str]) -> list[str]:
    ids = []
    for i in range(25):  # queued before the daemon starts: they pile up
        payload = {} if i == 7 else {"user": f"u{i}"}  # #7 lacks the field: a user error
        r = requests.post(f"{base}/v1/workflows/digest/trigger", json={"payload": payload},
                          headers={**auth, "X-Request-Id": f"caller-{i}"}, timeout=30)
        assert r.status_code == 202, r.text
        ids.append(r.json()["execution_id"])
    return ids


def _trigger_alone(store: Store, base: str, auth: dict[str, str], hook,
                   daemon: OrchestratorDaemon) -> tuple[dict, list[str]]:
    """An HTTP trigger, then (once the first has its run) a signed webhook delivery: each is
    alone in the queue, so each gets a run of its own."""
    api = requests.post(f"{base}/v1/workflows/digest/trigger",
                        json={"payload": {"user": "ada"}, "idempotency_key": "order-42"},
                        headers={**auth, "X-Request-Id": "caller-req-42"}, timeout=30)
    assert api.status_code == 202, api.text
    first = api.json()["execution_id"]
    assert requests.get(f"{base}/v1/executions/{first}", headers=auth,
                        timeout=30).json()["status"] in {"queued", "running", "success"}
    wait_for(lambda: store.get_execution(first).dagster_run_id is not None, 60,
             f"execution {first} to get its run", daemon.log)
    body = b'{"user": "webhook"}'
    delivered = requests.post(f"{base}/v1/webhooks/{hook.id}", data=body, timeout=30,
                              headers={**standard_headers(hook.secret, "msg_7",
                                                          datetime.now(UTC), body),
                                       "X-Request-Id": "hook-req-7"})
    assert delivered.status_code == 202, delivered.text
    ids = [first, delivered.json()["execution_id"]]
    for execution_id in ids:
        wait_for(lambda e=execution_id: requests.get(
            f"{base}/v1/executions/{e}", headers=auth, timeout=30).json()["status"]
            == "success", 180, f"execution {execution_id} to succeed", daemon.log)
    return api.json(), ids


def _check_pile(store: Store, home: Path, env: dict[str, str], ids: list[str]) -> None:
    records = [store.get_execution(e) for e in ids]
    assert [r.outcome for r in records].count(Outcome.SUCCESS) == 24
    assert records[7].outcome is Outcome.USER_ERROR and store.list_alerts() == []
    assert [r.request_id for r in records] == [f"caller-{i}" for i in range(25)]
    assert all(len(r.blocks) == 2 for r in records)  # #7: fetch, then summary failed
    assert records[3].output == {"count": 3, "who": "u3"}
    batched = [r for r in records if r.run_batch_id]
    assert len(batched) >= 20  # most shared runs (a straggler may get one of its own)
    runs = {r.dagster_run_id for r in records}
    assert len(runs) <= 5
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for record in batched:
            run = instance.get_run_by_id(record.dagster_run_id)
            assert run is not None and run.job_name == "execute_workflow_batch"
            assert run.tags[TAG_BATCH_ID] == record.run_batch_id
            members = [r for r in batched if r.run_batch_id == record.run_batch_id]
            assert run.tags[TAG_BATCH_SIZE] == str(len(members))
            assert run.tags[TAG_OUTCOMES] == ",".join(
                f"{k}={v}" for k, v in sorted(_count(members).items()))
    shown = subprocess.run([str(ORCHESTRATOR), "executions", "show", batched[0].execution_id,
                            "--json"], env=env, capture_output=True, text=True, check=True)
    view = json.loads(shown.stdout)
    assert view["run_batch_id"] == batched[0].run_batch_id
    assert view["dagster_run_url"] == f"http://127.0.0.1:3999/runs/{batched[0].dagster_run_id}"


def _check_correlation(store: Store, home: Path, hook, ids: list[str]) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for execution_id, request_id, source in ((ids[0], "caller-req-42", "api"),
                                                 (ids[1], "hook-req-7", "webhook")):
            record = store.get_execution(execution_id)
            run = instance.get_run_by_id(record.dagster_run_id)
            assert run is not None and run.job_name == "execute_workflow"
            assert run.tags[DAGSTER_RUN_KEY_TAG] == f"trigger:{execution_id}"
            assert run.tags[TAG_EXECUTION_ID] == execution_id
            assert run.tags[TAG_REQUEST_ID] == request_id == record.request_id
            assert run.tags[TAG_SOURCE] == source == record.source.value
            assert run.tags["orchestrator/outcome"] == "success"
        assert instance.get_run_by_id(
            store.get_execution(ids[0]).dagster_run_id).tags[TAG_IDEMPOTENCY_KEY] == "order-42"
        assert instance.get_run_by_id(
            store.get_execution(ids[1]).dagster_run_id).tags[TAG_TRIGGER_ID] == hook.id
    assert store.get_execution(ids[0]).output == {"count": 3, "who": "ada"}
    assert store.get_execution(ids[1]).output == {"count": 3, "who": "webhook"}


def _check_schedule(store: Store, home: Path, schedule_id: str, due: datetime) -> None:
    """The due one-time schedule ran once, in a run of its own whose tags carry its
    correlation, and disabled itself."""
    [execution] = store.list_executions(trigger_id=schedule_id)
    assert (execution.status, execution.output) == (ExecutionStatus.SUCCESS,
                                                    {"count": 3, "who": "sched"})
    assert (execution.source, execution.scheduled_for) == (Source.SCHEDULE, due)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(execution.dagster_run_id)
        assert run is not None and run.status is dg.DagsterRunStatus.SUCCESS
        assert run.tags[DAGSTER_RUN_KEY_TAG] == f"schedule:{schedule_id}:{iso_utc(due)}"
        assert run.tags[TAG_EXECUTION_ID] == execution.execution_id
        assert run.tags[TAG_REQUEST_ID] == execution.request_id
        assert run.tags[TAG_SOURCE] == "schedule"
        assert run.tags[TAG_TRIGGER_ID] == schedule_id
        assert run.tags[TAG_SCHEDULED_FOR] == iso_utc(due)
        assert run.tags["orchestrator/outcome"] == "success"
        assert len(instance.get_runs(dg.RunsFilter(
            tags={DAGSTER_RUN_KEY_TAG: run.tags[DAGSTER_RUN_KEY_TAG]}))) == 1
    stored = store.get_schedule(schedule_id)
    assert (stored.enabled, stored.next_run_at, stored.last_scheduled_for) == (False, None, due)


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def _run_ended(instance: dg.DagsterInstance, run_id: str | None) -> bool:
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is not None and run.is_finished


def _count(records) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    return counts

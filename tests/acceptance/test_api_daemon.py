"""Correlation end to end: an HTTP trigger and a signed webhook delivery, through
``orchestrator serve`` and the real daemon, into Dagster runs whose tags carry the
``execution_id`` and ``request_id`` assigned at ingestion (the caller's ``X-Request-Id``), and
back into the execution row, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import requests

from orchestrator.domain.correlation import (
    DAGSTER_RUN_KEY_TAG,
    TAG_EXECUTION_ID,
    TAG_IDEMPOTENCY_KEY,
    TAG_REQUEST_ID,
    TAG_SOURCE,
    TAG_TRIGGER_ID,
)
from orchestrator.domain.signatures import sign
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store.access import AccessStore
from orchestrator.store.migrate import upgrade
from tests.acceptance.daemon import Daemon, environment, wait_for, write_dagster_yaml
from tests.conftest import create_pg_database, drop_pg_database, workflow_doc
from tests.http_server import free_port

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


def test_http_and_webhook_correlation_reach_run_tags(backend, tmp_path: Path) -> None:
    home, url = backend
    upgrade(url)
    store = Store(url)
    now = datetime.now(UTC)
    store.apply_workflow(parse_workflow(workflow_doc(), block_types()), now)
    key = AccessStore(store).create_api_key("default", now)[1]
    hook = AccessStore(store).create_webhook("default", "digest", now)
    # A run per trigger, to read each one's run tags (batch runs: test_batch_daemon.py).
    env = environment(home, url, ORCHESTRATOR_MAX_BATCH_SIZE="1")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # Two server processes: the key's second call may reach the other one.
        server = subprocess.Popen([str(ORCHESTRATOR), "serve", "--port", str(port),
                                   "--workers", "2"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    daemon = Daemon(env, tmp_path / "daemon.log")
    try:
        wait_for(lambda: _up(base), 60, "orchestrator serve to answer /healthz", log)
        auth = {"Authorization": f"Bearer {key}"}
        api = requests.post(f"{base}/v1/workflows/digest/trigger",
                            json={"payload": {"user": "ada"}, "idempotency_key": "order-42"},
                            headers={**auth, "X-Request-Id": "caller-req-42"}, timeout=30)
        assert api.status_code == 202, api.text
        body = b'{"user": "webhook"}'
        ts = str(int(time.time()))
        delivered = requests.post(f"{base}/v1/webhooks/{hook.id}", data=body, timeout=30,
                                  headers={"X-Orchestrator-Timestamp": ts,
                                           "X-Orchestrator-Signature": sign(hook.secret, ts,
                                                                            body),
                                           "X-Request-Id": "hook-req-7"})
        assert delivered.status_code == 202, delivered.text
        ids = [api.json()["execution_id"], delivered.json()["execution_id"]]
        assert requests.get(f"{base}/v1/executions/{ids[0]}", headers=auth,
                            timeout=30).json()["status"] in {"queued", "running", "success"}
        daemon.start()
        for execution_id in ids:
            wait_for(lambda e=execution_id: requests.get(
                f"{base}/v1/executions/{e}", headers=auth, timeout=30).json()["status"]
                == "success", 180, f"execution {execution_id} to succeed", daemon.log)
        for _ in range(4):  # new connections: both processes answer with the key's execution
            again = requests.post(f"{base}/v1/workflows/digest/trigger",
                                  json={"idempotency_key": "order-42"}, headers=auth,
                                  timeout=30)
            assert again.json() == {**api.json(), "deduplicated": True}
    finally:
        daemon.stop()
        server.terminate()
        server.wait(timeout=30)
    served = log.read_text()
    assert served.count("Started server process") == 2, served  # 2 workers (and a parent)
    assert "Traceback" not in served, served
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for execution_id, request_id, source in ((ids[0], "caller-req-42", "api"),
                                                 (ids[1], "hook-req-7", "webhook")):
            record = store.get_execution(execution_id)
            run = instance.get_run_by_id(record.dagster_run_id)
            assert run is not None
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


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False

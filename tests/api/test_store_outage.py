"""PostgreSQL stops while requests arrive (a private server, never the shared one): the API
answers 503 with Retry-After and a safe JSON error, recovers when the database is back, and every
trigger it acknowledged with 202 is in the store."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from harness.postgres import private_postgres
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store.engine import dispose_all
from orchestrator.store.migrate import upgrade
from tests.api.conftest import Client, error_of
from tests.conftest import require_postgres_binaries, workflow_doc

pytestmark = pytest.mark.slow


@pytest.fixture
def store_url() -> str:  # this module brings its own database
    return "unused"


def _digest_and_key(url: str) -> str:
    """The schema, a workflow ``digest`` and an API key of ``default`` on ``url``."""
    upgrade(url)
    store = Store(url)
    store.apply_workflow(parse_workflow(workflow_doc(), block_types()), datetime.now(UTC))
    return store.access.create_api_key("default", datetime.now(UTC))[1]


def test_postgres_outage_503_then_recovery_nothing_lost(serve) -> None:
    require_postgres_binaries()
    with private_postgres() as pg:
        key = _digest_and_key(pg.url)
        client = Client(serve(url=pg.url).url, key)
        accepted: list[str] = []
        outages: list[dict] = []
        stop = threading.Event()

        def send() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                response = client.post("/v1/workflows/digest/trigger", {"payload": {"n": n}})
                if response.status_code == 202:
                    accepted.append(response.json()["execution_id"])
                else:
                    error = error_of(response, 503)
                    assert int(response.headers["Retry-After"]) > 0
                    outages.append(error)
                time.sleep(0.01)

        senders = [threading.Thread(target=send) for _ in range(4)]
        for sender in senders:
            sender.start()
        try:
            time.sleep(1.5)
            before = len(accepted)
            pg.stop()
            time.sleep(2)
            during = len(accepted)
            pg.start()
            deadline = time.monotonic() + 30
            while len(accepted) < during + 20 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            for sender in senders:
                sender.join(timeout=60)
        assert before > 0, "nothing was accepted before the outage"
        assert outages and {e["code"] for e in outages} == {"store_unavailable"}
        assert len(accepted) >= during + 20, "the API did not recover after the restart"
        dispose_all()
        stored = Store(pg.url).executions_by_id(accepted)
        assert set(stored) == set(accepted)  # every 202 is in the store
        queued = {q.execution_id for q in Store(pg.url).queued_triggers(100_000)}
        assert set(accepted) <= queued
        dispose_all()


def test_a_server_started_while_postgres_is_down_serves_once_it_is_back(serve) -> None:
    """The warm-up at startup finds no database: the server starts anyway (cold), answers 503
    while the database is away, and accepts triggers once it is back."""
    require_postgres_binaries()
    with private_postgres() as pg:
        key = _digest_and_key(pg.url)
        dispose_all()
        pg.stop()
        client = Client(serve(url=pg.url).url, key)
        assert error_of(client.get("/healthz"), 503)["code"] == "store_unavailable"  # it is up
        assert error_of(client.post("/v1/workflows/digest/trigger", {}), 503)["code"] == \
            "store_unavailable"
        pg.start()
        deadline = time.monotonic() + 30
        while (answer := client.post("/v1/workflows/digest/trigger", {})).status_code != 202:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        dispose_all()
        assert Store(pg.url).executions_by_id([answer.json()["execution_id"]])
        dispose_all()

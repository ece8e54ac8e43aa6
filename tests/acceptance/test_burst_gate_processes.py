"""The burst gate holds across server processes, on SQLite and PostgreSQL: the window is counted
in the store, so ``orchestrator serve --workers 4`` (four processes, each connection handed to
any of them) trips the environment at the same count as one process: the first ``threshold``
triggers are queued, every later one goes to the buffer (each process counting its own window
would let up to 4 x threshold through)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from harness.processes import api_server
from orchestrator.store import Store
from orchestrator.store import tables as t
from tests.acceptance.commands import apply_digest

pytestmark = pytest.mark.slow

THRESHOLD, SENT = 10, 25
GATE = {"ORCHESTRATOR_BURST_GATE": "1", "ORCHESTRATOR_BURST_THRESHOLD": str(THRESHOLD),
        "ORCHESTRATOR_BURST_WINDOW_SECONDS": "120", "ORCHESTRATOR_BURST_HOLD_SECONDS": "120"}


@pytest.mark.parametrize("workers", [1, 4])
def test_four_processes_trip_at_the_count_of_one(cli, store_url: str, tmp_path: Path,
                                                 workers: int) -> None:
    apply_digest(cli, tmp_path)
    store = Store(store_url)
    key = store.access.create_api_key("default", datetime.now(UTC))[1]
    with api_server(store_url, tmp_path / "home", tmp_path / "api.log", workers=workers,
                    **GATE) as url:
        ids = []
        for n in range(SENT):  # a new connection each: any of the server's processes takes it
            answer = requests.post(f"{url}/v1/workflows/digest/trigger",
                                   json={"payload": {"n": n}}, timeout=30,
                                   headers={"Authorization": f"Bearer {key}",
                                            "Connection": "close"})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["execution_id"])
    queued = store.executions_by_id(ids)
    with store.db.read() as conn:
        buffered = set(conn.execute(sa.select(t.burst_buffer.c.execution_id)).scalars())
    assert len(queued) + len(buffered) == SENT
    # the first THRESHOLD were queued, all the rest buffered: the same with 1 and 4 processes
    assert [i in queued for i in ids] == [True] * THRESHOLD + [False] * (SENT - THRESHOLD)

"""Real responses of every kind conform to the OpenAPI document generated from the route
table: an execution that ran (blocks, error, output, outcome), one still in the burst buffer,
listings, schedules, acceptances and rejections. The app runs on the in-memory store through
Starlette's ASGI test client; schemathesis checks each body against the schema documented for
its status (the fuzz test, ``test_fuzz.py``, does the same for generated requests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from starlette.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.api.settings import ApiSettings
from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.records import BlockEntry, ExecutionStatus, Outcome
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.memory import forget
from tests.conftest import workflow_doc

NOW = datetime.now(UTC)


class Checked:
    """A test client whose every response is validated against the app's own document."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        self.checked = 0

    def call(self, method: str, path: str, template: str | None = None, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        self.schema[template or path][method].validate_response(response)
        self.checked += 1
        return response


@pytest.fixture
def api() -> Iterator[tuple[Checked, Store]]:
    url = f"memory://{uuid.uuid4().hex}"
    store = Store(url)
    store.apply_workflow(parse_workflow(workflow_doc(environment="acme"), block_types()), NOW)
    key = store.access.create_api_key("acme", NOW)[1]
    burst = BurstPolicy(enabled=True, environments={"acme"}, threshold=1,
                        window=timedelta(minutes=5))
    app = create_app(ApiSettings(store=Settings(database_url=url), burst=burst))
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield Checked(client), store
    forget(url)


def _ran(store: Store) -> str:
    """An execution that ran one block and ended in a user error."""
    correlation = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.SCHEDULE,
                              workflow="digest", environment="acme", trigger_id="sch_1",
                              scheduled_for=NOW, payload={"user": "ada"})
    store.create_execution(correlation, NOW, enqueue=True)
    store.start_execution(correlation.execution_id, dagster_run_id="run-1", workflow_version=1,
                          now=NOW)
    block = BlockEntry(block_id="fetch", block_type="transform", status="error",
                       started_at=NOW, finished_at=NOW, duration_ms=1.5, error="boom",
                       output_size=None)
    store.finish_execution(correlation.execution_id, status=ExecutionStatus.ERROR,
                           outcome=Outcome.USER_ERROR, finalized_by="core", now=NOW,
                           error={"message": "boom"}, output={"fetch": [1, "x", None]},
                           block=(1, block))
    return correlation.execution_id


def test_every_kind_of_response_conforms_to_the_document(api: tuple[Checked, Store]) -> None:
    checked, store = api
    ran = _ran(store)
    trigger = "/v1/workflows/{name}/trigger"
    first = checked.call("POST", "/v1/workflows/digest/trigger", trigger,
                         json={"idempotency_key": "k"}).json()
    checked.call("POST", "/v1/workflows/digest/trigger", trigger, json={"idempotency_key": "k"})
    buffered = [checked.call("POST", "/v1/workflows/digest/trigger", trigger,
                             json={}).json()["execution_id"] for _ in range(3)]
    checked.call("POST", "/v1/workflows/digest/trigger-batch",
                 "/v1/workflows/{name}/trigger-batch", json={"items": [{}, {}]})
    one = "/v1/executions/{execution_id}"
    shown = [checked.call("GET", f"/v1/executions/{e}", one).json()
             for e in (ran, first["execution_id"], *buffered)]
    assert shown[0]["blocks"] and shown[0]["outcome"] == "user_error"
    assert any(s["buffered"] for s in shown)
    listed = checked.call("GET", "/v1/executions?limit=100", "/v1/executions").json()
    assert len(listed["executions"]) == 7  # ran, keyed (once), 3 single, 2 of the batch

    created = checked.call("POST", "/v1/schedules", json={
        "workflow": "digest", "cron": "0 9 * * *", "key": "daily"})
    assert created.status_code == 201
    updated = checked.call("POST", "/v1/schedules", json={
        "workflow": "digest", "cron": "0 9 * * *", "key": "daily"})
    assert updated.status_code == 200
    schedule = "/v1/schedules/" + created.json()["id"]
    checked.call("POST", "/v1/schedules", json={"workflow": "digest",
                                                 "run_at": (NOW + timedelta(days=1)).isoformat()})
    checked.call("GET", "/v1/schedules")
    for method, path, template in (("GET", schedule, "/v1/schedules/{schedule_id}"),
                                   ("POST", schedule + "/pause",
                                    "/v1/schedules/{schedule_id}/pause"),
                                   ("POST", schedule + "/resume",
                                    "/v1/schedules/{schedule_id}/resume"),
                                   ("DELETE", schedule, "/v1/schedules/{schedule_id}")):
        checked.call(method, path, template)
    checked.call("GET", "/healthz")

    for method, path, template, kwargs in (  # rejections: the error body, 4xx of each kind
            ("GET", "/v1/executions?status=x", "/v1/executions", {}),
            ("GET", "/v1/executions/nope", one, {}),
            ("GET", "/v1/executions", "/v1/executions", {"headers": {"Authorization": ""}}),
            ("POST", "/v1/workflows/digest/trigger", trigger, {"content": b"{"}),
            ("POST", "/v1/workflows/digest/trigger", trigger, {"json": {"x": 1}}),
            ("POST", "/v1/schedules", "/v1/schedules", {"json": {"workflow": "digest"}}),
            ("POST", "/v1/webhooks/wh_00000000000000000000", "/v1/webhooks/{webhook_id}", {})):
        assert checked.call(method, path, template, **kwargs).status_code >= 400
    assert checked.checked == 28

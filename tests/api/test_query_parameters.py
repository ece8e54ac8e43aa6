"""Query parameters are parsed by their operation's model (``orchestrator/api/models.py``),
refusals in the structured error shape naming the parameter; the app on the in-memory store,
through Starlette's ASGI test client (no server, no database)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.api.settings import ApiSettings
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.memory import forget


@pytest.fixture
def client() -> Iterator[TestClient]:
    url = f"memory://{uuid.uuid4().hex}"
    key = Store(url).access.create_api_key("acme", datetime.now(UTC))[1]
    app = create_app(ApiSettings(store=Settings(database_url=url)))
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client
    forget(url)


@pytest.mark.parametrize(("query", "field", "message"), [
    ("status=done", "status",
     "status: use one of queued, running, success, error, cancelled, expired"),
    ("limit=0", "limit", "limit: use a whole number from 1 to 1000"),
    ("limit=1001", "limit", "limit: use a whole number from 1 to 1000"),
    ("limit=%C2%B9", "limit", "limit: use a whole number from 1 to 1000"),  # "¹"
    ("limit=+5", "limit", "limit: use a whole number from 1 to 1000"),
    ("limit=1_000", "limit", "limit: use a whole number from 1 to 1000"),
    ("limit=" + "9" * 5000, "limit", "limit: use a whole number from 1 to 1000"),
    ("limit=5&limit=x", "limit", "limit: use a whole number from 1 to 1000"),  # the last counts
])
def test_an_invalid_parameter_is_a_422_naming_it(client: TestClient, query: str, field: str,
                                                 message: str) -> None:
    response = client.get(f"/v1/executions?{query}")
    assert response.status_code == 422
    assert response.json() == {"error": {"code": "invalid_field", "message": message,
                                         "field": field,
                                         "problems": [{"field": field,
                                                       "message": message.split(": ", 1)[1]}]}}


def test_every_invalid_parameter_is_listed_the_first_named(client: TestClient) -> None:
    error = client.get("/v1/executions?limit=0&status=done").json()["error"]
    assert error["field"] == "status"
    assert [p["field"] for p in error["problems"]] == ["status", "limit"]


def test_valid_and_unknown_parameters(client: TestClient) -> None:
    assert client.get("/v1/executions?status=queued&limit=1000&workflow=w&other=1"
                      ).json() == {"executions": []}
    assert client.get("/v1/schedules?workflow=w&other=1").json() == {"schedules": []}


def test_the_key_is_checked_before_the_query(client: TestClient) -> None:
    response = client.get("/v1/executions?limit=0", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401

"""A real uvicorn server on a free loopback port, serving the API app on the test's store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import uvicorn

from harness.processes import free_port
from orchestrator.api.app import create_app
from orchestrator.api.settings import ApiSettings
from orchestrator.domain.access import WebhookRecord
from orchestrator.domain.burst import BurstPolicy
from orchestrator.settings import Settings
from orchestrator.store import Store


class Server:
    """uvicorn in a thread; ``url`` is its base URL."""

    def __init__(self, settings: ApiSettings, clock: Callable[[], datetime] | None = None
                 ) -> None:
        app = create_app(settings, **({"clock": clock} if clock else {}))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the API server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


class Client:
    """``requests`` with a base URL and, optionally, an API key."""

    def __init__(self, url: str, key: str | None = None) -> None:
        self.url = url
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, json=json, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=60, **kwargs)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.url + path, timeout=60)


OPERATOR_TOKEN = "operator-token-of-the-tests"


def scrape(url: str, token: str | None = OPERATOR_TOKEN) -> str:
    """``/metrics`` of the server at ``url``, read with the operator token."""
    response = requests.get(url + "/metrics", timeout=60,
                            headers={"Authorization": f"Bearer {token}"} if token else {})
    assert response.status_code == 200, (response.status_code, response.text)
    return response.text


@pytest.fixture
def serve(store_url: str) -> Iterator[Callable[..., Server]]:
    """Starts servers on the test's store (``operator_token``: ORCHESTRATOR_OPERATOR_TOKEN, the
    tests' own by default)."""
    servers: list[Server] = []

    def start(*, url: str | None = None, burst: BurstPolicy | None = None,
              clock: Callable[[], datetime] | None = None,
              operator_token: str | None = OPERATOR_TOKEN) -> Server:
        settings = ApiSettings(store=Settings(database_url=url or store_url),
                               operator_token=operator_token,
                               **({"burst": burst} if burst else {}))
        server = Server(settings, clock).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def key_for(store: Store) -> Callable[[str], str]:
    def create(environment: str) -> str:
        return store.access.create_api_key(environment, datetime.now(UTC))[1]

    return create


def legacy_webhook(store: Store, environment: str, workflow: str) -> WebhookRecord:
    """A webhook as those made before Standard Webhooks were: its secret ``whsec_`` + urlsafe
    text (not base64), signed with the legacy scheme."""
    import secrets

    from orchestrator.store import tables as t

    hook = store.access.create_webhook(environment, workflow, datetime.now(UTC))
    legacy = "whsec_" + secrets.token_urlsafe(32)
    with store.db.write() as conn:
        conn.execute(t.webhooks.update().where(t.webhooks.c.id == hook.id)
                     .values(secret=legacy))
    return store.access.get_webhook(hook.id)


def error_of(response: requests.Response, status: int) -> dict[str, Any]:
    """The structured error of a response with ``status``; never a trace or a URL."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    text = response.text
    assert "Traceback" not in text and "postgresql" not in text and "sqlite" not in text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"} and error["message"]
    return error

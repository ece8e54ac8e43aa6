"""Replay through the HTTP API (SQLite and PostgreSQL): a new execution of the original's
workflow in its environment, ``source`` replay, new correlation ids, ``replayed_from`` shown; the
original's payload unless one is given; ``same_version`` pins the version the original ran. Bad
input is a 422 naming the field, another environment's key a 404, and neither writes anything.
Also: a buffered (burst-gated) execution shows its ``not_before``, ``expires_at``, ``priority``
and ``concurrency_key``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.correlation import parse_iso
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.store import Store
from tests.api.conftest import Client, error_of


@pytest.fixture
def acme(serve, key_for, make_workflow) -> Client:
    make_workflow("digest", environment="acme")
    return Client(serve().url, key_for("acme"))


def _finished(acme: Client, store: Store, **body) -> str:
    execution_id = acme.post("/v1/workflows/digest/trigger", body).json()["execution_id"]
    store.start_execution(execution_id, dagster_run_id="run-1", workflow_version=1,
                          now=datetime.now(UTC))
    store.finish_execution(execution_id, status=ExecutionStatus.ERROR,
                           outcome=Outcome.USER_ERROR, finalized_by="core",
                           now=datetime.now(UTC))
    return execution_id


def test_replay_is_a_new_execution_of_the_same_workflow(acme: Client, store: Store) -> None:
    original = _finished(acme, store, payload={"user": "ada"}, priority=3,
                         concurrency_key="user-ada")
    answer = acme.post(f"/v1/executions/{original}/replay", {},
                       headers={"X-Request-Id": "req-replay-1"})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["status"], body["replayed_from"], body["request_id"]) == (
        "queued", original, "req-replay-1")
    assert body["execution_id"] != original
    shown = acme.get(f"/v1/executions/{body['execution_id']}").json()
    assert (shown["source"], shown["replayed_from"], shown["payload"], shown["status"]) == (
        "replay", original, {"user": "ada"}, "queued")
    assert (shown["priority"], shown["concurrency_key"], shown["pinned_version"]) == (
        3, "user-ada", None)
    assert store.get_execution(original).status is ExecutionStatus.ERROR  # left as it was
    again = acme.post(f"/v1/executions/{original}/replay",
                      {"payload": {"user": "bob"}}).json()
    assert store.get_execution(again["execution_id"]).payload == {"user": "bob"}
    assert again["request_id"] != body["request_id"]


def test_same_version_runs_the_version_the_original_ran(acme: Client, store: Store,
                                                        make_workflow) -> None:
    original = _finished(acme, store)
    make_workflow("digest", environment="acme", description="v2")  # version 2 is current
    pinned = acme.post(f"/v1/executions/{original}/replay", {"same_version": True}).json()
    latest = acme.post(f"/v1/executions/{original}/replay", {}).json()
    assert acme.get(f"/v1/executions/{pinned['execution_id']}").json()["pinned_version"] == 1
    workflow, record = store.open_execution(store.get_execution(pinned["execution_id"]),
                                            dagster_run_id="run-2", now=datetime.now(UTC))
    assert (workflow.version, record.workflow_version) == (1, 1)
    workflow, record = store.open_execution(store.get_execution(latest["execution_id"]),
                                            dagster_run_id="run-3", now=datetime.now(UTC))
    assert (workflow.version, record.workflow_version) == (2, 2)


def test_an_unfinished_execution_may_be_replayed_but_not_at_its_version(acme: Client,
                                                                        store: Store) -> None:
    queued = acme.post("/v1/workflows/digest/trigger", {"delay": "1h"}).json()["execution_id"]
    replay = acme.post(f"/v1/executions/{queued}/replay", {})
    assert replay.status_code == 202
    error = error_of(acme.post(f"/v1/executions/{queued}/replay", {"same_version": True}), 409)
    assert "has not started" in error["message"]
    assert len(store.list_executions()) == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"payload": [1, 2]}, "payload"),
    ({"payload": "x"}, "payload"),
    ({"same_version": "maybe"}, "same_version"),
    ({"workflow": "other"}, "workflow"),
])
def test_bad_replay_bodies_are_a_422_naming_the_field(acme: Client, store: Store,
                                                      body: dict, field: str) -> None:
    original = _finished(acme, store)
    error = error_of(acme.post(f"/v1/executions/{original}/replay", body), 422)
    assert error["field"] == field, error
    assert len(store.list_executions()) == 1


def test_another_environments_key_replays_nothing(acme: Client, store: Store,
                                                  key_for) -> None:
    original = _finished(acme, store)
    other = Client(acme.url, key_for("other"))
    assert error_of(other.post(f"/v1/executions/{original}/replay", {}), 404)["code"] == \
        "not_found"
    assert error_of(acme.post("/v1/executions/nope/replay", {}), 404)["code"] == "not_found"
    assert len(store.list_executions()) == 1


def test_a_bad_concurrency_key_is_a_422(acme: Client, store: Store) -> None:
    error = error_of(acme.post("/v1/workflows/digest/trigger", {"concurrency_key": " x"}), 422)
    assert error["field"] == "concurrency_key"
    assert store.list_executions() == []


def test_a_buffered_execution_shows_its_timing_and_controls(serve, key_for, store: Store,
                                                            make_workflow) -> None:
    make_workflow("digest", environment="acme")
    gate = BurstPolicy(enabled=True, environments=frozenset({"acme"}), threshold=1,
                       window=timedelta(seconds=60), hold=timedelta(seconds=60))
    acme = Client(serve(burst=gate).url, key_for("acme"))
    answers = [acme.post("/v1/workflows/digest/trigger",
                         {"delay": "10m", "ttl": "1h", "priority": 4,
                          "concurrency_key": "k"}).json() for _ in range(3)]
    buffered = answers[-1]["execution_id"]
    shown = acme.get(f"/v1/executions/{buffered}").json()
    assert (shown["buffered"], shown["status"], shown["priority"],
            shown["concurrency_key"]) == (True, "queued", 4, "k")
    not_before = parse_iso(shown["not_before"])
    assert not_before > datetime.now(UTC) + timedelta(minutes=9)
    assert parse_iso(shown["expires_at"]) == not_before + timedelta(hours=1)
    listed = {e["execution_id"]: e for e in acme.get("/v1/executions").json()["executions"]}
    assert listed[buffered]["not_before"] == shown["not_before"]

"""Schedule controls over HTTP, through a real server on loopback, on SQLite and PostgreSQL:
overlap, jitter and priority on create and in the view; ``POST /v1/schedules/{id}/backfill``
(202 with its counts, idempotent per occurrence), its listing and progress; 422 naming the
field with nothing written."""

from __future__ import annotations

import pytest

from orchestrator.store import Store
from tests.api.conftest import Client, error_of


@pytest.fixture
def client(serve, key_for, make_workflow) -> Client:
    make_workflow()
    return Client(serve().url, key_for("default"))


def test_controls_are_set_on_create_and_shown(client: Client) -> None:
    created = client.post("/v1/schedules", {"workflow": "digest", "cron": "0 * * * *",
                                            "overlap": "buffer_one", "jitter": "30s",
                                            "priority": 5})
    assert created.status_code == 201, created.text
    shown = client.get(f"/v1/schedules/{created.json()['id']}").json()
    assert (shown["overlap"], shown["jitter_seconds"], shown["priority"]) == \
        ("buffer_one", 30, 5)
    assert (shown["skipped_overlap"], shown["buffered_overlap"]) == (0, 0)
    assert shown["upcoming"][0].endswith(":00:00Z")  # nominal times, and the view says so
    assert "30s" in shown["upcoming_jitter"]
    plain = client.post("/v1/schedules", {"workflow": "digest", "cron": "0 9 * * *"}).json()
    assert (plain["overlap"], plain["jitter_seconds"], plain["upcoming_jitter"]) == \
        ("allow_all", None, None)


@pytest.mark.parametrize(("body", "field"), [
    ({"overlap": "sometimes"}, "overlap"),
    ({"jitter": "2h"}, "jitter"),
    ({"jitter": "90m", "cron": "*/30 * * * *"}, "jitter"),  # over 1h; and not under 30 min
    ({"jitter": "30m", "cron": "*/30 * * * *"}, "jitter"),  # not under the interval
    ({"jitter": "soon"}, "jitter"),
    ({"priority": 11}, "priority"),
])
def test_bad_controls_answer_422_naming_the_field(client: Client, store: Store, body,
                                                  field) -> None:
    error = error_of(client.post("/v1/schedules", {"workflow": "digest", "cron": "0 * * * *",
                                                   **body}), 422)
    assert error["field"] == field, error
    assert store.list_schedules() == []


def test_backfill_answers_202_with_counts_and_is_idempotent(client: Client,
                                                            store: Store) -> None:
    schedule = client.post("/v1/schedules", {"workflow": "digest", "cron": "0 9 * * *",
                                             "priority": 3}).json()
    path = f"/v1/schedules/{schedule['id']}/backfill"
    window = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-10T00:00:00Z"}
    first = client.post(path, window)
    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["occurrences"], body["created"], body["existing"], body["skipped"]) == \
        (9, 9, 0, 0)
    assert body["statuses"] == {"queued": 9} and body["overlap"] == "allow_all"
    again = client.post(path, window).json()
    assert (again["created"], again["existing"]) == (0, 9)
    listing = client.get(f"/v1/schedules/{schedule['id']}/backfills").json()["backfills"]
    assert {b["id"] for b in listing} == {body["id"], again["id"]}
    one = client.get(f"/v1/schedules/{schedule['id']}/backfills/{body['id']}").json()
    assert one["statuses"] == {"queued": 9}
    executions = client.get("/v1/executions?limit=100").json()["executions"]
    assert len(executions) == 9
    assert {(e["source"], e["priority"], e["backfill_id"]) for e in executions} == \
        {("backfill", 3, body["id"])}
    assert sorted(e["scheduled_for"] for e in executions)[0] == "2020-01-01T09:00:00Z"


@pytest.mark.parametrize(("body", "field"), [
    ({"start": "2020-01-01T00:00:00Z", "end": "2999-01-01T00:00:00Z"}, "end"),
    ({"start": "2020-01-05T00:00:00Z", "end": "2020-01-01T00:00:00Z"}, "end"),
    ({"start": "1990-01-01T00:00:00Z", "end": "2020-01-01T00:00:00Z"}, "end"),  # > 10,000
    ({"start": "not a time", "end": "2020-01-01T00:00:00Z"}, "start"),
    ({"end": "2020-01-01T00:00:00Z"}, "start"),
    ({"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z", "overlap": "x"},
     "overlap"),
])
def test_bad_backfill_answers_422_naming_the_field(client: Client, store: Store, body,
                                                   field) -> None:
    schedule = client.post("/v1/schedules", {"workflow": "digest",
                                             "cron": "0 9 * * *"}).json()
    error = error_of(client.post(f"/v1/schedules/{schedule['id']}/backfill", body), 422)
    assert error["field"] == field, error
    assert store.list_executions() == []
    assert error_of(client.get(f"/v1/schedules/{schedule['id']}/backfills/bf_nope"),
                    404)["code"] == "not_found"

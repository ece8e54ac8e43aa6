"""The API key lifecycle and the operator boundary across two real ``orchestrator serve``
processes on one store, on SQLite and PostgreSQL: a key each server has just accepted (so it
is in both caches) is refused by both within a second of ``orchestrator keys revoke``, and of
its expiry; ``keys list`` shows status, last use and expiry; ``/metrics`` answers only to the
operator token and ``/healthz`` stays open, naming no tenant."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from harness.processes import OPERATOR_TOKEN, api_server
from orchestrator.store import Store
from orchestrator.store import tables as t
from tests.acceptance.commands import apply_digest, bad_input, ok_json

pytestmark = pytest.mark.slow

TRIGGER = "/v1/workflows/digest/trigger"


def _post(url: str, key: str) -> int:
    return requests.post(url + TRIGGER, json={}, timeout=30,
                         headers={"Authorization": f"Bearer {key}"}).status_code


def _refused_within(urls: list[str], key: str, limit: float) -> float:
    """Seconds until every server answers 401 to ``key`` (fails past ``limit``)."""
    started = time.monotonic()
    pending = set(urls)
    while pending:
        pending = {url for url in pending if _post(url, key) != 401}
        elapsed = time.monotonic() - started
        assert elapsed < limit, f"still accepted after {elapsed:.2f} s by {sorted(pending)}"
    return time.monotonic() - started


def test_revocation_and_expiry_reach_every_server_within_a_second(
        cli, store_url: str, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    kept = ok_json(cli("keys", "create", "-e", "default", "--json"))
    doomed = ok_json(cli("keys", "create", "-e", "default", "--json"))
    expiring = ok_json(cli("keys", "create", "-e", "default", "--expires-in", "90d", "--json"))
    assert expiring["status"] == "active"
    assert abs(datetime.fromisoformat(expiring["expires_at"]) - datetime.now(UTC)
               - timedelta(days=90)) < timedelta(minutes=1)
    home = tmp_path / "home"
    with api_server(store_url, home, tmp_path / "a.log") as a, \
            api_server(store_url, home, tmp_path / "b.log") as b:
        for url in (a, b):  # every key is now in both servers' caches
            assert [_post(url, k["key"]) for k in (kept, doomed, expiring)] == [202] * 3

        ok_json(cli("keys", "revoke", doomed["id"], "--json"))
        assert _refused_within([a, b], doomed["key"], 1.0) < 1.0
        # the expiry passes (moved into the past in the store: the servers' clocks are real)
        with sa.create_engine(store_url).begin() as conn:
            conn.execute(t.api_keys.update().where(t.api_keys.c.id == expiring["id"])
                         .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert _refused_within([a, b], expiring["key"], 1.0) < 1.0
        assert [_post(url, kept["key"]) for url in (a, b)] == [202, 202]

        listed = {k["id"]: k for k in ok_json(cli("keys", "list", "--json"))}
        assert {i: k["status"] for i, k in listed.items()} == {
            kept["id"]: "active", doomed["id"]: "revoked", expiring["id"]: "expired"}
        assert all(listed[k["id"]]["last_used_at"] for k in (kept, doomed, expiring))
        assert listed[doomed["id"]]["revoked_at"] and listed[expiring["id"]]["expires_at"]
        assert all(k["key"] not in json.dumps(listed) for k in (kept, doomed, expiring))

        # the operator boundary on a real server
        assert requests.get(a + "/metrics", timeout=30).status_code == 401
        tenant = requests.get(a + "/metrics", timeout=30,
                              headers={"Authorization": f"Bearer {kept['key']}"})
        assert tenant.status_code == 401 and "default" not in tenant.text
        scraped = requests.get(a + "/metrics", timeout=30,
                               headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert scraped.status_code == 200
        assert 'orchestrator_triggers_accepted_total{environment="default",source="api"}' \
            in scraped.text
        health = requests.get(b + "/healthz", timeout=30)
        assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_key_and_webhook_commands_refuse_bad_input(cli, store_url: str,
                                                   tmp_path: Path) -> None:
    assert "--expires-in" in bad_input(cli("keys", "create", "-e", "acme", "--expires-in",
                                           "soon"))
    assert "3650 days" in bad_input(cli("keys", "create", "-e", "acme", "--expires-in",
                                        "4000d"))
    assert "not found" in bad_input(cli("keys", "revoke", "key_nope"))
    assert ok_json(cli("keys", "list", "--json")) == []  # nothing was written
    apply_digest(cli, tmp_path)
    hook = ok_json(cli("webhooks", "create", "--workflow", "digest", "--json"))
    assert "--grace" in bad_input(cli("webhooks", "rotate-secret", hook["id"], "--grace", "x"))
    assert "30 days" in bad_input(cli("webhooks", "rotate-secret", hook["id"], "--grace",
                                      "31d"))
    assert "not found" in bad_input(cli("webhooks", "rotate-secret", "wh_nope"))
    assert Store(store_url).access.get_webhook(hook["id"]).secret == hook["secret"]

    rotated = ok_json(cli("webhooks", "rotate-secret", hook["id"], "--grace", "1h", "--json"))
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    assert "previous_secret" not in rotated
    until = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert abs(until - datetime.now(UTC) - timedelta(hours=1)) < timedelta(minutes=1)
    stored = Store(store_url).access.get_webhook(hook["id"])
    assert (stored.secret, stored.previous_secret) == (rotated["secret"], hook["secret"])
    listed = ok_json(cli("webhooks", "list", "--json"))
    assert rotated["secret"] not in json.dumps(listed) and hook["secret"] not in json.dumps(
        listed)
    default = ok_json(cli("webhooks", "rotate-secret", hook["id"], "--json"))
    assert abs(datetime.fromisoformat(default["previous_secret_expires_at"]) - datetime.now(UTC)
               - timedelta(hours=24)) < timedelta(minutes=1)


def test_serve_refuses_a_short_operator_token(process, cli_env) -> None:
    refused = process("serve", "--port", "1",
                      env=cli_env | {"ORCHESTRATOR_OPERATOR_TOKEN": "short"})
    assert "ORCHESTRATOR_OPERATOR_TOKEN" in bad_input(refused)

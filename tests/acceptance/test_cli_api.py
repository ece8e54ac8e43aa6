"""``orchestrator keys`` and ``orchestrator webhooks`` (in this process: ``test_cli``'s ``cli``), on
SQLite and PostgreSQL: a key is printed once and stored hashed; webhooks give an id and a secret;
listings never show secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.store import Store
from tests.acceptance.commands import bad_input, ok, ok_json, write_doc

pytestmark = pytest.mark.slow


def test_keys_create_prints_the_key_once(cli, store_url: str) -> None:
    created = ok_json(cli("keys", "create", "--environment", "acme", "--json"))
    assert created["key"].startswith("ork_") and created["environment"] == "acme"
    grant = Store(store_url).access.check_api_key(created["key"], datetime.now(UTC))
    assert grant is not None and grant.environment == "acme"
    listed = ok_json(cli("keys", "list", "--json"))
    assert [k["id"] for k in listed] == [created["id"]]
    assert created["key"] not in json.dumps(listed)
    with sa.create_engine(store_url).connect() as conn:
        dumped = json.dumps([list(map(str, r)) for r in
                             conn.execute(sa.text("SELECT * FROM orch_api_keys"))])
    assert created["key"] not in dumped
    human = ok(cli("keys", "create", "-e", "acme"))
    assert "ork_" in human.stdout and "not shown again" in human.stderr
    assert "--environment" in bad_input(cli("keys", "create", "--environment", "Not Valid"))


def test_webhooks_create_list_delete(cli, tmp_path: Path) -> None:
    doc = {"name": "digest", "blocks": [{"id": "a", "type": "transform", "with": {"x": 1}}]}
    ok(cli("workflows", "apply", str(write_doc(tmp_path / "d.yaml", doc))))
    hook = ok_json(cli("webhooks", "create", "--workflow", "digest", "--json"))
    assert hook["id"].startswith("wh_") and hook["secret"].startswith("whsec_")
    assert hook["url_path"] == f"/v1/webhooks/{hook['id']}"
    listed = ok_json(cli("webhooks", "list", "--json"))
    assert [w["id"] for w in listed] == [hook["id"]] and "secret" not in listed[0]
    assert "workflow" in bad_input(cli("webhooks", "create", "--workflow", "nope"))
    ok(cli("webhooks", "delete", hook["id"]))
    assert ok_json(cli("webhooks", "list", "--json")) == []
    assert "not found" in bad_input(cli("webhooks", "delete", hook["id"]))

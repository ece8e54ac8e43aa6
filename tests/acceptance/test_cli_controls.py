"""``orchestrator trigger --delay/--run-at/--ttl/--priority`` and ``orchestrator executions
cancel`` as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.domain.correlation import parse_iso
from tests.acceptance.commands import CLI, apply_digest, bad_input, ok, ok_json

pytestmark = pytest.mark.slow


def test_a_delayed_trigger_is_shown_and_cancelled(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    before = datetime.now(UTC).replace(microsecond=0)
    queued = ok_json(cli("trigger", "digest", "--delay", "10m", "--ttl", "1h",
                         "--priority", "3", "--json"))
    shown = ok_json(cli("executions", "show", queued["execution_id"], "--json"))
    assert shown["status"] == "queued" and shown["priority"] == 3
    assert parse_iso(shown["not_before"]) >= before + timedelta(minutes=10)
    assert parse_iso(shown["expires_at"]) == parse_iso(shown["not_before"]) + timedelta(hours=1)
    assert ok(cli("executions", "cancel", queued["execution_id"])).stdout.strip() == \
        f"execution {queued['execution_id']} cancelled"
    assert ok_json(cli("executions", "show", queued["execution_id"], "--json"))["status"] == \
        "cancelled"
    assert "already ended" in bad_input(cli("executions", "cancel", queued["execution_id"]))
    assert "not found" in bad_input(cli("executions", "cancel", "nope")).lower()


@pytest.mark.parametrize(("args", "option"), [
    (("--run-at", "2001-01-01T00:00:00Z"), "--run-at"),
    (("--delay", "soon"), "--delay"),
    (("--delay", "1m", "--run-at", "2099-01-01T00:00:00Z"), "--delay"),
    (("--ttl", "0"), "--ttl"),
    (("--priority", "11"), "--priority"),
])
def test_bad_timing_exits_2_naming_the_option(cli: CLI, tmp_path: Path,
                                              args: tuple[str, ...], option: str) -> None:
    apply_digest(cli, tmp_path)
    assert option in bad_input(cli("trigger", "digest", *args))
    assert ok_json(cli("executions", "list", "--json")) == []


def test_replay_from_the_command_line(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    original = ok_json(cli("trigger", "digest", "--payload", '{"user": "ada"}',
                           "--concurrency-key", "user-ada", "--json"))["execution_id"]
    replay = ok_json(cli("executions", "replay", original, "--json"))
    assert (replay["status"], replay["replayed_from"]) == ("queued", original)
    shown = ok_json(cli("executions", "show", replay["execution_id"], "--json"))
    assert (shown["source"], shown["replayed_from"], shown["payload"],
            shown["concurrency_key"]) == ("replay", original, {"user": "ada"}, "user-ada")
    other = ok_json(cli("executions", "replay", original, "--payload", '{"user": "bob"}',
                        "--json"))
    assert ok_json(cli("executions", "show", other["execution_id"], "--json"))["payload"] == \
        {"user": "bob"}
    listed = ok(cli("executions", "list")).stdout
    assert "REPLAYED_FROM" in listed and "NOT_BEFORE" in listed and "PRIORITY" in listed
    assert "--payload" in bad_input(cli("executions", "replay", original, "--payload", "[1]"))
    assert "has not started" in bad_input(cli("executions", "replay", original,
                                              "--same-version"))
    assert "not found" in bad_input(cli("executions", "replay", "nope")).lower()
    assert len(ok_json(cli("executions", "list", "--json"))) == 3


def test_concurrency_settings_from_the_command_line(cli: CLI,
                                                    tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    assert ok_json(cli("environments", "set-concurrency", "default", "2", "--json")) == {
        "environment": "default", "max_concurrent": 2, "in_flight": 0}
    [row] = ok_json(cli("environments", "list", "--json"))
    assert (row["max_concurrent"], row["in_flight"]) == (2, 0)
    assert "LIMIT" in bad_input(cli("environments", "set-concurrency", "default", "0"))
    assert "LIMIT" in bad_input(cli("environments", "set-concurrency", "default", "many"))
    assert "ENVIRONMENT" in bad_input(cli("environments", "set-concurrency", "Bad Env", "2"))
    assert ok_json(cli("environments", "list", "--json"))[0]["max_concurrent"] == 2
    ok(cli("environments", "set-concurrency", "default", "none"))
    assert ok_json(cli("environments", "list", "--json"))[0]["max_concurrent"] is None
    assert "--concurrency-key" in bad_input(cli("trigger", "digest", "--concurrency-key",
                                                "has space"))
    assert ok_json(cli("executions", "list", "--json")) == []

"""``orchestrator trigger --delay/--run-at/--ttl/--priority`` and ``orchestrator executions
cancel`` as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.domain.correlation import parse_iso
from tests.acceptance.test_cli import (  # noqa: F401 (fixtures)
    CLI,
    apply_digest,
    bad_input,
    base_env,
    cli,
    cli_env,
    ok,
    ok_json,
)

pytestmark = pytest.mark.slow


def test_a_delayed_trigger_is_shown_and_cancelled(cli: CLI, tmp_path: Path) -> None:  # noqa: F811
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
def test_bad_timing_exits_2_naming_the_option(cli: CLI, tmp_path: Path,  # noqa: F811
                                              args: tuple[str, ...], option: str) -> None:
    apply_digest(cli, tmp_path)
    assert option in bad_input(cli("trigger", "digest", *args))
    assert ok_json(cli("executions", "list", "--json")) == []

"""``orchestrator schedules create --overlap/--jitter/--priority`` and ``schedules backfill`` /
``schedules backfills`` as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.commands import CLI, apply_digest, bad_input, ok, ok_json

pytestmark = pytest.mark.slow


def test_controls_and_an_idempotent_backfill(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    schedule = ok_json(cli("schedules", "create", "--workflow", "digest", "--cron", "0 9 * * *",
                           "--overlap", "skip", "--jitter", "5m", "--priority", "2", "--json"))
    shown = ok_json(cli("schedules", "show", schedule["id"], "--json"))
    assert (shown["overlap"], shown["jitter_seconds"], shown["priority"]) == ("skip", 300, 2)
    assert "jitter" in shown["upcoming_jitter"]
    args = ("schedules", "backfill", schedule["id"], "--start", "2020-01-01T00:00:00Z",
            "--end", "2020-01-03T23:00:00Z", "--overlap", "allow_all", "--json")
    first = ok_json(cli(*args))
    assert (first["created"], first["existing"], first["statuses"]) == (3, 0, {"queued": 3})
    again = ok_json(cli(*args))
    assert (again["created"], again["existing"]) == (0, 3)
    listed = ok_json(cli("schedules", "backfills", schedule["id"], "--json"))
    assert sorted(b["id"] for b in listed) == sorted([first["id"], again["id"]])
    assert "OCCURRENCES" in ok(cli("schedules", "backfills", schedule["id"])).stdout
    executions = ok_json(cli("executions", "list", "--json"))
    assert sorted((e["source"], e["scheduled_for"]) for e in executions) == [
        ("backfill", f"2020-01-0{d}T09:00:00Z") for d in (1, 2, 3)]


@pytest.mark.parametrize(("args", "named"), [
    (("--start", "2020-01-01T00:00:00Z", "--end", "2999-01-01T00:00:00Z"), "--end"),
    (("--start", "then", "--end", "2020-01-01T00:00:00Z"), "--start"),
    (("--start", "2020-01-01T00:00:00Z", "--end", "2020-01-02T00:00:00Z", "--overlap", "x"),
     "--overlap"),
])
def test_bad_backfill_exits_2_naming_the_option(cli: CLI, tmp_path: Path,
                                                args, named) -> None:
    apply_digest(cli, tmp_path)
    schedule = ok_json(cli("schedules", "create", "--workflow", "digest", "--cron", "0 9 * * *",
                           "--json"))
    assert named in bad_input(cli("schedules", "backfill", schedule["id"], *args))
    assert ok_json(cli("executions", "list", "--json")) == []


@pytest.mark.parametrize(("args", "named"), [
    (("--jitter", "2h"), "jitter"),
    (("--overlap", "sometimes"), "--overlap"),
    (("--priority", "-11"), "--priority"),
])
def test_bad_controls_exit_2(cli: CLI, tmp_path: Path, args, named) -> None:
    apply_digest(cli, tmp_path)
    assert named in bad_input(cli("schedules", "create", "--workflow", "digest", "--cron",
                                  "0 9 * * *", *args))
    assert ok_json(cli("schedules", "list", "--json")) == []

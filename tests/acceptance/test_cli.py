"""Acceptance tests of the ``orchestrator`` command line, on SQLite and on PostgreSQL
(``store_url``), asserting what a user sees: stdout/stderr text, exit codes (0 ok, 1 user error in
``run``, 2 bad input, 3 pipeline fault) and ``--json`` fields.

``cli`` calls the CLI's ``main`` in this process (click's ``CliRunner``: the arguments, the
environment, stdout, stderr and the exit code, as a process would have them) and ``process`` the
real executable in a subprocess. Every exit-code family keeps end-to-end checks on ``process``:
0 (``db upgrade``), 1 and 3 (``run``: a user error, a pipeline fault), 2 (an unknown workflow)
and 3 (an unreachable store); the rest use ``cli`` (a subprocess costs a Python start-up and its
imports per call: about a second, several for ``run``, which imports Dagster)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.store.migrate import upgrade
from tests.acceptance.commands import (
    CLI,
    EXIT_FAULT,
    EXIT_OK,
    EXIT_USER_ERROR,
    apply_digest,
    assert_upcoming_every_five_minutes,
    bad_input,
    describe,
    digest_doc,
    ok,
    ok_json,
    parse_iso,
    run_in_process,
    run_process,
    write_doc,
)

pytestmark = pytest.mark.slow


# ------------------------------------------------------------------------------------------ db

def test_db_upgrade_prints_revision_and_is_repeatable(process: CLI, cli: CLI) -> None:
    first = ok(process("db", "upgrade"))
    assert re.search(r"revision \S+", first.stdout), describe(first)
    second = ok(cli("db", "upgrade"))  # in this process: the executable ran above
    assert second.stdout == first.stdout


# ----------------------------------------------------------------------------------- workflows

def test_workflows_apply_list_and_show_track_versions(cli: CLI, tmp_path: Path) -> None:
    path = write_doc(tmp_path / "digest.yaml", digest_doc())

    applied = ok_json(cli("workflows", "apply", str(path), "--json"))
    assert applied == [{"name": "digest", "environment": "default", "version": 1,
                        "changed": True}]
    listed = ok_json(cli("workflows", "list", "--json"))
    assert [(w["environment"], w["name"], w["version"], w["blocks"]) for w in listed] == [
        ("default", "digest", 1, 2)]

    again = ok_json(cli("workflows", "apply", str(path), "--json"))
    assert again == [{"name": "digest", "environment": "default", "version": 1,
                      "changed": False}]
    assert [w["version"] for w in ok_json(cli("workflows", "list", "--json"))] == [1]

    write_doc(path, digest_doc(total=4))
    changed = ok_json(cli("workflows", "apply", str(path), "--json"))
    assert changed == [{"name": "digest", "environment": "default", "version": 2,
                        "changed": True}]
    assert [w["version"] for w in ok_json(cli("workflows", "list", "--json"))] == [2]

    shown = ok_json(cli("workflows", "show", "digest", "--json"))
    assert shown["name"] == "digest"
    assert shown["version"] == 2
    assert shown["document"]["name"] == "digest"
    assert shown["document"]["blocks"] == digest_doc(total=4)["blocks"]

    # The human form of apply is a table naming the workflow.
    table = ok(cli("workflows", "apply", str(path)))
    assert "digest" in table.stdout and "VERSION" in table.stdout


def test_workflows_show_unknown_is_bad_input(process: CLI) -> None:
    stderr = bad_input(process("workflows", "show", "nope", "--json"))
    assert "not found" in stderr


def test_workflows_apply_reports_every_problem_with_its_field(cli: CLI, tmp_path: Path) -> None:
    path = write_doc(tmp_path / "broken.yaml", {
        "name": "broken",
        "blocks": [
            {"id": "a", "type": "no_such_type"},                       # unknown block type
            {"id": "a", "type": "transform"},                          # duplicate id
            {"id": "b", "type": "transform",
             "with": {"x": "{{ ghost.y }}", "y": "{{ c.z }}"}},         # unknown block + cycle
            {"id": "c", "type": "transform", "with": {"z": "{{ b.y }}"}},
        ],
    })
    stderr = bad_input(cli("workflows", "apply", str(path)))
    assert "nothing was applied" in stderr
    assert "blocks[0].type" in stderr and "no_such_type" in stderr
    assert "blocks[1].id" in stderr and "duplicate" in stderr
    assert "blocks[2].with" in stderr and "ghost" in stderr
    assert "cycle" in stderr and re.search(r"\bb -> c -> b\b|\bc -> b -> c\b", stderr), stderr
    assert "4 problem(s)" in stderr
    assert ok_json(cli("workflows", "list", "--json")) == []


def test_workflows_apply_directory_is_all_or_nothing(cli: CLI, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write_doc(folder / "a_good.yaml", digest_doc())
    write_doc(folder / "b_bad.yaml", {"name": "bad", "blocks": [
        {"id": "x", "type": "transform", "with": {"v": "{{ missing.field }}"}}]})

    stderr = bad_input(cli("workflows", "apply", str(folder)))
    assert "b_bad.yaml" in stderr and "blocks[0].with" in stderr and "missing" in stderr
    assert "a_good.yaml" not in stderr
    assert ok_json(cli("workflows", "list", "--json")) == []

    # Once the bad one is fixed, the same directory applies both.
    write_doc(folder / "b_bad.yaml", {"name": "bad", "blocks": [
        {"id": "x", "type": "transform", "with": {"v": 1}}]})
    applied = ok_json(cli("workflows", "apply", str(folder), "--json"))
    assert sorted(a["name"] for a in applied) == ["bad", "digest"]


# ----------------------------------------------------------------------------------- schedules

def test_schedules_create_rejects_bad_input_and_writes_nothing(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cases: list[tuple[str, list[str], str, str]] = [
        # (what, arguments, field named on stderr, what the message says)
        ("invalid cron", ["-w", "digest", "--cron", "61 * * * *"], "cron:",
         "not a valid cron expression"),
        ("unknown timezone", ["-w", "digest", "--cron", "* * * * *", "--timezone", "Mars/Base"],
         "timezone:", "Mars/Base"),
        ("--at in the past", ["-w", "digest", "--at", past], "run_at:", "past"),
        ("unknown workflow", ["-w", "nope", "--cron", "* * * * *"], "workflow", "not found"),
        ("both --cron and --at", ["-w", "digest", "--cron", "* * * * *", "--at", future],
         "cron:", "exactly one"),
        ("bad --payload JSON", ["-w", "digest", "--cron", "* * * * *", "--payload", "{bad"],
         "--payload:", "not valid JSON"),
    ]
    for label, args, field, message in cases:
        proc = cli("schedules", "create", *args, "--json")
        stderr = bad_input(proc)
        assert field in stderr, f"{label}: field {field!r} not named\n{describe(proc)}"
        assert message in stderr, f"{label}: {message!r} not said\n{describe(proc)}"
        assert proc.stdout == "", f"{label}: printed a result\n{describe(proc)}"
    assert ok_json(cli("schedules", "list", "--json")) == []


def test_schedules_create_reports_bad_cron_and_bad_timezone_together(
        cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    stderr = bad_input(cli("schedules", "create", "-w", "digest", "--cron", "61 * * * *",
                           "--timezone", "Mars/Base"))
    lines = [line.strip() for line in stderr.splitlines()]
    assert any(line.startswith("- cron:") and "61 * * * *" in line for line in lines), stderr
    assert any(line.startswith("- timezone:") and "Mars/Base" in line for line in lines), stderr
    assert "2 problem(s)" in stderr
    assert ok_json(cli("schedules", "list", "--json")) == []


def test_schedule_lifecycle(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)

    created = ok_json(cli("schedules", "create", "--workflow", "digest", "--cron", "*/5 * * * *",
                          "--timezone", "Europe/Berlin", "--payload", '{"user": "ada"}',
                          "--json"))
    schedule_id = created["id"]
    assert schedule_id
    assert created["enabled"] is True
    assert created["created"] is True
    assert created["cron"] == "*/5 * * * *"
    assert created["timezone"] == "Europe/Berlin"
    assert created["payload"] == {"user": "ada"}
    assert_upcoming_every_five_minutes(created)

    shown = ok_json(cli("schedules", "show", schedule_id, "--json"))
    assert shown["id"] == schedule_id
    assert_upcoming_every_five_minutes(shown)

    listed = ok_json(cli("schedules", "list", "--json"))
    assert [s["id"] for s in listed] == [schedule_id]

    # --key makes create idempotent: the same schedule, created once.
    keyed = ok_json(cli("schedules", "create", "-w", "digest", "--cron", "*/5 * * * *",
                        "--key", "k1", "--json"))
    keyed_again = ok_json(cli("schedules", "create", "-w", "digest", "--cron", "*/5 * * * *",
                              "--key", "k1", "--json"))
    assert keyed["created"] is True
    assert keyed_again["created"] is False
    assert keyed_again["id"] == keyed["id"] != schedule_id
    assert len(ok_json(cli("schedules", "list", "--json"))) == 2

    paused = ok_json(cli("schedules", "pause", schedule_id, "--json"))
    assert paused["enabled"] is False
    assert paused["next_run_at"] is None
    assert paused["upcoming"] == []
    assert ok_json(cli("schedules", "show", schedule_id, "--json"))["enabled"] is False

    resumed = ok_json(cli("schedules", "resume", schedule_id, "--json"))
    assert resumed["enabled"] is True
    assert resumed["next_run_at"] is not None
    assert parse_iso(resumed["next_run_at"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert_upcoming_every_five_minutes(resumed)

    deleted = ok(cli("schedules", "delete", schedule_id))
    assert schedule_id in deleted.stdout
    assert "not found" in bad_input(cli("schedules", "show", schedule_id, "--json"))
    assert "not found" in bad_input(cli("schedules", "delete", schedule_id))
    assert [s["id"] for s in ok_json(cli("schedules", "list", "--json"))] == [keyed["id"]]


def test_one_time_schedule_shows_its_single_instant(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    created = ok_json(cli("schedules", "create", "-w", "digest",
                          "--at", at.isoformat(), "--json"))
    expected = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert created["cron"] is None
    assert created["run_at"] == expected
    assert created["next_run_at"] == expected
    assert created["upcoming"] == [expected]


# ------------------------------------------------------------------------ run and executions

def test_run_reports_success_and_user_error(cli: CLI, process: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    ok(cli("workflows", "apply", str(write_doc(tmp_path / "oops.yaml", {
        "name": "oops",
        "blocks": [
            {"id": "fetch", "type": "transform", "with": {"total": 3}},
            {"id": "use", "type": "transform", "with": {"x": "{{ fetch.nope }}"}},
        ],
    }))))

    good = ok_json(cli("run", "digest", "--payload", '{"user":"ada"}', "--json"))
    assert good["status"] == "success"
    assert good["outcome"] == "success"
    assert good["source"] == "manual"
    assert good["payload"] == {"user": "ada"}
    assert good["output"] == {"count": 3, "who": "ada"}
    assert good["workflow_version"] == 1

    failed_proc = process("run", "oops", "--json")
    assert failed_proc.returncode == EXIT_USER_ERROR, describe(failed_proc)
    assert "Traceback" not in failed_proc.stderr
    failed = json.loads(failed_proc.stdout)
    assert failed["status"] == "error"
    assert failed["outcome"] == "user_error"
    assert "nope" in json.dumps(failed["error"])

    listed = ok_json(cli("executions", "list", "--json"))
    by_id = {e["execution_id"]: e for e in listed}
    assert set(by_id) == {good["execution_id"], failed["execution_id"]}
    assert by_id[good["execution_id"]]["status"] == "success"
    assert by_id[failed["execution_id"]]["status"] == "error"
    assert by_id[failed["execution_id"]]["outcome"] == "user_error"
    assert [e["execution_id"] for e in ok_json(
        cli("executions", "list", "--status", "error", "--json"))] == [failed["execution_id"]]

    shown_good = ok_json(cli("executions", "show", good["execution_id"], "--json"))
    assert shown_good["status"] == "success"
    assert [(b["block_id"], b["status"]) for b in shown_good["blocks"]] == [
        ("fetch", "success"), ("summary", "success")]

    shown_failed = ok_json(cli("executions", "show", failed["execution_id"], "--json"))
    assert shown_failed["outcome"] == "user_error"
    blocks = {b["block_id"]: b for b in shown_failed["blocks"]}
    assert blocks["fetch"]["status"] == "success"
    assert blocks["use"]["status"] == "error"
    assert "nope" in (blocks["use"]["error"] or "")


def test_run_pipeline_fault_exits_3_and_raises_one_alert(cli: CLI, process: CLI,
                                                          store_url: str, tmp_path: Path) -> None:
    """A block type removed from the code after the workflow was applied: the trigger was
    accepted, the system cannot honour it. A pipeline fault, not the user's error."""
    apply_digest(cli, tmp_path)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        document = digest_doc()
        document["blocks"][0]["type"] = "removed_in_last_deploy"
        conn.execute(sa.text("UPDATE orch_workflow_versions SET document = :d"),
                     {"d": json.dumps(document)})
    engine.dispose()

    proc = process("run", "digest", "--json")
    assert proc.returncode == EXIT_FAULT, describe(proc)
    assert "Traceback" not in proc.stderr
    execution = json.loads(proc.stdout)
    assert (execution["status"], execution["outcome"], execution["finalized_by"]) == (
        "error", "pipeline_fault", "hook")
    assert "removed_in_last_deploy" in execution["error"]["message"]

    [alert] = ok_json(cli("alerts", "list", "--json"))
    assert alert["execution_id"] == execution["execution_id"]
    assert (alert["kind"], alert["delivery_status"]) == ("pipeline_fault", "none")
    assert alert["details"]["run_url"].endswith(f"/runs/{execution['dagster_run_id']}")
    table = ok(cli("alerts", "list")).stdout
    assert "pipeline_fault" in table and execution["execution_id"] in table
    assert ok_json(cli("alerts", "list", "--execution", "nope", "--json")) == []


def test_trigger_queues_a_manual_execution(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    queued = ok_json(cli("trigger", "digest", "--payload", '{"user": "ada"}', "--json"))
    assert queued["status"] == "queued"
    assert queued["execution_id"]

    shown = ok_json(cli("executions", "show", queued["execution_id"], "--json"))
    assert shown["execution_id"] == queued["execution_id"]
    assert shown["status"] == "queued"
    assert shown["source"] == "manual"
    assert shown["workflow"] == "digest"
    assert shown["payload"] == {"user": "ada"}

    listed = ok_json(cli("executions", "list", "--json"))
    assert [e["execution_id"] for e in listed] == [queued["execution_id"]]

    assert "not found" in bad_input(cli("trigger", "nope", "--json"))
    assert "not found" in bad_input(cli("executions", "show", "no-such-execution"))


def test_trigger_with_idempotency_key_dedupes_like_the_api(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    first = ok_json(cli("trigger", "digest", "--payload", '{"user": "ada"}',
                        "--idempotency-key", "order-42", "--idempotency-ttl", "1h", "--json"))
    assert (first["status"], first["deduplicated"]) == ("queued", False)
    again = ok_json(cli("trigger", "digest", "--payload", '{"user": "bob"}',
                        "--idempotency-key", "order-42", "--json"))
    assert again == first | {"deduplicated": True}
    human = ok(cli("trigger", "digest", "--idempotency-key", "order-42")).stdout
    assert re.search(r"^deduplicated\s+True$", human, re.M), human
    assert first["execution_id"] in human
    other = ok_json(cli("trigger", "digest", "--idempotency-key", "order-43", "--json"))
    assert other["execution_id"] != first["execution_id"] and not other["deduplicated"]

    shown = ok_json(cli("executions", "show", first["execution_id"], "--json"))
    assert (shown["idempotency_key"], shown["payload"], shown["source"]) == \
        ("order-42", {"user": "ada"}, "manual")
    expires = parse_iso(shown["idempotency_key_expires_at"])
    assert timedelta(minutes=58) < expires - datetime.now(UTC) <= timedelta(hours=1), shown
    assert len(ok_json(cli("executions", "list", "--json"))) == 2

    for ttl, message in (("1y", "duration such as"), ("0s", "positive"),
                         ("31d", "at most 30 days")):
        stderr = bad_input(cli("trigger", "digest", "--idempotency-key", "k",
                               "--idempotency-ttl", ttl, "--json"))
        assert "--idempotency-ttl" in stderr and message in stderr, stderr
    assert "--idempotency-key" in bad_input(cli("trigger", "digest", "--idempotency-key", "a b"))
    assert len(ok_json(cli("executions", "list", "--json"))) == 2


def test_payload_must_be_a_json_object(cli: CLI, tmp_path: Path) -> None:
    apply_digest(cli, tmp_path)
    for args in (["trigger", "digest"], ["run", "digest"],
                 ["schedules", "create", "-w", "digest", "--cron", "* * * * *"]):
        proc = cli(*args, "--payload", "[1,2]", "--json")
        stderr = bad_input(proc)
        assert "--payload" in stderr and "JSON object" in stderr, describe(proc)
        assert proc.stdout == "", describe(proc)
        nul = bad_input(cli(*args, "--payload", '{"note": "a\\u0000b"}', "--json"))
        assert "--payload.note" in nul and "NUL character" in nul
    assert ok_json(cli("executions", "list", "--json")) == []
    assert ok_json(cli("schedules", "list", "--json")) == []


# -------------------------------------------------------------------------------- pipeline fault

def test_unreachable_store_is_a_fault_without_secrets_or_traceback(
        base_env: dict[str, str], tmp_path: Path) -> None:
    """The real executable for a read and for ``db upgrade``, the other commands in this
    process (each executable costs the suite a Python start-up). (Not on ``store_url``: the
    store is the unreachable one, the same for both backends.)"""
    env = base_env | {"ORCHESTRATOR_DATABASE_URL":
                      "postgresql+psycopg2://user:s3cret@127.0.0.1:1/x"}
    doc = write_doc(tmp_path / "digest.yaml", digest_doc())
    for run, args in ((run_process, ["workflows", "list"]), (run_process, ["db", "upgrade"]),
                      (run_in_process, ["workflows", "list", "--json"]),
                      (run_in_process, ["workflows", "apply", str(doc)]),
                      (run_in_process, ["schedules", "list"]),
                      (run_in_process, ["executions", "show", "x"]),
                      (run_in_process, ["trigger", "digest"])):
        proc = run(tuple(args), env, tmp_path)
        assert proc.returncode == EXIT_FAULT, describe(proc)
        assert "error:" in proc.stderr, describe(proc)
        for text in (proc.stdout, proc.stderr):
            assert "s3cret" not in text, describe(proc)
            assert "Traceback" not in text, describe(proc)


# ------------------------------------------------------------------------------------ start-up

HEAVY = ("dagster", "alembic", "httpx", "uvicorn", "starlette", "yaml", "croniter", "sqlalchemy")


def test_commands_import_only_what_they_need(base_env: dict[str, str], tmp_path: Path) -> None:
    """Each command pays only for what it uses: `--help` imports none of the heavy packages, a
    store command the store's SQLAlchemy (and croniter, which the store's schedules use), never
    Dagster, alembic, httpx or the HTTP server; `db upgrade` adds alembic (and Dagster, to create
    its storage in DAGSTER_HOME). One fresh interpreter
    runs the commands in that order and reports what has been imported after each."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    env = base_env | {"ORCHESTRATOR_DATABASE_URL": url}
    commands = [["--help"], ["workflows", "list"], ["schedules", "list"],
                ["executions", "list"], ["db", "upgrade"]]
    code = ("import json, sys\nfrom orchestrator.cli.main import main\nseen = []\n"
            f"for argv in {commands!r}:\n"
            "    main(argv)\n"
            f"    seen.append([m for m in {HEAVY!r} if m in sys.modules])\n"
            "print(json.dumps(seen), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_OK, proc.stderr
    seen = dict(zip(map(" ".join, commands), json.loads(proc.stderr.splitlines()[-1]),
                    strict=True))
    store = {"sqlalchemy", "croniter"}
    assert seen["--help"] == []
    for command in ("workflows list", "schedules list", "executions list"):
        assert set(seen[command]) <= store, seen  # cumulative: each of them, and all together
    # `db upgrade` adds alembic, and with DAGSTER_HOME set creates Dagster's storage too.
    assert set(seen["db upgrade"]) <= store | {"alembic", "dagster", "yaml"}, seen

"""Workflow documents, references, correlation ids and settings: the user-facing contracts.

What this file proves:

- ``parse_workflow`` orders blocks by their dependencies (references and ``depends_on``), reports
  every problem of a bad document at once (each naming its field), rejects unknown fields and
  out-of-range timeouts, and gives a stable digest;
- ``render`` keeps the type of a whole-string reference, renders embedded references as text,
  and names the missing field (and the available ones) when a reference does not resolve;
- ``Correlation.for_schedule`` derives the same ids for the same occurrence, and its tags and
  run keys use ISO-8601 UTC with ``Z``;
- ``Settings.from_env`` reads only the mapping it is given and names the variable at fault.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain.correlation import Correlation, schedule_run_key
from orchestrator.domain.templating import lookup, render
from orchestrator.domain.workflow import parse_workflow
from orchestrator.exceptions import InvalidInput, Problem, WorkflowError
from orchestrator.settings import Settings

BLOCK_TYPES = {"transform", "python"}


def problems_of(document: Any) -> list[Problem]:
    with pytest.raises(InvalidInput) as caught:
        parse_workflow(document, BLOCK_TYPES)
    return caught.value.problems


def messages_for(problems: list[Problem], field: str) -> list[str]:
    return [p.message for p in problems if p.field == field]


def minimal(**extra: Any) -> dict[str, Any]:
    return {"name": "nightly", "blocks": [{"id": "only", "type": "python"}], **extra}


# --------------------------------------------------------------------------------------------
# parse_workflow
# --------------------------------------------------------------------------------------------


def test_blocks_come_in_dependency_order_even_when_declared_out_of_order() -> None:
    document = {
        "name": "nightly-report",
        "blocks": [
            {"id": "publish", "type": "python", "depends_on": ["notify"]},
            {"id": "report", "type": "python", "with": {"total": "{{ total.value }}"}},
            {"id": "total", "type": "transform",
             "with": {"rows": "{{ fetch.rows }}", "region": "{{ trigger.region }}"}},
            {"id": "fetch", "type": "transform", "with": {"day": "day {{ trigger.day }}"}},
            {"id": "notify", "type": "python", "with": {"text": "done: {{ report.summary }}"}},
        ],
    }
    spec = parse_workflow(document, BLOCK_TYPES)
    assert [b.id for b in spec.blocks] == ["fetch", "total", "report", "notify", "publish"]
    assert spec.name == "nightly-report"
    assert spec.environment == "default"
    assert spec.timeout_seconds == 300
    assert spec.fail_run_on_user_error is False
    by_id = {b.id: b for b in spec.blocks}
    assert by_id["total"].inputs == {"rows": "{{ fetch.rows }}", "region": "{{ trigger.region }}"}
    assert by_id["publish"].depends_on == ("notify",)


def test_independent_blocks_keep_declaration_order() -> None:
    document = {"name": "fan", "blocks": [{"id": "b", "type": "python"},
                                          {"id": "a", "type": "python"}]}
    assert [b.id for b in parse_workflow(document, BLOCK_TYPES).blocks] == ["b", "a"]


def test_every_problem_of_a_bad_document_is_reported_at_once() -> None:
    document = {
        "name": "Bad Name",
        "blocks": [
            {"id": "a", "type": "sql", "with": {"x": "{{ b.out }}"}},  # unknown type
            {"id": "b", "type": "python", "with": {"y": "{{ a.out }}"}},  # a -> b -> a
            {"id": "a", "type": "python"},  # duplicate id
            {"id": "c", "type": "transform", "with": {"z": "{{ ghost.value }}"}},  # unknown ref
        ],
    }
    with pytest.raises(InvalidInput) as caught:
        parse_workflow(document, BLOCK_TYPES)
    problems = caught.value.problems

    assert "'Bad Name'" in messages_for(problems, "name")[0]
    [unknown_type] = messages_for(problems, "blocks[0].type")
    assert "unknown block type 'sql'" in unknown_type
    assert "python, transform" in unknown_type  # lists what is registered
    [duplicate] = messages_for(problems, "blocks[2].id")
    assert "duplicate block id 'a'" in duplicate and "blocks[0]" in duplicate
    [unknown_ref] = messages_for(problems, "blocks[3].with")
    assert "unknown block 'ghost'" in unknown_ref
    [cycle] = messages_for(problems, "blocks")
    assert "dependency cycle: a -> b -> a" in cycle
    assert len(problems) == 5
    assert "workflow 'Bad Name'" in str(caught.value)
    assert "5 problem(s)" in str(caught.value)


def test_self_reference_and_unknown_depends_on() -> None:
    problems = problems_of({"name": "w", "blocks": [
        {"id": "a", "type": "python", "with": {"v": "{{ a.out }}"}, "depends_on": ["nope"]},
    ]})
    assert "references its own output" in messages_for(problems, "blocks[0].with")[0]
    assert "unknown block 'nope'" in messages_for(problems, "blocks[0].depends_on")[0]


def test_reserved_and_malformed_block_ids() -> None:
    problems = problems_of({"name": "w", "blocks": [
        {"id": "trigger", "type": "python"},
        {"id": "9lives", "type": "python"},
        {"type": "python"},
    ]})
    assert "reserved" in messages_for(problems, "blocks[0].id")[0]
    assert "'9lives' is not allowed" in messages_for(problems, "blocks[1].id")[0]
    assert "None is not allowed" in messages_for(problems, "blocks[2].id")[0]


def test_unknown_top_level_and_block_fields_are_rejected() -> None:
    document = minimal(schedule="0 9 * * *")
    document["blocks"][0]["retries"] = 3
    problems = problems_of(document)
    [top] = messages_for(problems, "schedule")
    assert top.startswith("unknown field; allowed:") and "timeout_seconds" in top
    [block] = messages_for(problems, "blocks[0].retries")
    assert block.startswith("unknown field; allowed:") and "depends_on" in block
    assert len(problems) == 2


@pytest.mark.parametrize(
    ("document", "field", "phrase"),
    [
        pytest.param(["not", "a", "mapping"], "(document)", "must be a mapping", id="list"),
        pytest.param({"name": "w"}, "blocks", "non-empty list", id="no-blocks"),
        pytest.param({"name": "w", "blocks": []}, "blocks", "non-empty list", id="empty-blocks"),
    ],
)
def test_document_shape_problems(document: Any, field: str, phrase: str) -> None:
    [problem] = problems_of(document)
    assert problem.field == field
    assert phrase in problem.message


@pytest.mark.parametrize("timeout", [1, 3600, 86400], ids=lambda t: f"ok-{t}")
def test_timeout_seconds_within_bounds(timeout: int) -> None:
    assert parse_workflow(minimal(timeout_seconds=timeout), BLOCK_TYPES).timeout_seconds == timeout


@pytest.mark.parametrize(
    "timeout", [0, -5, 86401, True, "60", 1.5], ids=lambda t: f"bad-{t!r}"
)
def test_timeout_seconds_out_of_bounds(timeout: Any) -> None:
    [problem] = problems_of(minimal(timeout_seconds=timeout))
    assert problem.field == "timeout_seconds"
    assert "from 1 to 86400" in problem.message


def test_nul_character_is_refused_where_it_is() -> None:
    document = {"name": "nightly", "blocks": [{"id": "only", "type": "python",
                                               "with": {"code": "x = '\x00'"}}]}
    [problem] = problems_of(document)
    assert problem.field == "blocks[0].with.code" and "NUL character" in problem.message


def test_fail_run_on_user_error_must_be_boolean() -> None:
    [problem] = problems_of(minimal(fail_run_on_user_error="yes"))
    assert problem.field == "fail_run_on_user_error"
    assert parse_workflow(minimal(fail_run_on_user_error=True),
                          BLOCK_TYPES).fail_run_on_user_error is True


def test_digest_is_stable_and_content_sensitive() -> None:
    document = minimal(description="nightly numbers", timeout_seconds=60)
    first = parse_workflow(document, BLOCK_TYPES).digest
    assert parse_workflow(copy.deepcopy(document), BLOCK_TYPES).digest == first
    reordered = dict(reversed(list(document.items())))
    assert parse_workflow(reordered, BLOCK_TYPES).digest == first
    # the implied default environment is part of the document
    explicit = minimal(description="nightly numbers", timeout_seconds=60, environment="default")
    assert parse_workflow(explicit, BLOCK_TYPES).digest == first
    assert re.fullmatch(r"[0-9a-f]{64}", first)  # sha256, hex
    changed = minimal(description="nightly numbers", timeout_seconds=61)
    assert parse_workflow(changed, BLOCK_TYPES).digest != first


# --------------------------------------------------------------------------------------------
# templating
# --------------------------------------------------------------------------------------------

SCOPE = {
    "trigger": {"region": "eu", "day": "2024-06-01"},
    "total": {"value": 42, "rows": [{"n": 1}, {"n": 2}], "ok": True},
}


def test_whole_reference_keeps_the_value_type() -> None:
    assert render("{{ total.value }}", SCOPE) == 42
    assert render("  {{total.ok}} ", SCOPE) is True
    assert render("{{ total.rows }}", SCOPE) == [{"n": 1}, {"n": 2}]
    assert render("{{ total.rows.1.n }}", SCOPE) == 2


def test_embedded_reference_renders_as_text() -> None:
    assert render("total {{ total.value }} for {{ trigger.region }}", SCOPE) == "total 42 for eu"
    assert render("rows: {{ total.rows }}", SCOPE) == 'rows: [{"n": 1}, {"n": 2}]'


def test_render_walks_mappings_and_lists() -> None:
    value = {"a": ["{{ total.value }}", "x-{{ trigger.day }}"], "b": 7}
    assert render(value, SCOPE) == {"a": [42, "x-2024-06-01"], "b": 7}


def test_missing_field_names_it_and_lists_available_fields() -> None:
    with pytest.raises(WorkflowError) as caught:
        render({"v": "sum is {{ total.count }}"}, SCOPE, block_id="report")
    message = str(caught.value)
    assert "'count'" in message
    assert "total has no field" in message
    assert "available: ok, rows, value" in message
    assert caught.value.block_id == "report"


def test_missing_root_names_it() -> None:
    with pytest.raises(WorkflowError, match=r"has no field 'ghost'; available: total, trigger"):
        render("{{ ghost.value }}", SCOPE)


# --------------------------------------------------------------------------------------------
# correlation
# --------------------------------------------------------------------------------------------

SCHEDULED_FOR = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


def for_schedule(schedule_id: str, scheduled_for: datetime) -> Correlation:
    return Correlation.for_schedule(schedule_id=schedule_id, scheduled_for=scheduled_for,
                                    workflow="nightly", environment="prod",
                                    payload={"region": "eu"})


def test_same_occurrence_gets_the_same_ids() -> None:
    first = for_schedule("sch-1", SCHEDULED_FOR)
    # the same instant written in another offset is the same occurrence
    again = for_schedule("sch-1", SCHEDULED_FOR.astimezone(timezone(timedelta(hours=2))))
    assert (again.execution_id, again.request_id) == (first.execution_id, first.request_id)
    assert first.execution_id != first.request_id


def test_other_instant_or_schedule_gets_other_ids() -> None:
    first = for_schedule("sch-1", SCHEDULED_FOR)
    later = for_schedule("sch-1", SCHEDULED_FOR + timedelta(days=1))
    other = for_schedule("sch-2", SCHEDULED_FOR)
    ids = {c.execution_id for c in (first, later, other)}
    assert len(ids) == 3
    assert len({c.request_id for c in (first, later, other)}) == 3


def test_tags_carry_the_correlation() -> None:
    scheduled_for = datetime(2024, 6, 1, 11, 0, 30, 123456, tzinfo=timezone(timedelta(hours=2)))
    correlation = for_schedule("sch-1", scheduled_for)
    tags = correlation.tags()
    assert tags == {
        "orchestrator/execution_id": correlation.execution_id,
        "orchestrator/request_id": correlation.request_id,
        "orchestrator/source": "schedule",
        "orchestrator/workflow": "nightly",
        "orchestrator/environment": "prod",
        "orchestrator/trigger_id": "sch-1",
        "orchestrator/scheduled_for": "2024-06-01T09:00:30Z",
    }
    assert all(isinstance(v, str) for v in tags.values())


def test_schedule_run_key_format() -> None:
    moment = datetime(2024, 3, 10, 3, 0, 0, 500, tzinfo=timezone(timedelta(hours=-5)))
    assert schedule_run_key("sch-1", moment) == "schedule:sch-1:2024-03-10T08:00:00Z"


# --------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------


def test_no_database_url_and_no_dagster_home() -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({})
    [problem] = caught.value.problems
    assert problem.field == "ORCHESTRATOR_DATABASE_URL"
    assert "DAGSTER_HOME" in problem.message


def test_dagster_home_gives_sqlite_under_it(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    settings = Settings.from_env({"DAGSTER_HOME": str(home)})
    assert settings.database_url == f"sqlite:///{home.resolve()}/orchestrator.sqlite"
    assert home.is_dir()
    assert settings.max_runs_per_tick == 50
    assert settings.sensor_interval_seconds == 5
    assert settings.catchup_window == timedelta(hours=1)
    assert settings.burst_stuck_after == timedelta(minutes=10)


def test_explicit_values_win(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "ORCHESTRATOR_DATABASE_URL": "postgresql+psycopg2://db/orch",
        "DAGSTER_HOME": str(tmp_path),
        "ORCHESTRATOR_MAX_RUNS_PER_TICK": "7",
        "ORCHESTRATOR_CATCHUP_WINDOW_SECONDS": "0",
        "ORCHESTRATOR_BURST_STUCK_AFTER_SECONDS": "90",
    })
    assert settings.database_url == "postgresql+psycopg2://db/orch"
    assert settings.max_runs_per_tick == 7
    assert settings.catchup_window == timedelta(0)
    assert settings.burst_stuck_after == timedelta(seconds=90)


@pytest.mark.parametrize("raw", ["0", "abc", "-3"])
def test_bad_max_runs_per_tick(tmp_path: Path, raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"DAGSTER_HOME": str(tmp_path), "ORCHESTRATOR_MAX_RUNS_PER_TICK": raw})
    [problem] = caught.value.problems
    assert problem.field == "ORCHESTRATOR_MAX_RUNS_PER_TICK"
    assert f"{raw!r} is not allowed" in problem.message
    assert ">= 1" in problem.message


@pytest.mark.parametrize("raw", ["0", "ten", "-1"])
def test_bad_burst_stuck_after(tmp_path: Path, raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"DAGSTER_HOME": str(tmp_path),
                           "ORCHESTRATOR_BURST_STUCK_AFTER_SECONDS": raw})
    [problem] = caught.value.problems
    assert problem.field == "ORCHESTRATOR_BURST_STUCK_AFTER_SECONDS"
    assert f"{raw!r} is not allowed" in problem.message and ">= 1" in problem.message


def test_a_non_ascii_digit_index_is_a_missing_field_not_a_crash() -> None:
    scope = {"items": {"list": ["a", "b"]}}
    assert lookup("items.list.1", scope) == "b"
    with pytest.raises(WorkflowError, match="has no field '¹'"):
        lookup("items.list.¹", scope)  # "¹".isdigit() is True; int("¹") raises ValueError

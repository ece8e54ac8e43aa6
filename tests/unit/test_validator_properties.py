"""Property-based fuzzing (hypothesis) of the two validators users feed directly: workflow
documents (``parse_workflow``), schedules (``validate_schedule``) and durations
(``parse_duration``).

What this file proves, for arbitrary JSON-shaped input and for mutations of valid input:

- the only exception either validator raises is :class:`InvalidInput` (no ``KeyError``,
  ``TypeError``, croniter or zoneinfo error escapes);
- every rejection lists at least one problem, and every problem names the field it is about
  (a field of the input, or ``blocks[i]...`` inside it) with a non-empty message;
- an accepted workflow's blocks come out in an order where every dependency precedes its user.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.domain.ingest import parse_duration
from orchestrator.domain.schedules import ScheduleSpec, validate_schedule
from orchestrator.domain.templating import references, root_of
from orchestrator.domain.workflow import WorkflowSpec, parse_workflow
from orchestrator.exceptions import InvalidInput

BLOCK_TYPES = {"transform", "python"}
NOW = datetime(2030, 1, 15, 12, 0, 30, tzinfo=UTC)
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
WORKFLOW_FIELD = re.compile(
    r"^(\(document\)|name|environment|timeout_seconds|fail_run_on_user_error|blocks"
    r"|blocks\[\d+\](\..+)?)$", re.DOTALL)  # a block's unknown key may hold a newline
SCHEDULE_FIELDS = {"workflow", "environment", "cron", "timezone", "run_at", "payload", "key"}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
block_ids = st.one_of(st.sampled_from(["a", "b", "c", "trigger", "_x"]), st.text(max_size=6))
references_to = st.builds(lambda root, rest: f"{{{{ {root}{rest} }}}}",
                          st.sampled_from(["a", "b", "c", "trigger", "zz"]),
                          st.sampled_from(["", ".x", ".payload.user", ".x.y"]))
block_inputs = st.dictionaries(st.text(min_size=1, max_size=5),
                               st.one_of(references_to, scalars, json_values), max_size=3)
blocks = st.fixed_dictionaries(
    {"id": block_ids, "type": st.one_of(st.sampled_from(sorted(BLOCK_TYPES)), st.text(max_size=6))},
    optional={"with": st.one_of(block_inputs, json_values),
              "depends_on": st.one_of(st.lists(block_ids, max_size=3), json_values),
              "extra": json_values})
documents = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["digest", "a-b_c", "Bad Name", ""]), json_values)},
    optional={"blocks": st.one_of(st.lists(blocks, max_size=4), json_values),
              "environment": st.one_of(st.sampled_from(["default", "tenant-1"]), json_values),
              "timeout_seconds": st.one_of(st.integers(-5, 100_000), json_values),
              "fail_run_on_user_error": json_values,
              "unknown": json_values})


def _check_rejection(exc: InvalidInput, allowed: Any) -> None:
    assert exc.problems, "a rejection lists at least one problem"
    for problem in exc.problems:
        assert isinstance(problem.field, str) and problem.field, problem
        assert problem.message.strip(), problem
        assert allowed(problem.field), f"problem does not name a field of the input: {problem}"
        assert problem.field in str(exc)


def _check_order(spec: WorkflowSpec) -> None:
    position = {b.id: i for i, b in enumerate(spec.blocks)}
    for block in spec.blocks:
        deps = {root_of(p) for p in references(block.inputs)} | set(block.depends_on)
        for dep in deps - {"trigger"}:
            assert position[dep] < position[block.id]


def _label(key: Any) -> str:
    return str(key) if str(key).strip() else repr(str(key))


def _workflow_field(document: Any) -> Any:
    def allowed(name: str) -> bool:
        if WORKFLOW_FIELD.match(name) or not isinstance(document, dict):
            return bool(WORKFLOW_FIELD.match(name))
        if name in {_label(k) for k in document}:
            return True
        # A path under a key of the document (a NUL character is shown escaped, as ascii()).
        keys = {_label(ascii(str(k))[1:-1] if "\x00" in str(k) else k) for k in document}
        return any(name == k or name.startswith((k + ".", k + "[")) for k in keys)
    return allowed


@FUZZ
@given(documents)
def test_workflow_documents_are_accepted_or_rejected_field_by_field(document: Any) -> None:
    try:
        spec = parse_workflow(document, BLOCK_TYPES)
    except InvalidInput as exc:
        _check_rejection(exc, _workflow_field(document))
        return
    _check_order(spec)


@FUZZ
@given(json_values)
def test_any_json_value_as_a_workflow_document(document: Any) -> None:
    try:
        parse_workflow(document, BLOCK_TYPES)
    except InvalidInput as exc:
        _check_rejection(exc, _workflow_field(document))


crons = st.one_of(
    st.sampled_from(["* * * * *", "0 9 * * 1-5", "*/5 * * * *", "0 0 31 2 *", "61 * * * *",
                     "* * *", "@daily", "0 0 * * 7", "0 0 L * *", "? * * * *", "1-0 * * * *"]),
    st.lists(st.sampled_from(["*", "0", "59", "*/0", "1-2", "a", ",", "-1", "99", "*/7", "L",
                              "#", "W", "?"]), min_size=0, max_size=7).map(" ".join),
    json_values)
timezones = st.one_of(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Mars/Base",
                                       "", "utc", "../etc/passwd", "Etc/GMT+5"]), json_values)
instants = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["2031-01-01T00:00:00Z", "2020-01-01T00:00:00Z", "tomorrow", "",
                     "2031-02-30T00:00:00Z", "2031-01-01T00:00:00+25:00"]),
    json_values)


@FUZZ
@given(workflow=st.one_of(st.sampled_from(["digest", "BAD", ""]), json_values),
       environment=st.one_of(st.just("default"), json_values),
       cron=st.one_of(st.none(), crons), timezone=timezones,
       run_at=st.one_of(st.none(), instants),
       payload=st.one_of(st.none(), json_values), key=st.one_of(st.none(), json_values))
def test_schedules_are_accepted_or_rejected_field_by_field(
        workflow: Any, environment: Any, cron: Any, timezone: Any, run_at: Any, payload: Any,
        key: Any) -> None:
    try:
        spec = validate_schedule(workflow=workflow, environment=environment, cron=cron,
                                 timezone=timezone, run_at=run_at, payload=payload, key=key,
                                 now=NOW)
    except InvalidInput as exc:
        _check_rejection(exc, lambda name: name in SCHEDULE_FIELDS
                         or name.startswith(("payload.", "payload[")))
        return
    assert isinstance(spec, ScheduleSpec)
    first = spec.first_run_at(NOW)  # an accepted schedule always has a next fire time
    assert first > NOW


@FUZZ
@given(st.one_of(scalars, st.integers(), st.floats(), json_values,
                 st.builds(lambda n, unit: f"{n}{unit}",
                           st.one_of(st.integers(0, 10**400), st.floats(0, allow_nan=False)),
                           st.sampled_from(["", "ms", "s", "m", "h", "d", " s", "x"]))))
def test_durations_are_positive_or_a_value_error(value: Any) -> None:
    """The API's debounce delays and idempotency TTLs: 1e300 seconds once escaped as an
    ``OverflowError`` (HTTP 500), and 1e-300 became a zero delay."""
    try:
        duration = parse_duration(value)
    except ValueError as exc:
        assert str(exc).strip()
        return
    assert duration > timedelta(0)

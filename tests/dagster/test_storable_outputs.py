"""What a block or a provider returns is stored the same way on SQLite and PostgreSQL, and is
never a pipeline fault: in-process on a real Dagster instance, on both backends.

PostgreSQL refuses a NUL character (jsonb and text), an unpaired surrogate (psycopg2 cannot
encode it), NaN and Infinity; Python's JSON cannot write an integer of more than 4300 digits, a
cycle, deep nesting or a non-JSON object. Before the store made every execution write storable
(``orchestrator.domain.payloads.storable``), the same workflow finished ``success`` on SQLite and
ended ``pipeline_fault`` with an alert on PostgreSQL, its block entries lost. Each test asserts
what a user sees: the run and its tags, the execution's status, outcome, output or error, its
block entries, and that no alert was raised.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest

from harness.http_server import Answer, LoopbackServer, loopback_server
from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.domain.correlation import (
    TAG_EXECUTION_ID,
    TAG_OUTCOME,
    TAG_REQUEST_ID,
    Correlation,
    Source,
    new_id,
)
from orchestrator.domain.payloads import MAX_MESSAGE_CHARS, MAX_OUTPUT_BYTES
from orchestrator.domain.records import ExecutionRecord, ExecutionStatus, Outcome
from orchestrator.execution.blocks import register_callable
from orchestrator.store import Store
from tests.dagster.conftest import real_now

FFFD = "\ufffd"


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def _levels(value: Any) -> int:
    levels = 0
    while isinstance(value, list):
        value, levels = value[0], levels + 1
    return levels


@dataclass
class Opaque:
    name: str

    def __str__(self) -> str:
        return f"Opaque({self.name})"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


@register_callable("test_unstorable_values")
def _unstorable_values() -> dict[Any, Any]:
    cycle: list[Any] = ["start"]
    cycle.append(cycle)
    return {
        "nan": math.nan, "inf": math.inf, "minus_inf": -math.inf,
        "huge_int": 10 ** 5000, "big_int": 10 ** 30, "big_float": 1e20, "minus_zero": -0.0,
        "small_float": 1.5e-7,
        "bytes": b"\x00ab\xff", "set": {3, 1, 2}, "tuple": (1, "two"),
        "when": datetime(2030, 1, 15, 12, 0, 30, tzinfo=UTC),
        "nul\x00key": "nul\x00value", "lone\ud800": "surrogate\udfff",
        7: "an int key", None: "a None key",
        "object": Opaque("x"), "unprintable": Unprintable(),
        "deep": _deep(150), "cycle": cycle,
    }


@register_callable("test_has_nul")
def _has_nul(text: str) -> dict[str, Any]:
    return {"raw_has_nul": "\x00" in text, "text": text}


@register_callable("test_raise_unstorable")
def _raise_unstorable() -> None:
    raise ValueError("bad \x00 value \ud800 " + "x" * 50_000)


@register_callable("test_big")
def _big(chars: int) -> dict[str, Any]:
    return {"data": "x" * chars, "n": chars}


@register_callable("test_sized")
def _sized(size: int) -> str:
    return "x" * (size - 2)  # as JSON: the characters and two quotes


@pytest.fixture
def provider() -> Iterator[LoopbackServer]:
    with loopback_server() as server:
        yield server


def _execute(instance: dg.DagsterInstance, store_url: str, sink: LoopbackServer
             ) -> tuple[dg.ExecuteInProcessResult, Correlation]:
    correlation = Correlation(execution_id=new_id(), request_id="req-" + new_id()[:8],
                              source=Source.API, workflow="digest", environment="default",
                              payload={"user": "ada"})
    Store(store_url).create_execution(correlation, real_now())
    resource = OrchestratorStore(database_url=store_url, alert_webhook_url=f"{sink.url}/alerts")
    result = execute_workflow.execute_in_process(
        run_config=run_config_for(correlation), instance=instance, tags=correlation.tags(),
        raise_on_error=False, resources={STORE_RESOURCE: resource})
    return result, correlation


def _assert_outcome(instance: dg.DagsterInstance, store: Store, sink: LoopbackServer,
                    result: dg.ExecuteInProcessResult, correlation: Correlation,
                    outcome: Outcome) -> ExecutionRecord:
    """The run succeeded (a user error too), is tagged with the outcome, the core finalized the
    execution, and nobody was paged."""
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.status is dg.DagsterRunStatus.SUCCESS
    assert run.tags[TAG_OUTCOME] == outcome.value
    assert run.tags[TAG_EXECUTION_ID] == correlation.execution_id
    assert run.tags[TAG_REQUEST_ID] == correlation.request_id
    execution = store.get_execution(correlation.execution_id)
    status = ExecutionStatus.SUCCESS if outcome is Outcome.SUCCESS else ExecutionStatus.ERROR
    assert (execution.status, execution.outcome, execution.finalized_by) == (status, outcome,
                                                                            "core")
    assert store.list_alerts() == []
    assert sink.hits("/alerts") == []
    return execution


def _blocks(execution: ExecutionRecord) -> list[tuple[str, str]]:
    return [(b.block_id, b.status) for b in execution.blocks]


# ------------------------------------------------------------------------------- http block

def test_http_200_text_with_nul_succeeds_references_see_it_raw_and_it_is_stored_replaced(
        instance, store_url, store, make_workflow, provider, sink) -> None:
    url = provider.answer("/report", Answer(200, "line one\x00line two"))
    make_workflow(blocks=[
        {"id": "fetch", "type": "http", "with": {"url": url}},
        {"id": "check", "type": "python",
         "with": {"callable": "test_has_nul", "text": "{{ fetch.body }}"}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.SUCCESS)
    # the next block saw the provider's text as it came; the store keeps it with U+FFFD
    assert execution.output == {"raw_has_nul": True, "text": f"line one{FFFD}line two"}
    assert _blocks(execution) == [("fetch", "success"), ("check", "success")]
    assert all(b.output_size and b.error is None for b in execution.blocks)


def test_http_200_as_the_last_block_stores_its_text_with_nul_replaced(
        instance, store_url, store, make_workflow, provider, sink) -> None:
    url = provider.answer("/report", Answer(200, "a\x00b"))
    make_workflow(blocks=[{"id": "fetch", "type": "http", "with": {"url": url}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.SUCCESS)
    assert (execution.output["status"], execution.output["body"]) == (200, f"a{FFFD}b")
    assert _blocks(execution) == [("fetch", "success")]


def test_http_200_json_with_nan_infinity_nul_key_and_lone_surrogate_succeeds(
        instance, store_url, store, make_workflow, provider, sink) -> None:
    # Python's JSON (the server's and httpx's) writes and reads NaN and Infinity
    url = provider.answer("/items", Answer(200, {"na\x00me": "v\ud800", "score": math.nan,
                                                 "max": math.inf, "id": 2 ** 70}))
    make_workflow(blocks=[{"id": "fetch", "type": "http", "with": {"url": url}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.SUCCESS)
    assert execution.output["body"] == {f"na{FFFD}me": f"v{FFFD}", "score": None, "max": None,
                                        "id": 2 ** 70}


def test_http_4xx_whose_message_has_nul_and_a_lone_surrogate_is_a_user_error(
        instance, store_url, store, make_workflow, provider, sink) -> None:
    url = provider.answer("/orders", Answer(400, {"message": "bad \x00 order \ud800 id"}))
    make_workflow(blocks=[
        {"id": "prepare", "type": "transform", "with": {"n": 1}},
        {"id": "fetch", "type": "http", "with": {"url": url}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.USER_ERROR)
    expected = f"bad {FFFD} order {FFFD} id"
    assert execution.error["block"] == "fetch"
    assert "answered HTTP 400" in execution.error["message"]
    assert execution.error["message"].endswith(expected)
    assert execution.output is None
    assert _blocks(execution) == [("prepare", "success"), ("fetch", "error")]
    assert execution.blocks[1].error == execution.error["message"]
    assert any("user_error, no alert" in r.user_message and expected in r.user_message
               for r in instance.all_logs(result.run_id))


def test_http_4xx_text_body_with_nul_is_a_user_error(instance, store_url, store, make_workflow,
                                                    provider, sink) -> None:
    url = provider.answer("/gone", Answer(404, "no such \x00 thing"))
    make_workflow(blocks=[{"id": "fetch", "type": "http", "with": {"url": url}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.USER_ERROR)
    assert execution.error["message"].endswith(f"answered HTTP 404: no such {FFFD} thing")
    assert _blocks(execution) == [("fetch", "error")]


# ----------------------------------------------------------------------------- python block

def test_python_block_returning_what_json_or_postgresql_cannot_hold_succeeds(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow(blocks=[{"id": "odd", "type": "python",
                           "with": {"callable": "test_unstorable_values"}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.SUCCESS)
    output = dict(execution.output)
    deep, cycle = output.pop("deep"), output.pop("cycle")
    assert output == {
        "nan": None, "inf": None, "minus_inf": None,
        "huge_int": "<integer of more than 4300 digits>", "big_int": 10 ** 30,
        "big_float": 10 ** 20, "minus_zero": 0.0, "small_float": 1.5e-7,
        "bytes": f"{FFFD}ab{FFFD}", "set": [1, 2, 3], "tuple": [1, "two"],
        "when": "2030-01-15T12:00:30+00:00",
        f"nul{FFFD}key": f"nul{FFFD}value", f"lone{FFFD}": f"surrogate{FFFD}",
        "7": "an int key", "null": "a None key",
        "object": "Opaque(x)", "unprintable": "<Unprintable that cannot be shown as text>",
    }
    assert type(output["big_float"]) is int and type(output["minus_zero"]) is float
    assert math.copysign(1, output["minus_zero"]) == 1
    # 100 levels in all are kept (the output object is the first); the next one is a note
    assert _levels(deep) == 99
    inner = deep
    while isinstance(inner, list):
        inner = inner[0]
    assert inner == "<list nested deeper than 100 levels>"
    assert cycle == ["start", "<circular reference>"]
    [entry] = execution.blocks
    assert (entry.block_id, entry.status, entry.error) == ("odd", "success", None)
    assert entry.output_size and entry.output_size > 0


def test_python_block_raising_a_message_with_nul_and_surrogate_is_a_capped_user_error(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow(blocks=[{"id": "boom", "type": "python",
                           "with": {"callable": "test_raise_unstorable"}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.USER_ERROR)
    message = execution.error["message"]
    assert message.startswith(f"block `boom` raised ValueError: bad {FFFD} value {FFFD} xxx")
    assert message.endswith("characters in all)")
    assert len(message) < MAX_MESSAGE_CHARS + 50
    [entry] = execution.blocks
    assert (entry.block_id, entry.status, entry.error) == ("boom", "error", message)


# ------------------------------------------------------------------------------ output size

def test_output_over_the_limit_is_a_user_error_naming_the_block(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow(blocks=[
        {"id": "prepare", "type": "transform", "with": {"n": 1}},
        {"id": "big", "type": "python",
         "with": {"callable": "test_sized", "size": MAX_OUTPUT_BYTES + 1}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.USER_ERROR)
    assert execution.error["block"] == "big"
    assert execution.error["message"].startswith(
        f"block `big` output is {MAX_OUTPUT_BYTES + 1:,} bytes as JSON, over the "
        f"{MAX_OUTPUT_BYTES:,}-byte limit")
    assert execution.output is None
    assert _blocks(execution) == [("prepare", "success"), ("big", "error")]
    assert execution.blocks[1].output_size == MAX_OUTPUT_BYTES + 1
    assert execution.blocks[1].error == execution.error["message"]


def test_output_at_the_limit_is_stored(instance, store_url, store, make_workflow, sink) -> None:
    make_workflow(blocks=[{"id": "big", "type": "python",
                           "with": {"callable": "test_sized", "size": MAX_OUTPUT_BYTES}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.SUCCESS)
    assert execution.output == "x" * (MAX_OUTPUT_BYTES - 2)
    assert execution.blocks[0].output_size == MAX_OUTPUT_BYTES


def test_a_provider_answering_megabytes_as_the_last_block_is_a_user_error(
        instance, store_url, store, make_workflow, provider, sink) -> None:
    url = provider.answer("/dump", Answer(200, "y" * (3 * MAX_OUTPUT_BYTES)))
    make_workflow(blocks=[{"id": "fetch", "type": "http", "with": {"url": url}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.USER_ERROR)
    assert execution.error["message"].startswith("block `fetch` output is ")
    assert "limit of an execution's stored output" in execution.error["message"]
    [entry] = execution.blocks
    assert (entry.status, entry.output_size > 3 * MAX_OUTPUT_BYTES) == ("error", True)


def test_a_big_output_in_between_is_not_stored_so_it_is_not_limited(
        instance, store_url, store, make_workflow, sink) -> None:
    make_workflow(blocks=[
        {"id": "big", "type": "python",
         "with": {"callable": "test_big", "chars": 2 * MAX_OUTPUT_BYTES}},
        {"id": "pick", "type": "transform", "with": {"n": "{{ big.n }}"}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.SUCCESS)
    assert execution.output == {"n": 2 * MAX_OUTPUT_BYTES}
    assert _blocks(execution) == [("big", "success"), ("pick", "success")]
    assert execution.blocks[0].output_size > 2 * MAX_OUTPUT_BYTES


# ---------------------------------------------------------------------------- trigger block

def test_trigger_block_payload_postgresql_cannot_hold_is_a_user_error_naming_the_field(
        instance, store_url, store, make_workflow, provider, sink) -> None:
    """A child's payload is input (the child must see what the parent sent): refused as the
    HTTP API refuses it, on both backends, instead of a store error on PostgreSQL only."""
    url = provider.answer("/report", Answer(200, "a\x00b"))
    make_workflow("child", blocks=[{"id": "echo", "type": "transform", "with": {"x": 1}}])
    make_workflow(blocks=[
        {"id": "fetch", "type": "http", "with": {"url": url}},
        {"id": "notify", "type": "trigger",
         "with": {"workflow": "child", "payload": {"text": "{{ fetch.body }}"}}}])
    result, correlation = _execute(instance, store_url, sink)
    execution = _assert_outcome(instance, store, sink, result, correlation, Outcome.USER_ERROR)
    assert execution.error["block"] == "notify"
    assert execution.error["message"].startswith("block `notify`: payload.text: has a NUL")
    assert _blocks(execution) == [("fetch", "success"), ("notify", "error")]
    assert [e.execution_id for e in store.list_executions()] == [correlation.execution_id]

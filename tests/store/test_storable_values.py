"""Every write an execution makes of data from a block or a provider is stored alike on SQLite
and PostgreSQL: the execution's ``output`` and ``error`` (JSON), a block entry's ``error``
(text), an alert's ``message`` and ``details``. Each value below was refused by PostgreSQL (NUL,
unpaired surrogate, NaN/Infinity), by Python's JSON on both (an integer of 5000 digits, nesting
3000 deep), by the driver for text (psycopg2: NUL; both drivers: a lone surrogate), or came back
changed on PostgreSQL only (1e20 as an integer, -0.0 as 0.0). The store now writes
``storable_json(value)`` / ``storable_text(text)``: the test expects exactly that on both."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.alerts import Alerter
from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.payloads import storable_json, storable_text
from orchestrator.domain.records import BlockEntry, ExecutionStatus, Outcome
from orchestrator.execution.settle import RunEnd, settle
from orchestrator.store import Store
from tests.conftest import ALL_BACKENDS, NOW

pytestmark = pytest.mark.backends(*ALL_BACKENDS)

FFFD = "\ufffd"


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


VALUES: dict[str, tuple[Any, Any]] = {  # value, what every backend gives back
    "nul in text": ({"t": "a\x00b"}, {"t": f"a{FFFD}b"}),
    "nul in a key": ({"a\x00": 1}, {f"a{FFFD}": 1}),
    "lone surrogate": ({"t": "x\ud800", "u": "\udfffy"}, {"t": f"x{FFFD}", "u": f"{FFFD}y"}),
    "surrogate pair": ({"t": "\ud83d\ude00"}, {"t": "\U0001f600"}),
    "nan and infinity": ([math.nan, math.inf, -math.inf], [None, None, None]),
    "huge int": ({"n": 10 ** 5000}, {"n": "<integer of more than 4300 digits>"}),
    "big int": ({"n": -(10 ** 100)}, {"n": -(10 ** 100)}),
    "big float": ({"f": 1e20, "g": -2.5e300}, {"f": 10 ** 20, "g": int(-2.5e300)}),
    "minus zero": ({"z": -0.0}, {"z": 0.0}),
    "small float": ({"f": 1.5e-300}, {"f": 1.5e-300}),
    "deep": (_deep(3000), storable_json(_deep(3000))),
    "non-json objects": ({"b": b"\x00\xff", "s": frozenset({"b", "a"}),
                          "d": datetime(2030, 1, 1, tzinfo=UTC), 1: (2, 3)},
                         {"b": f"{FFFD}{FFFD}", "s": ["a", "b"],
                          "d": "2030-01-01T00:00:00+00:00", "1": [2, 3]}),
    "plain": ({"a": [1, 2.5, "x", None, True]}, {"a": [1, 2.5, "x", None, True]}),
}
TEXTS = {"nul": ("a\x00b", f"a{FFFD}b"), "lone surrogate": ("x\ud800", f"x{FFFD}"),
         "plain": ("ok", "ok")}


def _correlation(execution_id: str) -> Correlation:
    return Correlation(execution_id=execution_id, request_id="r-1", source=Source.API,
                       workflow="digest", environment="default", payload={"user": "ada"})


def _entry(error: str) -> BlockEntry:
    return BlockEntry(block_id="fetch", block_type="http", status="error", started_at=NOW,
                      finished_at=NOW, duration_ms=1.0, error=error, output_size=None)


@pytest.mark.parametrize("name", VALUES)
def test_output_and_error_are_stored_alike(store: Store, name: str) -> None:
    value, expected = VALUES[name]
    assert storable_json(value) == expected
    for n, column in enumerate(("output", "error")):
        execution_id = f"e-{n}"
        store.create_execution(_correlation(execution_id), NOW)
        record, won = store.finish_execution(
            execution_id, status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
            finalized_by="core", now=NOW, **{column: value})
        assert won
        assert getattr(store.get_execution(execution_id), column) == expected
        assert getattr(record, column) == expected


def test_float_types_come_back_alike(store: Store) -> None:
    store.create_execution(_correlation("e-1"), NOW)
    store.finish_execution("e-1", status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                           finalized_by="core", now=NOW,
                           output={"big": 1e16, "below": 9999999999999998.0, "one": 1.0,
                                   "zero": -0.0})
    output = store.get_execution("e-1").output
    assert {k: type(v) for k, v in output.items()} == {"big": int, "below": float,
                                                       "one": float, "zero": float}
    assert math.copysign(1, output["zero"]) == 1


@pytest.mark.parametrize("name", TEXTS)
def test_block_entry_error_is_stored_alike_and_with_the_terminal_write(store: Store,
                                                                       name: str) -> None:
    text, expected = TEXTS[name]
    store.create_execution(_correlation("e-1"), NOW)
    store.record_block("e-1", attempt=0, entry=_entry(text))
    store.create_execution(_correlation("e-2"), NOW)
    store.finish_execution("e-2", status=ExecutionStatus.ERROR, outcome=Outcome.USER_ERROR,
                           finalized_by="core", now=NOW, error={"message": text},
                           block=(0, _entry(text)))
    for execution_id in ("e-1", "e-2"):
        [entry] = store.get_execution(execution_id).blocks
        assert entry.error == expected
    assert store.get_execution("e-2").error == {"message": expected}


def test_alert_message_and_details_are_stored_alike(store: Store) -> None:
    alert, created = store.record_alert(
        execution_id="e-1", kind="pipeline_fault", message="fault \x00 \ud800",
        details={"execution_id": "e-1", "error": {"message": "x\x00", "n": math.nan}},
        environment="default", workflow="digest", now=NOW, deliver=False)
    assert created
    [listed] = store.list_alerts()
    for row in (alert, listed):
        assert row.message == f"fault {FFFD} {FFFD}"
        assert row.details == {"execution_id": "e-1",
                               "error": {"message": f"x{FFFD}", "n": None}}


def test_a_pipeline_fault_settled_with_an_unstorable_message_alerts_once(store: Store) -> None:
    """The hook's and the reconciler's path: the terminal write and the alert built from it."""
    store.create_execution(_correlation("e-1"), NOW)
    alerter = Alerter(store=store, webhook_url=None, ui_url="http://127.0.0.1:3000",
                      clock=lambda: NOW + timedelta(seconds=1))
    settlement = settle(store, alerter, "e-1", run_id="run-1", run_end=RunEnd.FAILED,
                        message="driver said \x00\ud800", finalized_by="hook")
    assert settlement.finalized and settlement.alert is not None
    record = store.get_execution("e-1")
    assert (record.outcome, record.error["message"]) == (Outcome.PIPELINE_FAULT,
                                                        f"driver said {FFFD}{FFFD}")
    [alert] = store.list_alerts()
    assert alert.message.endswith(f"driver said {FFFD}{FFFD}")
    assert alert.details["error"]["message"] == f"driver said {FFFD}{FFFD}"
    assert storable_text(alert.message) == alert.message

"""Every carrier of the correlation holds every correlation field, walked from the one field list
(``CORRELATION_FIELDS``), on SQLite and PostgreSQL: run config (through the job's own config
model), run tags, store rows (the execution log and the burst buffer, written and read back),
alert payloads (stored and POSTed) and log fields. A field added to the list that a carrier does
not hold (a missing column, a hand-written list left behind) fails here."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from harness.http_server import Answer, loopback_server
from orchestrator.alerts import Alerter
from orchestrator.api.views import execution_view
from orchestrator.domain.correlation import CORRELATION_FIELDS, Correlation, Kind, Source, new_id
from orchestrator.domain.ingest import TriggerRequest
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.execution.session import LoggingSession
from orchestrator.store import Store
from orchestrator.store import tables as t
from orchestrator.store.ingest import buffer_row
from tests.conftest import NOW

SCHEDULED_FOR = datetime(2030, 1, 15, 11, 55, tzinfo=UTC)


def sample(*, buffered: bool = False) -> Correlation:
    """A correlation with every field set to a value of its own (fields the burst buffer does
    not hold left empty for a buffered one)."""
    values: dict[str, Any] = {}
    for f in CORRELATION_FIELDS:
        if buffered and not f.buffered:
            values[f.name] = None
        elif f.kind is Kind.SOURCE:
            values[f.name] = Source.WEBHOOK
        elif f.kind is Kind.INSTANT:
            values[f.name] = SCHEDULED_FOR
        else:
            values[f.name] = f"{f.name[:12]}-{new_id()[:12]}"
    values.update(workflow="digest", environment="default")
    return Correlation(**values, payload={"user": "ada"})


def assert_carries(carried: Correlation, expected: Correlation, carrier: str) -> None:
    for f in CORRELATION_FIELDS:
        assert getattr(carried, f.name) == getattr(expected, f.name), f"{carrier}: {f.name}"


def test_run_config_and_tags_carry_every_field() -> None:
    from orchestrator.dagster.jobs import ExecuteWorkflowConfig, correlation_from_config

    c = sample()
    config = ExecuteWorkflowConfig(**c.to_config())  # the job's config model refuses unknowns
    assert set(ExecuteWorkflowConfig.model_fields) == {f.name for f in CORRELATION_FIELDS} | {
        "payload"}
    carried = correlation_from_config(config)
    assert_carries(carried, c, "run config")
    assert carried.payload == c.payload
    tags = c.tags()
    assert {f.tag for f in CORRELATION_FIELDS} == set(tags)
    assert all(isinstance(v, str) for v in tags.values())
    assert tags["orchestrator/scheduled_for"] == "2030-01-15T11:55:00Z"
    assert_carries(Correlation.from_tags(tags), c, "run tags")


def test_launchpad_config_gets_a_fresh_manual_correlation() -> None:
    from orchestrator.dagster.jobs import ExecuteWorkflowConfig, correlation_from_config

    c = correlation_from_config(ExecuteWorkflowConfig(workflow="digest"))
    assert (c.source, c.workflow, c.environment, c.trigger_id, c.payload) == \
        (Source.MANUAL, "digest", "default", None, {})
    assert c.execution_id != c.request_id


def test_execution_row_carries_every_field(store: Store) -> None:
    assert {f.name for f in CORRELATION_FIELDS} <= set(t.executions.c.keys())
    c = sample()
    store.create_execution(c, NOW)
    record = store.get_execution(c.execution_id)
    assert_carries(record, c, "execution row")
    assert record.correlation() == c
    shown = record.to_dict()
    assert {k: shown[k] for k in c.to_json()} == c.to_json()
    assert shown["scheduled_for"] == "2030-01-15T11:55:00Z"


def test_burst_buffer_row_carries_every_buffered_field(store: Store, make_workflow) -> None:
    assert {f.name for f in CORRELATION_FIELDS if f.buffered} <= set(t.burst_buffer.c.keys())
    make_workflow()
    c = sample(buffered=True)
    with pytest.raises(ValueError, match="burst buffer cannot hold"):
        replace(c, scheduled_for=SCHEDULED_FOR).to_row(buffered=True)
    # The admission path's own row builder (a child trigger, carrying a parent, never takes
    # this path, but the buffer's columns still hold every buffered field).
    with store.engine.begin() as conn:
        conn.execute(t.burst_buffer.insert().values(buffer_row(
            TriggerRequest(correlation=c, idempotency_ttl=timedelta(hours=1)), NOW)))
    view = execution_view(store.admission.find(c.execution_id, "default"))
    assert {k: view[k] for k in c.to_json()} == c.to_json()
    [stuck] = store.queue.stuck(NOW + timedelta(hours=1), timedelta(minutes=10))
    assert_carries(stuck, c, "buffer row")
    assert store.queue.drain(10) == [c.execution_id]
    assert store.get_execution(c.execution_id).correlation() == c


def test_alert_payloads_and_log_fields_carry_every_field(store: Store, caplog) -> None:
    c = sample()
    store.create_execution(c, NOW)
    record, _ = store.finish_execution(
        c.execution_id, status=ExecutionStatus.ERROR, outcome=Outcome.PIPELINE_FAULT,
        finalized_by="hook", now=NOW, error={"message": "boom"})
    with loopback_server() as sink:
        sink.answer("/alerts", Answer(200, {"ok": True}))
        alerter = Alerter(store=store, webhook_url=f"{sink.url}/alerts",
                          ui_url="http://127.0.0.1:3000", clock=lambda: NOW)
        with caplog.at_level(logging.ERROR, logger="orchestrator.alerts"):
            alerter.pipeline_fault(record)
        [hit] = sink.hits("/alerts")
    [stored] = store.list_alerts(execution_id=c.execution_id)
    assert_carries(Correlation.from_json(stored.details), c, "stored alert")
    assert_carries(Correlation.from_json(hit.json()), c, "alert webhook body")
    [alert_line] = [r for r in caplog.records if r.name == "orchestrator.alerts"]
    assert_carries(Correlation.from_json(vars(alert_line)), c, "alert log line")

    # A log line of the execution (a repeated completion keeps the first outcome).
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="orchestrator.execution.session"):
        LoggingSession(store, c).finish(status=ExecutionStatus.SUCCESS,
                                        outcome=Outcome.SUCCESS, finalized_by="core")
    [line] = [r for r in caplog.records if "already finalized" in r.getMessage()]
    assert_carries(Correlation.from_json(vars(line)), c, "execution log line")


def test_every_table_with_correlation_columns_is_a_walked_carrier() -> None:
    """A new table holding correlation ids must be added to the walk above."""
    names = {f.name for f in CORRELATION_FIELDS}
    carriers = {table.name for table in t.metadata.sorted_tables
                if {"execution_id", "request_id"} <= set(table.c.keys())}
    assert carriers == {t.executions.name, t.burst_buffer.name}
    assert isinstance(sa.inspect(t.executions), sa.Table)
    assert names - set(t.burst_buffer.c.keys()) == {f.name for f in CORRELATION_FIELDS
                                                     if not f.buffered}

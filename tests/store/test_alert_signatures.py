"""Alert POSTs signed as Standard Webhooks do, verified by a receiver with the reference library
(``standardwebhooks``): accepted as sent, refused when tampered with or checked with another
secret; a retry carries the same ``webhook-id`` so the receiver can drop a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from harness.http_server import Answer, loopback_server
from orchestrator.alerts import Alerter
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.domain.signatures import new_standard_secret, standard_secret_problem
from orchestrator.exceptions import InvalidInput
from orchestrator.settings import Settings
from orchestrator.store import Store


def test_a_receiver_verifies_alerts_with_the_standard_library(store: Store) -> None:
    secret = new_standard_secret()
    now = datetime.now(UTC)  # the library checks the timestamp against the real clock
    c = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                    workflow="digest", environment="default")
    store.create_execution(c, now)
    record, _ = store.finish_execution(c.execution_id, status=ExecutionStatus.ERROR,
                                       outcome=Outcome.PIPELINE_FAULT, finalized_by="hook",
                                       now=now, error={"message": "boom"})
    with loopback_server() as sink:
        sink.answer("/alerts", Answer(503, {"error": "busy"}))
        alerter = Alerter(store=store, webhook_url=f"{sink.url}/alerts", webhook_secret=secret,
                          ui_url="http://127.0.0.1:3000", clock=lambda: now)
        alerter.pipeline_fault(record)
        sink.answer("/alerts", Answer(200, {"ok": True}))
        Alerter(store=store, webhook_url=f"{sink.url}/alerts", webhook_secret=secret,
                ui_url="http://127.0.0.1:3000",
                clock=lambda: now + timedelta(minutes=1)).deliver_due()
        first, retry = sink.hits("/alerts")
    headers = {k.lower(): v for k, v in first.headers.items()}
    payload = Webhook(secret).verify(first.body, headers)
    assert payload["execution_id"] == c.execution_id and payload["kind"] == "pipeline_fault"
    assert {k.lower(): v for k, v in retry.headers.items()}["webhook-id"] == \
        headers["webhook-id"] == f"alert_{payload['alert_id']}"
    Webhook(secret).verify(retry.body, {k.lower(): v for k, v in retry.headers.items()})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(first.body.replace(b"boom", b"fine"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_standard_secret()).verify(first.body, headers)


@pytest.mark.parametrize("bad", ["shh", "whsec_not base64!", "whsec_c2hvcnQ="])
def test_a_bad_alert_secret_is_refused_naming_the_variable(bad: str) -> None:
    assert standard_secret_problem(bad)
    with pytest.raises(InvalidInput) as info:
        Settings.from_env({"ORCHESTRATOR_DATABASE_URL": "sqlite:///x.db",
                           "ORCHESTRATOR_ALERT_WEBHOOK_SECRET": bad})
    assert info.value.problems[0].field == "ORCHESTRATOR_ALERT_WEBHOOK_SECRET"

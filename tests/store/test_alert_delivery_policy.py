"""Alert delivery retries only what may pass: a webhook that is down or overloaded (5xx, 408,
429, unreachable) is tried again on the policy's schedule; one that refuses the alert itself
(another 4xx: a wrong URL or token) is given up at once, ``failed``, still listed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from harness.http_server import Answer, loopback_server
from orchestrator.alerts import Alerter
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.records import DeliveryStatus, ExecutionStatus, Outcome
from orchestrator.domain.retry import ALERT_DELIVERY_DELAYS
from orchestrator.store import Store
from tests.conftest import NOW


@pytest.mark.parametrize(("status", "expected", "retry_in"), [
    (404, DeliveryStatus.FAILED, None),
    (400, DeliveryStatus.FAILED, None),
    (503, DeliveryStatus.PENDING, ALERT_DELIVERY_DELAYS[0]),
    (429, DeliveryStatus.PENDING, ALERT_DELIVERY_DELAYS[0]),
])
def test_delivery_retries_only_a_transient_refusal(store: Store, status: int,
                                                   expected: DeliveryStatus,
                                                   retry_in: int | None) -> None:
    c = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                    workflow="digest", environment="default")
    store.create_execution(c, NOW)
    record, _ = store.finish_execution(c.execution_id, status=ExecutionStatus.ERROR,
                                       outcome=Outcome.PIPELINE_FAULT, finalized_by="hook",
                                       now=NOW, error={"message": "boom"})
    with loopback_server() as sink:
        sink.answer("/alerts", Answer(status, {"error": "no"}))
        alerter = Alerter(store=store, webhook_url=f"{sink.url}/alerts",
                          ui_url="http://127.0.0.1:3000", clock=lambda: NOW)
        alerter.pipeline_fault(record)
        [alert] = store.list_alerts(execution_id=c.execution_id)
        assert (alert.delivery_status, alert.delivery_attempts) == (expected, 1)
        assert alert.last_delivery_error == f"the alert webhook answered HTTP {status}"
        assert alert.next_delivery_at == (None if retry_in is None
                                          else NOW + timedelta(seconds=retry_in))
        # The reconciler's next tick tries again only what was left pending.
        later = Alerter(store=store, webhook_url=f"{sink.url}/alerts",
                        ui_url="http://127.0.0.1:3000", clock=lambda: NOW + timedelta(hours=3))
        later.deliver_due()
        assert len(sink.hits("/alerts")) == (1 if retry_in is None else 2)

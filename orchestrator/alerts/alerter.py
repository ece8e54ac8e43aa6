"""Raising and delivering alerts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from orchestrator.domain.correlation import CORRELATION_FIELD_NAMES, iso_utc
from orchestrator.domain.failures import retryable_status
from orchestrator.domain.records import AlertRecord, DeliveryStatus, ExecutionRecord
from orchestrator.domain.retry import ALERT_DELIVERY_DELAYS
from orchestrator.domain.signatures import standard_headers
from orchestrator.store import Store
from orchestrator.store.interfaces import BUFFER_STUCK_KIND, BufferedTrigger

log = logging.getLogger("orchestrator.alerts")

KIND_PIPELINE_FAULT = "pipeline_fault"
KIND_BATCH_FAULT = "batch_fault"  # one incident: a batch run failed as a whole
# After the first immediate attempt, a transient failure is retried by the reconciler at the
# policy's delays (about 2 hours in all); then it is marked `failed` and stays listed.
RETRY_DELAYS = tuple(timedelta(seconds=s) for s in ALERT_DELIVERY_DELAYS)
DELIVERY_TIMEOUT_SECONDS = 5.0
CLAIM_SECONDS = 30


@dataclass(kw_only=True)
class Alerter:
    """Raises alerts through ``store`` and POSTs them to ``webhook_url`` when set."""

    store: Store
    webhook_url: str | None
    ui_url: str
    clock: Callable[[], datetime]
    # Signs each POST as Standard Webhooks do (webhook-id: alert_<id>, the same on every retry).
    webhook_secret: str | None = None

    def run_url(self, run_id: str | None) -> str | None:
        return f"{self.ui_url}/runs/{run_id}" if run_id else None

    def pipeline_fault(self, execution: ExecutionRecord) -> AlertRecord:
        """The alert for a finalized pipeline fault; raising it twice returns the first."""
        error = execution.error or {}
        message = (f"pipeline fault in {execution.environment}/{execution.workflow}, execution "
                   f"{execution.execution_id}: {error.get('message', 'unknown error')}")
        details: dict[str, Any] = {
            **execution.to_json(),
            "outcome": execution.outcome.value if execution.outcome else None,
            "error": error, "dagster_run_id": execution.dagster_run_id,
            "run_url": self.run_url(execution.dagster_run_id),
        }
        return self._raise(KIND_PIPELINE_FAULT, message, details, now=self.clock())

    def batch_fault(self, *, run_id: str | None, batch_id: str, environment: str,
                    executions: list[ExecutionRecord], message: str) -> AlertRecord:
        """One alert for one incident: a batch run that failed as a whole (its worker killed,
        a resource that did not start, a bug outside the core). It names every execution it
        left as a pipeline fault; raising it again for the same run returns the first."""
        count = len(executions)
        workflows = sorted({e.workflow for e in executions})
        shown = ", ".join(e.execution_id for e in executions[:20])
        more = f" and {count - 20} more" if count > 20 else ""
        text = (f"pipeline fault in batch run {batch_id} of {environment}: {count} "
                f"execution(s) of {', '.join(workflows)} not finished ({message}): {shown}{more}")
        details: dict[str, Any] = {
            "execution_id": None, "request_id": None, "batch_id": batch_id,
            "environment": environment, "workflow": workflows[0] if len(workflows) == 1 else None,
            "workflows": workflows, "outcome": "pipeline_fault", "error": {"message": message},
            "dagster_run_id": run_id, "run_url": self.run_url(run_id), "count": count,
            "execution_ids": [e.execution_id for e in executions],
        }
        return self._raise(KIND_BATCH_FAULT, text, details, now=self.clock(),
                           incident=f"run:{run_id or batch_id}",
                           executions=[e.execution_id for e in executions])

    def buffer_stuck(self, entry: BufferedTrigger) -> AlertRecord:
        """The alert for a trigger waiting in the burst buffer too long (it never expires);
        raising it twice for one entry returns the first."""
        now = self.clock()
        waited = int((now - entry.created_at).total_seconds())
        message = (f"execution {entry.execution_id} of {entry.environment}/{entry.workflow} has "
                   f"waited {waited}s in the burst buffer; is queued_trigger_sensor running?")
        details: dict[str, Any] = {
            **entry.to_json(), "batch_id": entry.batch_id,
            "buffered_at": iso_utc(entry.created_at), "waited_seconds": waited,
        }
        return self._raise(BUFFER_STUCK_KIND, message, details, now=now)

    def _raise(self, kind: str, message: str, details: dict[str, Any], *,
               now: datetime, incident: str | None = None,
               executions: list[str] | None = None) -> AlertRecord:
        """Record the alert (once per execution and kind, or once per incident); a new one is
        logged at ERROR and POSTed at once when a webhook is configured."""
        alert, created = self.store.record_alert(
            execution_id=details["execution_id"], kind=kind, message=message, details=details,
            environment=details["environment"], workflow=details["workflow"], now=now,
            deliver=self.webhook_url is not None, incident=incident,
            executions=executions or ())
        if created:
            log.error("ALERT %s", message, extra={
                **{name: details.get(name) for name in CORRELATION_FIELD_NAMES},
                "batch_id": details.get("batch_id")})
            if alert.delivery_status is DeliveryStatus.PENDING:
                self.deliver(alert)
        return alert

    def deliver_due(self, limit: int = 20) -> int:
        """POST every alert whose delivery is due; returns how many were delivered."""
        if self.webhook_url is None:
            return 0
        return sum(self.deliver(a) for a in self.store.alerts_to_deliver(self.clock(), limit))

    def deliver(self, alert: AlertRecord) -> bool:
        """One delivery attempt; never raises. True when the webhook accepted the alert."""
        if self.webhook_url is None:
            return False
        now = self.clock()
        try:
            if not self.store.claim_alert_delivery(
                    alert.id, now=now, lease_until=now + timedelta(seconds=CLAIM_SECONDS)):
                return False  # another process is delivering it, or it is not due
            error, transient = self._post(alert)
            attempt = alert.delivery_attempts
            # A webhook that refused the alert itself (a 4xx other than 408/429: a wrong URL or
            # token) refuses it again: given up at once, never retried.
            retry_at = (now + RETRY_DELAYS[attempt]) if transient and attempt < len(
                RETRY_DELAYS) else None
            self.store.record_alert_delivery(alert.id, now=self.clock(), error=error,
                                             retry_at=None if error is None else retry_at)
        except Exception as exc:  # the store failed: the claim expires and a later tick retries
            log.warning("could not record delivery of alert %s: %s", alert.id,
                        type(exc).__name__)
            return False
        if error is not None:
            log.warning("alert %s not delivered (%s); %s", alert.id, error,
                        f"retrying at {iso_utc(retry_at)}" if retry_at else "giving up")
        return error is None

    def _post(self, alert: AlertRecord) -> tuple[str | None, bool]:
        """One POST: (the error, or None when delivered; whether trying again may help)."""
        assert self.webhook_url is not None
        run_url = alert.details.get("run_url")
        text = f":rotating_light: {alert.message}" + (f" <{run_url}|Dagster run>"
                                                      if run_url else "")
        body = {"text": text, "kind": alert.kind, "alert_id": alert.id,
                "message": alert.message, "created_at": iso_utc(alert.created_at),
                **alert.details}
        payload = json.dumps(body, separators=(",", ":"), default=str).encode()
        headers = {"content-type": "application/json"}
        if self.webhook_secret:
            headers.update(standard_headers(self.webhook_secret, f"alert_{alert.id}",
                                            self.clock(), payload))
        try:
            with httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS) as client:
                response = client.post(self.webhook_url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            return f"could not reach the alert webhook ({type(exc).__name__})", True
        if response.is_success:
            return None, False
        return (f"the alert webhook answered HTTP {response.status_code}",
                retryable_status(response.status_code))

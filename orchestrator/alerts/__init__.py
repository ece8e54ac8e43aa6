"""Alerts: raised for pipeline faults (never for user errors) and for triggers stuck in the burst
buffer (``buffer_stuck``), one per execution and kind.

Each alert is a row in the store, an ERROR log line, and, when ``ORCHESTRATOR_ALERT_WEBHOOK_URL``
is set, a JSON POST (Slack-compatible ``text`` plus the correlation fields, the outcome, the error
and the Dagster run's UI URL). Delivery failures are logged and retried with backoff by the
reconciler; they never fail a run.
"""

from orchestrator.alerts.alerter import Alerter

__all__ = ["Alerter"]

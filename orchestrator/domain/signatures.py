"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"`` with the webhook's secret, sent
as ``X-Orchestrator-Signature: sha256=<hex>`` with ``X-Orchestrator-Timestamp: <unix seconds>``.
Checked in constant time; a timestamp outside the window is refused (replays of an accepted
signature are refused by the store)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

SIGNATURE_HEADER = "X-Orchestrator-Signature"
TIMESTAMP_HEADER = "X-Orchestrator-Timestamp"
REPLAY_WINDOW = timedelta(minutes=5)
_PREFIX = "sha256="


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The header value a sender puts in ``X-Orchestrator-Signature``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return _PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes,
           now: datetime) -> str | None:
    """None when valid, else why not (safe to show the sender)."""
    if not timestamp or not signature:
        return f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required"
    try:
        sent = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        return f"{TIMESTAMP_HEADER} must be unix seconds"
    if abs(now - sent) > REPLAY_WINDOW:
        return (f"{TIMESTAMP_HEADER} is outside the {int(REPLAY_WINDOW.total_seconds() // 60)}"
                "-minute window; sign with the current time")
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode()):
        return "signature does not match; sign \"<timestamp>.<body>\" with the webhook secret"
    return None

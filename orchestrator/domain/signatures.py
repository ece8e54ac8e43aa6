"""Webhook signatures.

- Legacy (the scheme of webhooks made before Standard Webhooks): HMAC-SHA256 over
  ``"<timestamp>.<body>"`` with the webhook's secret, sent as ``X-Orchestrator-Signature:
  sha256=<hex>`` with ``X-Orchestrator-Timestamp: <unix seconds>``; a timestamp outside the
  window is refused (replays of an accepted signature are refused by the store).
- Standard Webhooks (standardwebhooks.com): ``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64>``, the secret ``whsec_`` + base64; signed and checked with
  the reference library (``standardwebhooks``), the clock injected. Alerts are sent this way.

A webhook's deliveries are checked by :func:`verify_delivery`: Standard Webhooks for a secret of
that form (every webhook made since), the legacy scheme for a legacy secret (``whsec_`` +
urlsafe text, not base64), each during a rotation's grace too.

Signatures are compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
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


# ------------------------------------------------------------------- Standard Webhooks

STANDARD_PREFIX = "whsec_"
_MIN_SECRET_BYTES = 24


def new_standard_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return STANDARD_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def standard_secret_problem(secret: str) -> str | None:
    """None for a usable Standard Webhooks secret, else what is wrong with it."""
    if not secret.startswith(STANDARD_PREFIX):
        return "must start with whsec_ (a Standard Webhooks secret)"
    try:
        key = base64.b64decode(secret[len(STANDARD_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return "must be whsec_ followed by base64 (A-Z, a-z, 0-9, +, /, =)"
    if len(key) < _MIN_SECRET_BYTES:
        return f"must hold at least {_MIN_SECRET_BYTES} bytes of key after whsec_"
    return None


def standard_headers(secret: str, message_id: str, sent_at: datetime,
                     body: bytes) -> dict[str, str]:
    """The three headers of a Standard Webhooks delivery of ``body`` (signed with the
    reference library)."""
    from standardwebhooks.webhooks import Webhook

    signature = Webhook(secret).sign(message_id, sent_at, body.decode())
    return {"webhook-id": message_id, "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature}


STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
STANDARD_TOLERANCE = timedelta(minutes=5)


def verify_standard(webhook_secrets: list[str], headers: Mapping[str, str], body: bytes,
                    now: datetime) -> tuple[str | None, str | None]:
    """A Standard Webhooks delivery checked against any of ``webhook_secrets`` (several during a
    rotation), with the clock injected: ``(message id, None)`` when valid, else ``(None, why
    not)`` (safe to show the sender). The header may carry several space-separated ``v1,``
    signatures; one matching any secret is enough; other versions are ignored."""
    from standardwebhooks.webhooks import Webhook

    lowered = {k.lower(): v for k, v in headers.items()}
    message_id, timestamp, signatures = (lowered.get(h) for h in STANDARD_HEADERS)
    if not (message_id and timestamp and signatures):
        return None, "webhook-id, webhook-timestamp and webhook-signature headers are required"
    try:
        sent = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        return None, "webhook-timestamp must be unix seconds"
    if abs(now - sent) > STANDARD_TOLERANCE:
        return None, (f"webhook-timestamp is outside the "
                      f"{int(STANDARD_TOLERANCE.total_seconds() // 60)}-minute tolerance; sign "
                      "with the current time")
    mismatch = ("no signature matches; sign \"<webhook-id>.<webhook-timestamp>.<body>\" with "
                "the webhook's secret (HMAC-SHA256, v1)")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None, mismatch
    passed = [s.split(",", 1)[1].encode() for s in signatures.split(" ")
              if s.startswith("v1,")]
    for secret in webhook_secrets:
        expected = Webhook(secret).sign(message_id, sent, text).split(",", 1)[1].encode()
        if any(hmac.compare_digest(expected, p) for p in passed):
            return message_id, None
    return None, mismatch


# ------------------------------------------------------------------- a webhook's deliveries

MAX_MESSAGE_ID = 200


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """A delivery whose signature holds: ``message_id`` is what replays are refused by (the
    ``webhook-id``; for the legacy scheme, the signature itself)."""

    message_id: str
    standard: bool


def is_standard_secret(secret: str) -> bool:
    return standard_secret_problem(secret) is None


def verify_delivery(webhook_secrets: list[str], headers: Mapping[str, str], body: bytes,
                    now: datetime) -> Delivery | str:
    """The delivery, or why it is refused (safe to show the sender). Standard Webhooks headers
    are checked against the webhook's Standard secrets, ``X-Orchestrator-Signature`` against
    its legacy one (a webhook rotated from a legacy secret accepts both during the grace)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    standard = [s for s in webhook_secrets if is_standard_secret(s)]
    legacy = [s for s in webhook_secrets if not is_standard_secret(s)]
    if any(h in lowered for h in STANDARD_HEADERS):
        if not standard:
            return ("this webhook has a legacy secret: sign with X-Orchestrator-Signature, or "
                    "rotate its secret (orchestrator webhooks rotate-secret ID) to sign with "
                    "Standard Webhooks")
        message_id, problem = verify_standard(standard, lowered, body, now)
        if problem is not None:
            return problem
        assert message_id is not None
        if len(message_id) > MAX_MESSAGE_ID:
            return f"webhook-id must be at most {MAX_MESSAGE_ID} characters"
        return Delivery(message_id=message_id, standard=True)
    signature = lowered.get(SIGNATURE_HEADER.lower())
    if legacy and (signature is not None or not standard):
        problems = [verify(s, lowered.get(TIMESTAMP_HEADER.lower()), signature, body, now)
                    for s in legacy]
        if None in problems and signature is not None:
            return Delivery(message_id=signature[-64:], standard=False)
        return str(problems[0])
    return "webhook-id, webhook-timestamp and webhook-signature headers are required " \
        "(Standard Webhooks)"

"""Inbound Standard Webhooks checks (``verify_standard``) against deliveries signed by the
reference library, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook

from orchestrator.domain.signatures import new_standard_secret, verify_standard

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
BODY = b'{"payload": {"user": "ada"}}'


def _signed(secret: str, *, at: datetime = NOW, body: bytes = BODY,
            msg_id: str = "msg_1") -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode())}


def test_a_delivery_signed_by_the_library_is_accepted() -> None:
    secret = new_standard_secret()
    assert verify_standard([secret], _signed(secret), BODY, NOW) == ("msg_1", None)
    headers = {k.title(): v for k, v in _signed(secret).items()}  # header case does not matter
    assert verify_standard([secret], headers, BODY, NOW)[0] == "msg_1"


def test_rotation_several_signatures_and_several_secrets() -> None:
    old, new = new_standard_secret(), new_standard_secret()
    both = _signed(new)
    both["webhook-signature"] = f"v2,ignored {_signed(old)['webhook-signature']} " \
                                f"{both['webhook-signature']}"
    assert verify_standard([new], both, BODY, NOW)[0] == "msg_1"
    assert verify_standard([old, new], _signed(old), BODY, NOW)[0] == "msg_1"  # grace period
    assert verify_standard([new], _signed(old), BODY, NOW)[0] is None  # after it


def test_tampered_wrong_secret_stale_future_and_missing_are_refused() -> None:
    secret = new_standard_secret()
    assert "no signature matches" in verify_standard([secret], _signed(secret), BODY + b" ",
                                                     NOW)[1]
    assert verify_standard([new_standard_secret()], _signed(secret), BODY, NOW)[0] is None
    stale = _signed(secret, at=NOW - timedelta(minutes=5, seconds=1))
    assert "tolerance" in verify_standard([secret], stale, BODY, NOW)[1]
    future = _signed(secret, at=NOW + timedelta(minutes=5, seconds=1))
    assert "tolerance" in verify_standard([secret], future, BODY, NOW)[1]
    inside = _signed(secret, at=NOW - timedelta(minutes=5))
    assert verify_standard([secret], inside, BODY, NOW)[0] == "msg_1"
    headers = _signed(secret)
    del headers["webhook-id"]
    assert "headers are required" in verify_standard([secret], headers, BODY, NOW)[1]
    assert "unix seconds" in verify_standard(
        [secret], {**_signed(secret), "webhook-timestamp": "soon"}, BODY, NOW)[1]
    assert verify_standard([secret], _signed(secret), b"\xff", NOW)[0] is None

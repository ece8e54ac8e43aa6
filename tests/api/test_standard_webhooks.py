"""Inbound Standard Webhooks through a real server on loopback, on SQLite and PostgreSQL: a
sender built with the ``standardwebhooks`` package (as a provider's would be) against
``POST /v1/webhooks/{id}``, the server's clock injected. Accepted, tampered, wrong secret, stale
and future, replayed webhook-id (409 naming the first execution), several signatures in one
header, and a rotated secret inside and after its grace period (a Standard webhook, and a
legacy one moving to Standard Webhooks)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from orchestrator.domain.signatures import new_standard_secret, sign
from orchestrator.store import Store
from tests.api.conftest import Client, error_of, legacy_webhook
from tests.conftest import ManualClock

pytestmark = pytest.mark.slow


class Sender:
    """A provider's sender: the reference library signs each delivery."""

    def __init__(self, url: str, clock: ManualClock) -> None:
        self.url = url
        self.clock = clock

    def deliver(self, webhook_id: str, secret: str, payload: object, *, msg_id: str,
                at_offset: timedelta = timedelta(0), tamper: bool = False,
                extra_signatures: tuple[str, ...] = ()) -> requests.Response:
        body = json.dumps(payload)
        at = self.clock.now + at_offset
        signature = Webhook(secret).sign(msg_id, at, body)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": " ".join((*extra_signatures, signature)),
                   "Content-Type": "application/json"}
        sent = body.replace("42", "43") if tamper else body
        return requests.post(f"{self.url}/v1/webhooks/{webhook_id}", data=sent.encode(),
                             headers=headers, timeout=30)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sender(serve, clock: ManualClock) -> Sender:
    return Sender(serve(clock=clock).url, clock)


def test_deliveries_signed_by_the_library(sender: Sender, store: Store, make_workflow) -> None:
    make_workflow("digest", environment="acme")
    hook = store.access.create_webhook("acme", "digest", sender.clock())
    assert hook.secret.startswith("whsec_") and len(hook.secret) == 50  # whsec_ + base64

    accepted = sender.deliver(hook.id, hook.secret, {"order": 42}, msg_id="msg_1")
    assert accepted.status_code == 202, accepted.text
    first = accepted.json()["execution_id"]
    record = store.get_execution(first)
    assert (record.source.value, record.trigger_id, record.environment, record.payload) == \
        ("webhook", hook.id, "acme", {"order": 42})

    # a sender's retry: the same webhook-id, a fresh timestamp and signature, a minute later
    sender.clock.advance(timedelta(minutes=1))
    replay = error_of(sender.deliver(hook.id, hook.secret, {"order": 42}, msg_id="msg_1"), 409)
    assert (replay["code"], replay["execution_id"]) == ("conflict", first)
    assert first in replay["message"]

    refused = {
        "tampered body": dict(tamper=True),
        "stale": dict(at_offset=-timedelta(minutes=5, seconds=1)),
        "future": dict(at_offset=timedelta(minutes=5, seconds=1)),
    }
    for why, options in refused.items():
        error = error_of(sender.deliver(hook.id, hook.secret, {"order": 42},
                                        msg_id=f"msg_{why}", **options), 401)
        assert error["code"] == "invalid_signature", why
        assert ("tolerance" in error["message"]) == (why != "tampered body"), why
    wrong = error_of(sender.deliver(hook.id, new_standard_secret(), {"order": 42},
                                    msg_id="msg_wrong"), 401)
    assert "no signature matches" in wrong["message"]
    unsigned = requests.post(f"{sender.url}/v1/webhooks/{hook.id}", data=b"{}", timeout=30)
    assert "webhook-signature" in error_of(unsigned, 401)["message"]
    # inside the tolerance, and several signatures in one header (a sender mid-rotation)
    edge = sender.deliver(hook.id, hook.secret, {"order": 42}, msg_id="msg_2",
                          at_offset=-timedelta(minutes=4, seconds=59),
                          extra_signatures=("v1,bm90IG91ciBzaWduYXR1cmU=", "v2,ignored"))
    assert edge.status_code == 202, edge.text
    assert len(store.list_executions()) == 2  # nothing refused wrote an execution


def test_a_rotated_secret_inside_and_after_the_grace(sender: Sender, store: Store,
                                                     make_workflow) -> None:
    make_workflow("digest", environment="acme")
    hook = store.access.create_webhook("acme", "digest", sender.clock())
    rotated = store.access.rotate_webhook_secret(hook.id, sender.clock(), timedelta(hours=1))
    assert rotated.secret != hook.secret and rotated.previous_secret == hook.secret
    old, new = hook.secret, rotated.secret

    sender.clock.advance(timedelta(minutes=59))  # inside the grace: both
    assert sender.deliver(hook.id, old, {"n": 1}, msg_id="a").status_code == 202
    assert sender.deliver(hook.id, new, {"n": 2}, msg_id="b").status_code == 202
    sender.clock.advance(timedelta(minutes=1))  # the grace is over: only the new one
    assert "no signature matches" in error_of(
        sender.deliver(hook.id, old, {"n": 3}, msg_id="c"), 401)["message"]
    assert sender.deliver(hook.id, new, {"n": 4}, msg_id="d").status_code == 202
    assert sorted(e.payload["n"] for e in store.list_executions()) == [1, 2, 4]

    # no grace: the old secret stops at once
    again = store.access.rotate_webhook_secret(hook.id, sender.clock(), timedelta(0))
    assert again.previous_secret is None
    assert error_of(sender.deliver(hook.id, new, {"n": 5}, msg_id="e"), 401)
    assert sender.deliver(hook.id, again.secret, {"n": 6}, msg_id="f").status_code == 202


def test_a_legacy_webhook_keeps_its_scheme_until_rotated_to_standard(
        sender: Sender, store: Store, make_workflow) -> None:
    make_workflow("digest", environment="acme")
    hook = legacy_webhook(store, "acme", "digest")
    client = Client(sender.url)

    def legacy(secret: str, body: bytes) -> requests.Response:
        ts = str(int(sender.clock.now.timestamp()))
        return client.post(f"/v1/webhooks/{hook.id}", data=body, headers={
            "X-Orchestrator-Timestamp": ts, "X-Orchestrator-Signature": sign(secret, ts, body)})

    assert legacy(hook.secret, b'{"n": 1}').status_code == 202
    standard = error_of(sender.deliver(hook.id, new_standard_secret(), {"n": 2}, msg_id="x"),
                        401)
    assert "rotate-secret" in standard["message"]  # the way to Standard Webhooks
    rotated = store.access.rotate_webhook_secret(hook.id, sender.clock(), timedelta(hours=24))
    assert legacy(hook.secret, b'{"n": 3}').status_code == 202  # the grace: both schemes
    assert sender.deliver(hook.id, rotated.secret, {"n": 4}, msg_id="y").status_code == 202
    sender.clock.advance(timedelta(hours=24))
    assert error_of(legacy(hook.secret, b'{"n": 5}'), 401)["code"] == "invalid_signature"
    assert sender.deliver(hook.id, rotated.secret, {"n": 6}, msg_id="z").status_code == 202
    assert sorted(e.payload["n"] for e in store.list_executions()) == [1, 3, 4, 6]

"""Isolation: every endpoint of the HTTP API, aimed at environment A's objects, with credentials
that must not open them; then the store is checked for anything those calls wrote.

The endpoints come from the app's own route table, so a new route is covered without editing
this file: an operation of ``/openapi.json`` that takes the bearer key gets the key matrix, the
webhook gets the signature matrix, a route outside the document must be one of the
:data:`PUBLIC` ones, and a path parameter the matrix cannot aim at A counts as uncovered.

- Key matrix: a valid key of environment B; no ``Authorization``; malformed headers (another
  scheme, no scheme, an empty bearer, A's key under another scheme); wrong keys (unknown, A's key
  altered, A's revoked key). Then a trigger of B's own workflow naming A's execution as parent.
- Webhook matrix (Standard Webhooks, signed with the reference library): a tampered body, a
  tampered signature, a stale and a future timestamp, no signature, a signature made with B's
  webhook secret, A's delivery sent to B's webhook, the legacy scheme with A's secret, and a
  replay of a delivery that was accepted (409).
- Operator routes (``/metrics``): no token, A's key, B's key and a wrong token are 401; the
  operator token (the control) is 200.

**Accepted** (the target is 0): a 2xx without valid credentials; a 2xx with B's key whose body
reveals A's data (ids, payload, secrets, A's name) or after which the store changed. Every call
but the controls is also checked against the store: no row may appear or change in any table.
Controls (A's own key, a correctly signed delivery) run last and must succeed, so a refusal is
owed to the credentials, not to a malformed request.

``make chaos`` runs it on ``orchestrator serve``; ``tests/api/test_isolation.py`` in-process.
Usage: .venv/bin/python -m bench.chaos_isolation [backend...]
"""

from __future__ import annotations

import collections
import json
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from starlette.routing import Route

from orchestrator.domain.signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    standard_headers,
)
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store import tables as t

A, B = "tenant-a", "tenant-b"
ONLY_A = "a-only"  # a workflow of A's that B does not have
SHARED = "digest"  # a workflow name both have
PUBLIC = {"/healthz", "/openapi.json"}
"""Answer without a key by design: liveness and the document. Checked to reveal no
environment's ids, payloads or secrets (nor an environment's name)."""
OPERATOR = {"/metrics"}
"""Answer only to the operator token (they name every environment)."""
WEBHOOK = "/v1/webhooks/{webhook_id}"
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/workflows/{name}/trigger"): {"payload": {"who": "attacker"}},
    ("POST", "/v1/workflows/{name}/trigger-batch"): {"items": [{"payload": {"who": "attacker"}}]},
    ("POST", "/v1/schedules"): {"workflow": ONLY_A, "cron": "0 9 * * *"},
    ("POST", "/v1/schedules/{schedule_id}/backfill"): {"start": "2020-01-01T00:00:00Z",
                                                        "end": "2020-01-03T00:00:00Z"},
}
"""A valid body per operation (the controls prove it); others send none (GET, DELETE) or {}."""


def _doc(name: str) -> dict[str, Any]:
    return {"name": name, "blocks": [{"id": "a", "type": "transform", "with": {"x": 1}}]}


@dataclass(frozen=True, kw_only=True)
class World:
    """What A owns (the targets) and the credentials of both environments."""

    url: str
    store_url: str
    key_a: str
    key_b: str
    revoked_a: str
    expired_a: str
    operator_token: str
    execution_a: str
    schedule_a: str
    backfill_a: str
    webhook_a: str
    secret_a: str
    webhook_b: str
    secret_b: str
    marker: str  # in A's payloads: must never appear in an answer to anyone else

    def reveals(self, text: str) -> list[str]:
        secrets = [self.key_a, self.revoked_a, self.expired_a, self.execution_a,
                   self.schedule_a, self.backfill_a, self.webhook_a, self.secret_a, self.marker,
                   A]
        return [s for s in secrets if s in text]


def build_world(store_url: str, url: str, operator_token: str) -> World:
    """A with two workflows, an execution, a schedule with a backfill, a webhook and keys (one
    revoked, one expired); B with a workflow, a webhook and a key. ``operator_token``: the
    server's."""
    store, now = Store(store_url), datetime.now(UTC)
    access = store.access
    for environment, name in ((A, SHARED), (A, ONLY_A), (B, SHARED)):
        store.apply_workflow(parse_workflow(_doc(name) | {"environment": environment},
                                            block_types()), now)
    key_a, key_b = access.create_api_key(A, now)[1], access.create_api_key(B, now)[1]
    revoked, revoked_a = access.create_api_key(A, now)
    access.revoke_api_key(revoked.id, now)
    expired_a = access.create_api_key(A, now - timedelta(days=2), now - timedelta(days=1))[1]
    hook_a, hook_b = access.create_webhook(A, ONLY_A, now), access.create_webhook(B, SHARED, now)
    marker = f"a-private-{uuid.uuid4().hex}"
    auth = {"Authorization": f"Bearer {key_a}"}
    execution = requests.post(f"{url}/v1/workflows/{ONLY_A}/trigger", headers=auth, timeout=30,
                              json={"payload": {"secret": marker}, "idempotency_key": "a-1"})
    schedule = requests.post(f"{url}/v1/schedules", headers=auth, timeout=30,
                             json={"workflow": ONLY_A, "cron": "0 9 * * *",
                                   "payload": {"secret": marker}})
    assert execution.status_code == 202 and schedule.status_code == 201, \
        (execution.text, schedule.text)
    backfill = requests.post(f"{url}/v1/schedules/{schedule.json()['id']}/backfill",
                             headers=auth, timeout=30,
                             json=BODIES[("POST", "/v1/schedules/{schedule_id}/backfill")])
    assert backfill.status_code == 202, backfill.text
    return World(url=url, store_url=store_url, key_a=key_a, key_b=key_b, revoked_a=revoked_a,
                 expired_a=expired_a, operator_token=operator_token,
                 execution_a=execution.json()["execution_id"], schedule_a=schedule.json()["id"],
                 backfill_a=backfill.json()["id"],
                 webhook_a=hook_a.id, secret_a=hook_a.secret, webhook_b=hook_b.id,
                 secret_b=hook_b.secret, marker=marker)


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    method: str
    path: str  # the template, e.g. /v1/schedules/{schedule_id}
    kind: str  # bearer | webhook | public | operator

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def endpoints_of(routes: list[Any], document: dict[str, Any]) -> list[Endpoint]:
    """Every (method, path) the app serves, classified by its OpenAPI operation."""
    found = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = document["paths"].get(route.path, {}).get(method.lower())
            if route.path in PUBLIC:
                kind = "public"
            elif route.path in OPERATOR:
                kind = "operator"
            elif operation is None:
                kind = "undocumented"
            elif operation.get("security", document.get("security")) == []:
                kind = "webhook" if route.path == WEBHOOK else "unauthenticated"
            else:
                kind = "bearer"
            found.append(Endpoint(method=method, path=route.path, kind=kind))
    return found


@dataclass(kw_only=True)
class IsolationResult:
    endpoints: list[str] = field(default_factory=list)
    requests: int = 0
    statuses: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    accepted: list[str] = field(default_factory=list)
    not_refused: list[str] = field(default_factory=list)  # no valid key, yet not a 401
    store_changes: list[str] = field(default_factory=list)
    failed_controls: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self) -> bool:
        return not (self.accepted or self.not_refused or self.store_changes
                    or self.failed_controls or self.uncovered)

    def failures(self) -> list[str]:
        return (self.accepted + self.not_refused + self.store_changes + self.failed_controls
                + self.uncovered)

    def summary(self) -> str:
        return (f"{len(self.endpoints)} endpoints, {self.requests} requests; accepted "
                f"{len(self.accepted)}, unauthenticated calls not answered 401 "
                f"{len(self.not_refused)}, store changes by refused calls "
                f"{len(self.store_changes)}, failed controls {len(self.failed_controls)}, "
                f"uncovered {len(self.uncovered)}")


class Matrix:
    def __init__(self, world: World, routes: list[Any]) -> None:
        self.world = world
        self.session = requests.Session()
        self.engine = sa.create_engine(world.store_url)
        document = self.session.get(world.url + "/openapi.json", timeout=30).json()
        self.endpoints = endpoints_of(routes, document)
        self.result = IsolationResult(endpoints=[e.label for e in self.endpoints])

    def _state(self) -> dict[str, Any]:
        """Every table's rows: any write at all shows (but a valid key's last use, which its
        own calls record)."""
        def columns(table: sa.Table) -> list[sa.Column[Any]]:
            return [c for c in table.columns
                    if not (table is t.api_keys and c.name == "last_used_at")]

        with self.engine.connect() as conn:
            return {table.name: sorted(map(repr, conn.execute(sa.select(*columns(table)))))
                    for table in t.metadata.sorted_tables}

    def _path(self, endpoint: Endpoint, **override: str) -> str | None:
        w = self.world
        values = {"name": ONLY_A, "execution_id": w.execution_a, "schedule_id": w.schedule_a,
                  "backfill_id": w.backfill_a, "webhook_id": w.webhook_a} | override
        names = re.findall(r"{(\w+)}", endpoint.path)
        if any(n not in values for n in names):
            return None
        return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], endpoint.path)

    def _send(self, endpoint: Endpoint, path: str, *, headers: dict[str, str],
              body: bytes | None = None) -> requests.Response:
        if body is None and endpoint.method == "POST":
            body = json.dumps(BODIES.get((endpoint.method, endpoint.path), {})).encode()
        self.result.requests += 1
        return self.session.request(endpoint.method, self.world.url + path, data=body,
                                    headers={"Content-Type": "application/json", **headers},
                                    timeout=30)

    def _attack(self, endpoint: Endpoint, variant: str, path: str, *, valid_key: bool,
                headers: dict[str, str], body: bytes | None = None) -> None:
        before = self._state()
        response = self._send(endpoint, path, headers=headers, body=body)
        changed = [name for name, rows in self._state().items() if before[name] != rows]
        status = response.status_code
        self.result.statuses[variant][status] += 1
        what = f"{endpoint.label} with {variant}: {status} {response.text[:200]!r}"
        if changed:
            self.result.store_changes.append(f"{what} (changed {changed})")
        if 200 <= status < 300 and (not valid_key or changed or
                                    self.world.reveals(response.text)):
            self.result.accepted.append(what)
        elif not valid_key and endpoint.kind == "bearer" and status != 401:
            self.result.not_refused.append(what)

    # ------------------------------------------------------------------------------ matrices

    def bearer(self, endpoint: Endpoint, path: str) -> None:
        w = self.world
        others = {
            "B's key": (True, {"Authorization": f"Bearer {w.key_b}"}),
            "no Authorization": (False, {}),
            "Basic scheme": (False, {"Authorization": "Basic YWRtaW46YWRtaW4="}),
            "A's key without scheme": (False, {"Authorization": w.key_a}),
            "A's key under Token scheme": (False, {"Authorization": f"Token {w.key_a}"}),
            "empty bearer": (False, {"Authorization": "Bearer "}),
            "unknown key": (False, {"Authorization": f"Bearer ork_{uuid.uuid4().hex}"}),
            "A's key altered": (False, {"Authorization": f"Bearer {w.key_a[:-1]}x"}),
            "A's key and more": (False, {"Authorization": f"Bearer {w.key_a} {w.key_a}"}),
            "A's revoked key": (False, {"Authorization": f"Bearer {w.revoked_a}"}),
            "A's expired key": (False, {"Authorization": f"Bearer {w.expired_a}"}),
        }
        for variant, (valid, headers) in others.items():
            self._attack(endpoint, variant, path, valid_key=valid, headers=headers)

    def webhook(self, endpoint: Endpoint) -> None:
        w = self.world
        body, now = b'{"from": "outside"}', datetime.now(UTC)
        message = f"msg_{uuid.uuid4().hex}"

        def signed(secret: str, at: datetime = now, content: bytes = body) -> dict[str, str]:
            return standard_headers(secret, message, at, content)

        good = signed(w.secret_a)
        flipped = good["webhook-signature"][:-2] + ("A=" if good["webhook-signature"][-2] != "A"
                                                     else "B=")
        legacy = {TIMESTAMP_HEADER: str(int(now.timestamp())),
                  SIGNATURE_HEADER: sign(w.secret_a, int(now.timestamp()), body)}
        path_a, path_b = self._path(endpoint), self._path(endpoint, webhook_id=w.webhook_b)
        assert path_a and path_b
        for variant, path, headers, content in [
            ("tampered body", path_a, good, b'{"from": "outside", "amount": 1e6}'),
            ("tampered signature", path_a, {**good, "webhook-signature": flipped}, body),
            ("stale timestamp (10 min)", path_a,
             signed(w.secret_a, now - timedelta(minutes=10)), body),
            ("future timestamp (10 min)", path_a,
             signed(w.secret_a, now + timedelta(minutes=10)), body),
            ("no signature", path_a, {k: v for k, v in good.items()
                                      if k != "webhook-signature"}, body),
            ("B's webhook secret", path_a, signed(w.secret_b), body),
            ("A's delivery to B's webhook", path_b, good, body),
            ("legacy scheme on a Standard webhook", path_a, legacy, body),
        ]:
            self._attack(endpoint, f"webhook: {variant}", path, valid_key=False,
                         headers=headers, body=content)
        accepted = self._send(endpoint, path_a, headers=good, body=body)  # control
        if accepted.status_code != 202:
            self.result.failed_controls.append(f"{endpoint.label} signed: "
                                               f"{accepted.status_code} {accepted.text[:200]}")
        self._attack(endpoint, "webhook: replay of an accepted delivery", path_a,
                     valid_key=False, headers=good, body=body)

    def operator(self, endpoint: Endpoint) -> None:
        w = self.world
        for variant, token in [("no token", None), ("A's key", w.key_a), ("B's key", w.key_b),
                               ("a wrong token", w.operator_token + "x")]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = self._send(endpoint, endpoint.path, headers=headers)
            self.result.statuses[f"operator route, {variant}"][response.status_code] += 1
            if response.status_code != 401:
                self.result.not_refused.append(f"{endpoint.label} with {variant}: "
                                               f"{response.status_code}")
        control = self._send(endpoint, endpoint.path,
                             headers={"Authorization": f"Bearer {w.operator_token}"})
        if control.status_code != 200:
            self.result.failed_controls.append(f"{endpoint.label} with the operator token: "
                                               f"{control.status_code} {control.text[:200]}")

    def public(self, endpoint: Endpoint) -> None:
        response = self._send(endpoint, endpoint.path, headers={})
        self.result.statuses["public, no key"][response.status_code] += 1
        revealed = self.world.reveals(response.text)
        if revealed:
            self.result.accepted.append(f"{endpoint.label} without a key reveals {revealed}")

    def cross_reference(self) -> None:
        """B's key, B's own workflow, A's execution as the parent: no link across."""
        endpoint = Endpoint(method="POST", path="/v1/workflows/{name}/trigger", kind="bearer")
        body = json.dumps({"parent_execution_id": self.world.execution_a}).encode()
        self._attack(endpoint, "B's key, A's execution as parent", f"/v1/workflows/{SHARED}"
                     "/trigger", valid_key=True, body=body,
                     headers={"Authorization": f"Bearer {self.world.key_b}"})

    def run(self) -> IsolationResult:
        started = time.monotonic()
        controls = []
        for endpoint in self.endpoints:
            path = self._path(endpoint)
            if endpoint.kind == "public":
                self.public(endpoint)
            elif endpoint.kind == "operator":
                self.operator(endpoint)
            elif endpoint.kind == "webhook":
                self.webhook(endpoint)
            elif endpoint.kind == "bearer" and path is not None:
                self.bearer(endpoint, path)
                controls.append((endpoint, path))
            else:
                self.result.uncovered.append(f"{endpoint.label} ({endpoint.kind})")
        self.cross_reference()
        for endpoint, path in sorted(controls, key=lambda c: c[0].method == "DELETE"):
            response = self._send(endpoint, path,
                                  headers={"Authorization": f"Bearer {self.world.key_a}"})
            if not 200 <= response.status_code < 300:
                self.result.failed_controls.append(
                    f"{endpoint.label} with A's key: {response.status_code} "
                    f"{response.text[:200]}")
        self.engine.dispose()
        self.result.seconds = time.monotonic() - started
        return self.result


def isolation(world: World, routes: list[Any]) -> IsolationResult:
    """Run the matrix against ``world``; ``routes`` is the served app's route table."""
    return Matrix(world, routes).run()


def app_routes(store_url: str) -> list[Any]:
    """The route table of the app ``orchestrator serve`` runs (built, not served)."""
    from orchestrator.api.app import create_app
    from orchestrator.api.settings import ApiSettings
    from orchestrator.settings import Settings

    return list(create_app(ApiSettings(store=Settings(database_url=store_url))).routes)


def run_isolation(backend_name: str, *, log_dir: Path) -> IsolationResult:
    """A fresh store on ``backend_name`` (a new PostgreSQL database, dropped afterwards),
    served by ``orchestrator serve``."""
    from harness.dagster_home import backend
    from harness.processes import OPERATOR_TOKEN, api_server

    log_dir.mkdir(parents=True, exist_ok=True)
    with backend(backend_name) as b, \
            api_server(b.store_url, b.home, log_dir / f"isolation-{backend_name}.log") as url:
        return isolation(build_world(b.store_url, url, OPERATOR_TOKEN), app_routes(b.store_url))


def main() -> None:
    from harness.processes import REPO

    for name in sys.argv[1:] or ["sqlite", "postgres"]:
        result = run_isolation(name, log_dir=REPO / ".chaos_logs")
        print(f"{name} ({result.seconds:.1f} s): {result.summary()}")
        for variant, statuses in result.statuses.items():
            print(f"   {variant}: {dict(statuses)}")
        for failure in result.failures():
            print("  ", failure)


if __name__ == "__main__":
    main()

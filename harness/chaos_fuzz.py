"""Bad input: property-based fuzzing of the HTTP API from its own OpenAPI document (schemathesis)
against a real server on loopback over a real store.

Every operation of ``/openapi.json`` gets ``examples`` requests generated from its schema
(positive: valid per the document) and as many generated to violate it (negative), sent with a
real API key. Half the time a path parameter is replaced by a real one (the applied workflow,
an execution or schedule created during the run, the webhook) and a webhook delivery is signed
with the webhook's secret, so requests get past lookups and signatures into the deep code.

Every response is checked:

- no 5xx;
- no leaked internals: no trace, no driver or module name, no exception class name, no database
  URL or name (:data:`LEAK_MARKERS` and the store's own URL);
- every 4xx is the structured JSON error ``{"error": {"code", "message"}}``
  (``orchestrator/api/errors.py``), and a 422 names its field: ``error.field`` is a non-empty
  string whose first segment is a field of the request (a parameter, a key sent, or a property
  of a documented body);
- every response conforms to the document: its body validates against the schema documented
  for its status (schemathesis's ``response_schema_conformance``), so the response models of
  ``orchestrator/api/responses.py`` describe what the handlers really answer.

``make chaos`` runs it long (``CHAOS_FUZZ_EXAMPLES``); ``tests/api/test_fuzz.py`` runs it short.
Usage: .venv/bin/python -m bench.chaos_fuzz [examples] [backend...]
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from orchestrator.domain.signatures import (
    SIGNATURE_HEADER,
    STANDARD_HEADERS,
    TIMESTAMP_HEADER,
    standard_headers,
)
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store

WORKFLOW = {"name": "digest", "environment": "fuzz", "blocks": [
    {"id": "fetch", "type": "transform", "with": {"total": 3}},
    {"id": "summary", "type": "transform", "with": {"who": "{{ trigger.payload.user }}"}}]}

LEAK_MARKERS = (
    "Traceback", 'File "', "sqlalchemy", "psycopg", "postgresql://", "postgresql+", "sqlite:///",
    "sqlite3.", "pydantic_core", "IntegrityError", "OperationalError", "ProgrammingError",
    "DataError", "InterfaceError", "DatabaseError", "InternalError", "KeyError", "ValueError",
    "TypeError", "AttributeError", "AssertionError", "OverflowError", "UnicodeDecodeError",
    "UnicodeEncodeError", "RecursionError", "NoneType",
)
"""Text that never belongs in a response: traces, drivers, exception classes, database URLs."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """A running API, the environment it is fuzzed in, and what must never leak from it."""

    url: str
    store_url: str
    key: str
    webhook_id: str
    webhook_secret: str
    workflow: str = "digest"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The store's URL and its database (file) name."""
        return (self.store_url, self.store_url.rsplit("/", 1)[-1])


def prepare(store_url: str, url: str) -> Target:
    """Apply the workflow, create an API key and a webhook in environment ``fuzz``."""
    store = Store(store_url)
    now = datetime.now(UTC)
    store.apply_workflow(parse_workflow(WORKFLOW, block_types()), now)
    access = store.access
    key = access.create_api_key("fuzz", now)[1]
    hook = access.create_webhook("fuzz", str(WORKFLOW["name"]), now)
    return Target(url=url, store_url=store_url, key=key, webhook_id=hook.id,
                  webhook_secret=hook.secret)


@dataclass(kw_only=True)
class FuzzResult:
    operations: int = 0
    requests: int = 0
    unsendable: int = 0  # generated requests the HTTP client refuses to send (bad header bytes)
    nothing_to_negate: list[str] = field(default_factory=list)  # operations without input
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    per_operation: collections.Counter[str] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    unstructured: list[str] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)  # bodies the document does not match
    replays_accepted: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self) -> bool:
        return not self.failures()

    def failures(self) -> list[str]:
        return (self.server_errors + self.leaks + self.unstructured + self.unnamed
                + self.nonconforming + self.replays_accepted)

    def summary(self) -> str:
        codes = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"{self.operations} operations, {self.requests} requests ({codes}); "
                f"5xx {len(self.server_errors)}, leaks {len(self.leaks)}, unstructured "
                f"rejections {len(self.unstructured)}, 422 without a named field "
                f"{len(self.unnamed)}, responses not as documented {len(self.nonconforming)}, "
                f"replayed deliveries accepted {len(self.replays_accepted)}")


class Fuzzer:
    def __init__(self, target: Target, seed: int) -> None:
        self.target = target
        self.seed = seed
        self.session = requests.Session()
        self.result = FuzzResult()
        document = self.session.get(target.url + "/openapi.json", timeout=30).json()
        self.schema = schemathesis.openapi.from_dict(document)
        self.fields = _documented_fields(document)
        self.executions: list[str] = []
        self.schedules: list[str] = []
        self.backfills: list[str] = []
        self.rng = random.Random(seed)

    # ------------------------------------------------------------------------------ state

    def _api(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(method, self.target.url + path, json=body, timeout=30,
                                    headers={"Authorization": f"Bearer {self.target.key}"})

    def seed_state(self) -> None:
        """An execution, two schedules and a backfill to aim the real path parameters at."""
        trigger = self._api("POST", f"/v1/workflows/{self.target.workflow}/trigger",
                            {"payload": {"user": "fuzz"}})
        assert trigger.status_code == 202, trigger.text
        self.executions.append(trigger.json()["execution_id"])
        for _ in range(2):
            self._new_schedule()
        backfill = self._api("POST", f"/v1/schedules/{self.schedules[0]}/backfill",
                             {"start": "2020-01-01T00:00:00Z", "end": "2020-01-03T00:00:00Z"})
        assert backfill.status_code == 202, backfill.text
        self.backfills.append(backfill.json()["id"])

    def _new_schedule(self) -> None:
        created = self._api("POST", "/v1/schedules", {"workflow": self.target.workflow,
                                                      "cron": "0 9 * * *"})
        assert created.status_code == 201, created.text
        self.schedules.append(created.json()["id"])

    def _real(self, name: str) -> str | None:
        pools = {"name": [self.target.workflow], "execution_id": self.executions,
                 "schedule_id": self.schedules, "backfill_id": self.backfills,
                 "webhook_id": [self.target.webhook_id]}
        pool = pools.get(name)
        return self.rng.choice(pool) if pool else None

    # ------------------------------------------------------------------------------ fuzzing

    def run(self, examples: int) -> FuzzResult:
        started = time.monotonic()
        self.seed_state()
        operations = [r.ok() for r in self.schema.get_all_operations()]  # type: ignore[union-attr]
        self.result.operations = len(operations)
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                self._fuzz(operation, mode, examples)
        self.result.seconds = time.monotonic() - started
        return self.result

    def _fuzz(self, operation: Any, mode: GenerationMode, examples: int) -> None:
        @settings(max_examples=examples, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck), verbosity=hypothesis.Verbosity.quiet)
        @hypothesis.seed(self.seed)
        @given(case=operation.as_strategy(generation_mode=mode), aim=st.booleans())
        def one(case: Any, aim: bool) -> None:
            self._send(operation, case, aim)

        try:
            one()
        except hypothesis.errors.Unsatisfiable:  # nothing to break (GET /healthz: no input)
            if mode is GenerationMode.POSITIVE:
                raise
            self.result.nothing_to_negate.append(operation.label)

    def _send(self, operation: Any, case: Any, aim: bool) -> None:
        # Hypothesis also draws string constants from local source files, this one's markers
        # included; a marker sent could come back as an echo of the request, not a leak.
        sent = json.dumps([case.path_parameters, case.query, case.headers, case.body],
                          default=str, ensure_ascii=False)
        hypothesis.assume(not any(m in sent for m in LEAK_MARKERS))
        if aim:
            for name in list(case.path_parameters or {}):
                real = self._real(name)
                if real is not None:
                    case.path_parameters[name] = real
        kwargs = case.as_transport_kwargs(base_url=self.target.url)
        headers = kwargs["headers"]
        headers.pop("X-Schemathesis-TestCaseId", None)
        headers["Authorization"] = f"Bearer {self.target.key}"
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
        replay = False
        if aim and operation.path == "/v1/webhooks/{webhook_id}" and \
                case.path_parameters["webhook_id"] == self.target.webhook_id:
            body = kwargs.get("data") or b""
            body = body.encode() if isinstance(body, str) else body
            for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER, *STANDARD_HEADERS):
                headers.pop(name, None)
            # signed as a Standard Webhooks library signs (UTF-8 bodies only)
            with contextlib.suppress(UnicodeDecodeError):
                headers.update(standard_headers(self.target.webhook_secret,
                                                f"msg_{self.rng.getrandbits(64):x}",
                                                datetime.now(UTC), body))
            replay = self.rng.random() < 0.2
        try:
            response = self.session.request(timeout=30, **kwargs)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
                UnicodeError):
            self.result.unsendable += 1
            return
        self._check(operation, case, kwargs, response)
        if replay:  # the same delivery again: refused, never a second execution
            again = self.session.request(timeout=30, **kwargs)
            self._check(operation, case, kwargs, again)
            if response.ok and again.ok:
                self.result.replays_accepted.append(f"{_brief(kwargs)} -> {again.text[:200]}")

    # ------------------------------------------------------------------------------ checks

    def _check(self, operation: Any, case: Any, sent: dict[str, Any],
               response: requests.Response) -> None:
        result = self.result
        result.requests += 1
        status = response.status_code
        result.statuses[status] += 1
        result.per_operation[operation.label] += 1
        text = response.text
        what = f"{operation.method.upper()} {operation.path}: {status} for {_brief(sent)} -> " \
               f"{text[:300]!r}"
        # A marker the request itself carried may come back in its error (``'x' is not an
        # ISO-8601 instant``): an echo of the caller's input, not a leak.
        echoed = f"{sent.get('url')} {sent.get('params')} {sent.get('data')!r} {sent.get('json')}"
        leaked = [m for m in (*LEAK_MARKERS, *self.target.secrets)
                  if m in text and m not in echoed]
        if leaked:
            at = text.index(leaked[0])
            result.leaks.append(f"leaked {leaked} ({text[max(0, at - 150):at + 100]!r}): "
                                f"{what}")
        if status >= 500:
            result.server_errors.append(what)
        try:
            case.validate_response(response, checks=[response_schema_conformance])
        except FailureGroup as failures:
            result.nonconforming.append(f"{what}: {[str(f.title) for f in failures.exceptions]}")
        if status < 400:
            if status == 202 and operation.path.endswith("/trigger"):
                self.executions.append(response.json()["execution_id"])
            elif status == 201 and operation.path == "/v1/schedules":
                self.schedules.append(response.json()["id"])
            elif status == 204 and operation.method.upper() == "DELETE":
                self.schedules.remove(sent["url"].rsplit("/", 1)[-1])
                if not self.schedules:
                    self._new_schedule()
            return
        error = _error_of(response)
        if error is None:
            result.unstructured.append(what)
        elif status == 422 and not self._names_a_field(error, operation, sent):
            result.unnamed.append(what)

    def _names_a_field(self, error: dict[str, Any], operation: Any, sent: dict[str, Any]
                       ) -> bool:
        named = error.get("field")
        if not isinstance(named, str) or not named.strip():
            return False
        known = {"body"} | self.fields | {k.lower() for k in sent.get("headers", {})}
        known |= {str(k) for k in sent.get("params", {})}
        known |= {p.name for p in operation.iter_parameters()}
        try:
            body = json.loads(sent.get("data") or b"null")
        except ValueError:
            body = None
        if isinstance(body, dict):
            known |= {str(k) for k in body}
        known |= {ascii(k)[1:-1] for k in known}  # how names that are not text are shown
        known |= {repr(k) for k in known if not k.strip()}  # and blank names: quoted
        return any(named.lower() == k.lower() or named.startswith(k + ".") for k in known)


def _documented_fields(document: dict[str, Any]) -> set[str]:
    """Every property name of the document's request-body schemas (and the schemas they
    reference), not of its responses."""
    schemas = document.get("components", {}).get("schemas", {})
    names: set[str] = set()
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    seen.add(name)
                    walk(schemas.get(name, {}))
            names.update(node.get("properties", {}) if isinstance(node.get("properties"),
                                                                  dict) else ())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            walk(operation.get("requestBody", {}))
    return names


def _error_of(response: requests.Response) -> dict[str, Any] | None:
    """The ``error`` object of a structured JSON error, else None."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    if not all(isinstance(error.get(k), str) and error[k] for k in ("code", "message")):
        return None
    return error


def _brief(sent: dict[str, Any]) -> str:
    headers = {k: v for k, v in sent.get("headers", {}).items()
               if k.lower() not in {"user-agent", "accept", "accept-encoding", "connection",
                                    "authorization"}}
    data = sent.get("data")
    return f"{sent['url']} params={sent.get('params')} headers={headers} body={data!r:.200}"


def fuzz(target: Target, *, examples: int, seed: int) -> FuzzResult:
    """Fuzz every operation of ``target``'s document with ``examples`` positive and as many
    negative requests."""
    return Fuzzer(target, seed).run(examples)


def run_fuzz(backend_name: str, *, examples: int, seed: int, log_dir: Path) -> FuzzResult:
    """A fresh store on ``backend_name`` (a new PostgreSQL database, dropped afterwards), served
    by ``orchestrator serve``, fuzzed."""
    from harness.dagster_home import backend
    from harness.processes import api_server

    log_dir.mkdir(parents=True, exist_ok=True)
    with backend(backend_name) as b, \
            api_server(b.store_url, b.home, log_dir / f"fuzz-{backend_name}.log") as url:
        return fuzz(prepare(b.store_url, url), examples=examples, seed=seed)


def main() -> None:
    from harness.processes import REPO

    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    backends = sys.argv[2:] or ["sqlite", "postgres"]
    seed = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))
    for name in backends:
        result = run_fuzz(name, examples=examples, seed=seed, log_dir=REPO / ".chaos_logs")
        print(f"{name} (seed {seed}, {result.seconds:.0f} s): {result.summary()}")
        for failure in result.failures()[:20]:
            print("  ", failure)


if __name__ == "__main__":
    main()

"""``make chaos``: the long fault-injection runs, a table on stdout and ``docs/RELIABILITY.md``.

Each case's latest result is kept in ``docs/RELIABILITY.json`` (its rows, date, command,
machine): a run replaces the rows of the cases it ran and keeps the others, so
``CHAOS_ONLY=fuzz make chaos`` does not erase the crash figures. The Markdown is rendered from
that file; its ``## Notes`` section is hand-written and kept.

Knobs (environment): ``CHAOS_CYCLES`` (default 50 dispatch cycles per crash target),
``CHAOS_OUTAGE_SECONDS`` (default 30), ``CHAOS_FUZZ_EXAMPLES`` (default 500 positive and 500
negative requests per operation and backend), ``CHAOS_SEED``,
``CHAOS_ONLY=daemon,code_server,outage,burst,fuzz,isolation,workers,broker`` (the last two: the
Celery profile on the local RabbitMQ; ``broker`` stops and starts it).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import REPO, machine

CASES = ["daemon", "code_server", "outage", "burst", "fuzz", "isolation", "workers", "broker"]
RESULTS = REPO / "docs" / "RELIABILITY.json"
DOC = REPO / "docs" / "RELIABILITY.md"
BACKENDS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def command() -> str:
    knobs = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                     if k.startswith("CHAOS_"))
    return (knobs + " " if knobs else "") + "make chaos"


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


# ---------------------------------------------------------------------------------- the cases
# Each returns (rows, ok): table rows without their date, and whether every target was met.

def outage_case(knobs: dict[str, Any], log_dir: Path) -> tuple[list[str], bool]:
    from bench.chaos_outage import run_outage

    o = run_outage(outage=knobs["outage"], log_dir=log_dir)
    return [
        f"| PostgreSQL stopped {o.outage_seconds:.0f} s (private server; Dagster storage + "
        f"store) | 1 trigger/s, 4 concurrent runs; {o.accepted} accepted, {o.rejected} rejected "
        f"while down; {o.running_at_stop} executions running when stopped; daemon restarted "
        f"{o.daemon_restarts} times | lost {o.lost}, non-terminal {o.non_terminal}, double "
        f"faults {o.double_faults}, duplicate alerts {o.duplicate_alerts} (alerts {o.alerts}); "
        f"outcomes {o.outcomes} | 0, 0, 0, 0 | {met(o.ok())} |"], o.ok()


def crash_case(target: str) -> Callable[[dict[str, Any], Path], tuple[list[str], bool]]:
    def run(knobs: dict[str, Any], log_dir: Path) -> tuple[list[str], bool]:
        from bench.chaos_crash import run_crash

        r = run_crash(target=target, cycles=knobs["cycles"], seed=knobs["seed"],
                      log_dir=log_dir)
        what = ("dagster-daemon + its code server" if target == "daemon"
                else "code server only (`dagster code-server`, gRPC)")
        return [
            f"| SIGKILL {what}, {r.kills} kills at random moments | {r.cycles} dispatch cycles: "
            f"{2 * r.cycles} one-time schedules, 3 every-minute crons, {r.triggers} queued "
            f"triggers; {r.expected} expected runs | lost {r.lost}, duplicates {r.duplicates} "
            f"({r.runs} runs; {r.skipped} skipped by catch-up) | 0 and 0 | {met(r.ok())} |"
        ], r.ok()

    return run


def fuzz_case(knobs: dict[str, Any], log_dir: Path) -> tuple[list[str], bool]:
    from bench.chaos_fuzz import run_fuzz

    rows, ok = [], True
    for backend, label in BACKENDS.items():
        r = run_fuzz(backend, examples=knobs["examples"], seed=knobs["seed"], log_dir=log_dir)
        for failure in r.failures()[:20]:
            print("  ", failure, flush=True)
        codes = ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items()))
        rows.append(
            f"| bad input: schemathesis on the OpenAPI document ({label}) | every operation "
            f"({r.operations}), each with up to {knobs['examples']} positive + {knobs['examples']} "
            f"negative generated requests against `orchestrator serve` on a fresh store, seed "
            f"{knobs['seed']}; half aimed at real objects (workflow, executions, schedules, "
            f"signed webhook deliveries){_no_input(r.nothing_to_negate)} | {r.requests} "
            f"requests in {r.seconds:.0f} s ({codes}); "
            f"5xx {len(r.server_errors)}, leaked internals {len(r.leaks)}, unstructured 4xx "
            f"{len(r.unstructured)}, 422 without the field named {len(r.unnamed)}, responses "
            f"not as documented {len(r.nonconforming)}; replayed deliveries accepted "
            f"{len(r.replays_accepted)} | no 5xx, no leaked internals, every rejection names "
            f"the field, every response as documented | {met(r.ok())} |")
        ok &= r.ok()
    return rows, ok


def _no_input(labels: list[str]) -> str:
    return f"; {', '.join(labels)} takes no input: positive only" if labels else ""


def isolation_case(knobs: dict[str, Any], log_dir: Path) -> tuple[list[str], bool]:
    from bench.chaos_isolation import run_isolation

    rows, ok = [], True
    for backend, label in BACKENDS.items():
        r = run_isolation(backend, log_dir=log_dir)
        for failure in r.failures():
            print("  ", failure, flush=True)
        b_key = ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses["B's key"].items()))
        refused = sum(n for variant, c in r.statuses.items()
                      if variant not in ("B's key", "public, no key")
                      for s, n in c.items() if s >= 400)
        operator = sum(n for variant, c in r.statuses.items()
                       if variant.startswith("operator route") for s, n in c.items() if s == 401)
        rows.append(
            f"| isolation: other environment's key, no key, wrong key, tampered/replayed "
            f"webhook, operator routes ({label}) | every route of the app ({len(r.endpoints)}), "
            f"aimed at environment A's objects: per keyed endpoint B's key, no key, 4 malformed "
            f"headers, 5 wrong keys (unknown, altered, with text after it, revoked, expired); "
            f"9 bad Standard Webhooks deliveries (tampered body or signature, stale, future, "
            f"unsigned, B's secret, to B's webhook, the legacy scheme on a Standard webhook, "
            f"replayed webhook-id: 409); `/metrics` with no token, A's key, B's key, a wrong "
            f"token; a cross-environment parent; {r.requests} requests | accepted "
            f"{len(r.accepted)}; refused {refused} (B's key: {b_key}, the 200s lists without "
            f"A's data; operator route 401: {operator}); unauthenticated not answered 401: "
            f"{len(r.not_refused)}; store writes by refused calls {len(r.store_changes)}; "
            f"failed controls {len(r.failed_controls)}; uncovered routes {len(r.uncovered)} | "
            f"0 accepted | {met(r.ok())} |")
        ok &= r.ok()
    return rows, ok


def burst_case(knobs: dict[str, Any], log_dir: Path) -> tuple[list[str], bool]:
    from bench.ingestion import keyed_burst

    rows, ok = [], True
    for backend, label in BACKENDS.items():
        r = keyed_burst(backend)
        rows.append(
            f"| burst with keys: {r.requests:,} triggers, {r.keys:,} idempotency keys ({label}) "
            f"| `POST …/trigger` from 64 client threads over keep-alive connections against one "
            f"`orchestrator serve` on a fresh store; request i carries key k(i mod {r.keys:,}) | "
            f"{r.answered_202:,}/{r.requests:,} answered 202; **{r.executions:,} executions "
            f"stored**; {r.requests / r.seconds:,.0f} requests/s, p50 {r.p50_ms:.0f} ms, p99 "
            f"{r.p99_ms:.0f} ms | exactly {r.keys:,} executions | {met(r.ok())} |")
        ok &= r.ok()
    return rows, ok


def _counts(c: Any) -> str:
    return (f"lost {c.lost}, twice {c.twice}, pipeline faults without their one alert "
            f"{c.unalerted_faults}, runs left STARTING/STARTED {c.unfinished}")


def workers_case(knobs: dict[str, Any], log_dir: Path) -> tuple[list[str], bool]:
    from harness.chaos_workers import run_worker_kills

    r = run_worker_kills(knobs["cycles"])
    c = r.counts
    return [
        f"| SIGKILL a Celery worker (`orchestrator worker`, its whole process tree) holding a "
        f"running execution, then start it again; a second worker alive | {r.cycles} cycles, "
        f"{r.kills} kills; {c.executions} executions (2 s naps and quick ones, a run each); "
        f"PostgreSQL + RabbitMQ, lease 4 s | {_counts(c)}; outcomes {c.outcomes}, alerts "
        f"{c.alerts} | 0, 0, 0, 0 | {met(r.counts.ok())} |"], r.counts.ok()


def broker_case(knobs: dict[str, Any], log_dir: Path) -> tuple[list[str], bool]:
    from harness.chaos_workers import run_broker_outage

    r = run_broker_outage(knobs["outage"])
    c = r.counts
    return [
        f"| RabbitMQ stopped {r.outage_seconds:.0f} s (`rabbitmqctl stop_app`) under a trigger "
        f"a second, two workers | {r.accepted} triggers accepted, {r.accepted_while_down} "
        f"while the broker was down | {_counts(c)}; outcomes {c.outcomes} (a pipeline fault: a "
        f"run whose launch met the outage, alerted once) | 0, 0, 0, 0 | {met(c.ok())} |"
    ], c.ok()


RUNNERS: dict[str, Callable[[dict[str, Any], Path], tuple[list[str], bool]]] = {
    "daemon": crash_case("daemon"), "code_server": crash_case("code_server"),
    "outage": outage_case, "burst": burst_case, "fuzz": fuzz_case, "isolation": isolation_case,
    "workers": workers_case, "broker": broker_case,
}


# ---------------------------------------------------------------------------------- the report

def load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def render(results: dict[str, Any]) -> tuple[str, str]:
    """The table (a stored case's rows, or a row saying it was not run) and the commands."""
    lines = ["| fault | workload | result | target | met |", "|---|---|---|---|---|"]
    commands = []
    for case in CASES:
        stored = results.get(case)
        if stored is None:
            lines.append(f"| `{case}` | | not run yet (`CHAOS_ONLY={case} make chaos`) | | |")
            continue
        lines += stored["rows"]
        took = f"; {stored['minutes']:.1f} min" if stored.get("minutes") is not None else ""
        commands.append(f"- `{case}`: {stored['command']} ({stored['date']}{took}; "
                        f"{stored['machine']})")
    return "\n".join(lines), "\n".join(commands)


def write_doc(results: dict[str, Any]) -> str:
    table, commands = render(results)
    old = DOC.read_text() if DOC.exists() else ""
    notes = old[old.index("\n## Notes"):] if "\n## Notes" in old else ""
    DOC.write_text(f"""# Reliability

Latest figures of `make chaos` (`bench/chaos.py` and the `bench/chaos_*.py` cases). Each case
keeps its latest result in `docs/RELIABILITY.json`: a run with `CHAOS_ONLY=case,...` replaces
those cases' rows and keeps the others. The date of each row is in its last cell. Logs of the
last run: `.chaos_logs/` (not committed).

{table}

Commands, dates and machines:

{commands}

Fast versions run in `make test`: `tests/acceptance/test_chaos_crash.py` (SIGKILL of the daemon
and of its code server in turn, one daemon, across a few dispatch cycles of schedules and queued
triggers),
`tests/acceptance/test_daemon_schedules.py` (SIGKILL mid-dispatch of 40 due schedules),
`tests/api/test_fuzz.py` (schemathesis, 10 positive + 10 negative requests per operation on
each backend with a fixed seed, `API_FUZZ_SEED=random` to explore, and the inputs fuzzing found
pinned as regressions) and
`tests/api/test_isolation.py` (the whole isolation matrix on each backend).

### Bad input (`fuzz`)

`harness/chaos_fuzz.py` loads `/openapi.json` from a running `orchestrator serve` (a fresh SQLite
file, then a fresh PostgreSQL database dropped afterwards), and for every operation has
schemathesis generate requests that follow the document (positive) and that break it
(negative). Each carries a real API key; half aim their path parameters at real objects (the
applied workflow, executions and schedules created during the run, the webhook) and sign webhook
deliveries with the webhook's secret, so they reach the store rather than stopping at a 404 or a
401; a fifth of the signed deliveries are replayed. Every answer is checked: no 5xx; no trace,
driver or module name, exception class name or database URL/name in the body; every 4xx is
the structured error `{{"error": {{"code", "message"}}}}`, every 422 names the field
(`error.field`, a parameter, a key that was sent or a documented property), and every body
validates against the schema the document gives for its status (schemathesis's
`response_schema_conformance`: the response models describe what the handlers answer). Run alone:
`CHAOS_ONLY=fuzz make chaos` or `.venv/bin/python -m bench.chaos_fuzz [examples] [backend...]`.

### Isolation (`isolation`)

`harness/chaos_isolation.py` takes the endpoints from the app's route table (a new route is
covered without editing the matrix; a path parameter it cannot aim counts as uncovered and fails
the case). Environment A owns a workflow B does not have, an execution, a schedule and a
webhook; each keyed endpoint is aimed at them with B's valid key, no key, malformed
`Authorization` headers and wrong keys (A's revoked and expired keys among them), the webhook
gets tampered, stale, future, foreign, legacy-signed and replayed Standard Webhooks deliveries
(signed with the reference library), and the operator route (`/metrics`) gets no token, A's key,
B's key and a wrong token (the operator token is its control). Accepted means a 2xx without
valid credentials, or a 2xx to B that shows A's ids, payload or secrets or after which the store
changed. Every table is compared before and after each of these calls. Controls with A's own
key, and a correctly signed delivery, must succeed. Run alone: `CHAOS_ONLY=isolation make chaos`
or
`.venv/bin/python -m bench.chaos_isolation [backend...]`.
""" + notes)
    return table


def main() -> None:
    logging.getLogger("dagster").setLevel(logging.WARNING)
    seed = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))
    knobs = {"cycles": int(os.environ.get("CHAOS_CYCLES", "50")),
             "outage": float(os.environ.get("CHAOS_OUTAGE_SECONDS", "30")),
             "examples": int(os.environ.get("CHAOS_FUZZ_EXAMPLES", "500")), "seed": seed}
    only = [c for c in os.environ.get("CHAOS_ONLY", "").split(",") if c] or list(RUNNERS)
    unknown = [c for c in only if c not in RUNNERS]
    if unknown:
        sys.exit(f"unknown CHAOS_ONLY case(s) {unknown}; use {', '.join(RUNNERS)}")
    log_dir = REPO / ".chaos_logs"
    results = load()
    failed = False
    for case in only:
        print(f"== {case}", flush=True)
        started = time.time()
        try:
            rows, ok = RUNNERS[case](knobs, log_dir)
        except Exception as exc:
            traceback.print_exc()
            rows = [f"| {case} | | did not complete: {type(exc).__name__}: {exc} | | **no** |"]
            ok = False
        failed |= not ok
        info = machine()
        results[case] = {
            "rows": [row.removesuffix(" |") + f" ({info['date']}) |" for row in rows],
            "ok": ok, "date": info["date"], "command": f"`{command()}`",
            "seed": seed, "minutes": round((time.time() - started) / 60, 1),
            "machine": f"{info['cores']} cores, {info['ram']} RAM, load {info['load']}, "
                       f"Python {info['python']}, Dagster {info['dagster']}, SQLite "
                       f"{info['sqlite']}, PostgreSQL {info['postgresql']}"}
        # stored now: a later case that crashes the run keeps this one
        RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        print("\n".join(rows), flush=True)
    print(write_doc(results))
    print(f"wrote docs/RELIABILITY.md and docs/RELIABILITY.json ({', '.join(only)})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

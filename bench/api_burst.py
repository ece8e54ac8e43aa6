"""Accept rate and latency of ``POST /v1/workflows/{name}/trigger`` under a burst.

Usage: .venv/bin/python bench/api_burst.py [--store sqlite|postgres] [--requests 2000]
       [--concurrency 32] [--gate] [--keys N]

``--keys N`` gives request ``i`` the idempotency key ``k<i mod N>``: a burst with repeated keys,
which must store exactly N executions.

Starts ``orchestrator serve`` (one uvicorn worker) on a fresh store (a temporary SQLite file, or
a new database on the local PostgreSQL at 127.0.0.1:5432), then fires the burst from a thread
pool over keep-alive connections and prints accepted/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from threading import local
from typing import Any

import requests
import sqlalchemy as sa

from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store.access import AccessStore
from orchestrator.store.migrate import upgrade

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DOC = {"name": "digest", "blocks": [{"id": "a", "type": "transform", "with": {"x": 1}}]}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--gate", action="store_true", help="burst gate on (threshold 200/s)")
    parser.add_argument("--keys", type=int, default=0,
                        help="spread N idempotency keys over the requests (0: none)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="api-burst-"))
    database = None
    if args.store == "sqlite":
        url = f"sqlite:///{tmp / 'o.sqlite'}"
    else:
        database = f"orch_bench_{uuid.uuid4().hex[:8]}"
        with sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    upgrade(url)
    store = Store(url)
    now = datetime.now(UTC)
    store.apply_workflow(parse_workflow(DOC, block_types()), now)
    key = AccessStore(store).create_api_key("default", now)[1]
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_DATABASE_URL=url, DAGSTER_HOME=str(tmp))
    if args.gate:
        env.update(ORCHESTRATOR_BURST_GATE="1", ORCHESTRATOR_BURST_THRESHOLD="200")
    server = subprocess.Popen([str(Path(sys.executable).parent / "orchestrator"), "serve",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        sessions = local()

        def fire(i: int) -> tuple[int, float]:
            session = getattr(sessions, "s", None)
            if session is None:
                session = sessions.s = requests.Session()
                session.headers["Authorization"] = f"Bearer {key}"
            started = time.perf_counter()
            body: dict[str, Any] = {"payload": {"i": i}}
            if args.keys:
                body["idempotency_key"] = f"k{i % args.keys}"
            r = session.post(f"{base}/v1/workflows/digest/trigger", json=body, timeout=60)
            return r.status_code, time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(fire, range(args.requests)))
        elapsed = time.perf_counter() - started
        accepted = sorted(lat for code, lat in results if code == 202)
        quantiles = statistics.quantiles(accepted, n=100)
        print(f"store={args.store} gate={'on' if args.gate else 'off'} "
              f"requests={args.requests} concurrency={args.concurrency} keys={args.keys}")
        print(f"accepted {len(accepted)}/{args.requests} in {elapsed:.2f}s = "
              f"{len(accepted) / elapsed:.0f} accepted/s")
        print(f"latency ms: p50 {quantiles[49] * 1000:.1f}  p95 {quantiles[94] * 1000:.1f}  "
              f"p99 {quantiles[98] * 1000:.1f}  max {accepted[-1] * 1000:.1f}")
        stored = len(Store(url).list_executions(limit=100_000))
        print(f"executions stored: {stored}, not stored (deduplicated by key, or buffered by "
              f"the gate): {args.requests - stored}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if database:
            from orchestrator.store.engine import dispose_all

            dispose_all()
            with sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


if __name__ == "__main__":
    main()

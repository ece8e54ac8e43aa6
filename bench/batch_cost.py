"""Per-execution cost inside a batch run: ``execute_workflow_batch`` in-process over batches of
``BENCH_BATCH_SIZES`` (50 and 200) executions of the README's 2-block workflow, beside a bare
Dagster run of the same blocks (the per-run cost every batch shares). Reports CPU milliseconds
per execution of this process (all its threads; the database server's own CPU is not included)
and writes one pyinstrument profile of a batch to ``docs/profiles/batch_cost_<backend>.txt``.

Usage: .venv/bin/python -m bench.batch_cost [sqlite|postgres]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime

import dagster as dg

from bench.exec_overhead import WORKFLOW, bare_job
from bench.report import BACKENDS, QUICK, REPO, Row, median
from harness.dagster_home import backend
from orchestrator.dagster.batch_job import batch_run_config, execute_workflow_batch
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store

SIZES = [int(s) for s in os.environ.get("BENCH_BATCH_SIZES", "50,200").split(",") if s]
ROUNDS = 2 if QUICK else 4


def _batch(store: Store, size: int) -> str:
    now = datetime.now(UTC)
    ids = []
    for i in range(size):
        c = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                        workflow="digest", environment="default", payload={"user": f"u{i}"})
        store.create_execution(c, now, enqueue=True)
        ids.append(c.execution_id)
    batch = store.batches.claim_queued("default", ids, now)
    assert batch is not None
    return batch.batch_id


def _cpu(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(name: str) -> list[Row]:
    rows: list[Row] = []
    with backend(name) as b:
        store = Store(b.store_url)
        store.apply_workflow(parse_workflow(WORKFLOW, block_types()), datetime.now(UTC))
        resource = OrchestratorStore(database_url=b.store_url)
        with dg.DagsterInstance.from_config(str(b.home)) as instance:
            bare_cpu = median([_cpu(lambda: bare_job.execute_in_process(instance=instance))[1]
                               for _ in range(ROUNDS)])
            for size in SIZES:
                samples = []
                for _ in range(ROUNDS):
                    batch_id = _batch(store, size)

                    def run(batch_id: str = batch_id) -> None:
                        result = execute_workflow_batch.execute_in_process(
                            run_config=batch_run_config(batch_id), instance=instance,
                            resources={STORE_RESOURCE: resource})
                        assert result.success

                    samples.append(_cpu(run))
                wall = median([s[0] for s in samples])
                cpu = median([s[1] for s in samples])
                per = (cpu - bare_cpu) * 1000 / size
                rows.append(Row(
                    benchmark=f"per-execution cost in a batch of {size} (CPU ms/execution)",
                    backend=name, ours=f"{per:.1f} ms", baseline=f"run {bare_cpu * 1000:.0f} ms",
                    ratio=None, target="report", met=None,
                    notes=f"batch of {size} in-process: {wall:.2f}s wall, {cpu:.2f}s CPU of "
                          f"this process (median of {ROUNDS}); minus one bare run's CPU "
                          f"({bare_cpu * 1000:.0f} ms), per execution; spawned runs pay 1-3 s "
                          "more per run (process start) that a batch shares"))
            _profile(store, instance, resource, name)
    return rows


def _profile(store: Store, instance: dg.DagsterInstance, resource: OrchestratorStore,
             name: str) -> None:
    """The members' own work, profiled on this thread (a profiler follows one thread): the
    batch is opened as the run opens it, then each member runs as a worker thread runs it."""
    try:
        from pyinstrument import Profiler
    except ImportError:  # the bench extra is not installed
        return
    from orchestrator.execution.batch import _run_member, _Specs
    from orchestrator.execution.session import utc_now

    batch_id = _batch(store, max(SIZES))
    alerter = resource.alerter()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    opening = store.batches.open(batch_id, dagster_run_id="profile", now=utc_now())
    specs = _Specs()
    for record in opening.running:
        _run_member(store, alerter, record,
                    opening.workflows.get((record.environment, record.workflow)), specs,
                    dagster_run_id="profile", clock=utc_now)
    profiler.stop()
    path = REPO / "docs" / "profiles" / f"batch_cost_{name}.txt"
    path.write_text(f"# {max(SIZES)} members of one batch, run one after another on one "
                    f"thread ({name})\n" + profiler.output_text(unicode=True, show_all=False))


def main() -> None:
    from bench.report import table

    print(table([row for n in (sys.argv[1:] or BACKENDS) for row in measure(n)]))


if __name__ == "__main__":
    main()

"""Execution overhead: one execution of a small workflow through ``execute_workflow``
(``execute_in_process``, as ``orchestrator run`` does: execution row, logging session, block
entries, terminal write, outcome tag) vs the same blocks run by a bare Dagster op on the same
instance. Target: <= 1.2x. Alternating runs, medians; with ``BENCH_PROFILE=1`` (or when the
target is missed) one pyinstrument profile of ours is written under ``docs/profiles/``.

Usage: .venv/bin/python -m bench.exec_overhead [sqlite|postgres]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from bench.report import BACKENDS, QUICK, REPO, Row, median
from harness.dagster_home import backend
from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.templating import render
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import BlockContext, block_types
from orchestrator.store import Store

ROUNDS = 10 if QUICK else 30
# The README's example: two transform blocks, one referencing the other and the payload.
WORKFLOW = {"name": "digest", "blocks": [
    {"id": "items", "type": "transform", "with": {"total": 3}},
    {"id": "summary", "type": "transform",
     "with": {"count": "{{ items.total }}", "who": "{{ trigger.payload.user }}"}}]}


@dg.op
def bare_blocks() -> dict[str, Any]:
    """The same work without the orchestrator: parse the document, render and run each block."""
    spec = parse_workflow(WORKFLOW, block_types())
    types = block_types()
    scope: dict[str, Any] = {"trigger": {"payload": {"user": "ada"}}}
    for block in spec.blocks:
        inputs = render(block.inputs, scope, block_id=block.id)
        scope[block.id] = types[block.type](inputs, BlockContext(
            execution_id="x", block_id=block.id, workflow=spec.name,
            environment=spec.environment))
    return scope[spec.blocks[-1].id]


@dg.job(executor_def=dg.in_process_executor)
def bare_job() -> None:
    bare_blocks()


def _ours(instance: dg.DagsterInstance, url: str) -> float:
    correlation = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.MANUAL,
                              workflow="digest", environment="default",
                              payload={"user": "ada"})
    t0 = time.perf_counter()
    result = execute_workflow.execute_in_process(
        run_config=run_config_for(correlation), instance=instance,
        resources={STORE_RESOURCE: OrchestratorStore(database_url=url)}, tags=correlation.tags())
    elapsed = time.perf_counter() - t0
    assert result.success
    return elapsed


def _bare(instance: dg.DagsterInstance) -> float:
    t0 = time.perf_counter()
    result = bare_job.execute_in_process(instance=instance)
    elapsed = time.perf_counter() - t0
    assert result.success
    return elapsed


def _profile(name: str, instance: dg.DagsterInstance, url: str) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(5):
        _ours(instance, url)
    profiler.stop()
    out = REPO / "docs" / "profiles" / f"exec_overhead_{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return str(out.relative_to(REPO))


def measure(name: str) -> list[Row]:
    with backend(name) as b:
        store = Store(b.store_url)
        store.apply_workflow(parse_workflow(WORKFLOW, block_types()), datetime.now(UTC))
        with dg.DagsterInstance.from_config(str(b.home)) as instance:
            for _ in range(3):  # warm both: imports, pools, instance caches
                _ours(instance, b.store_url)
                _bare(instance)
            ours, bare = [], []
            for i in range(ROUNDS):  # alternate, so drift of the machine hits both alike
                if i % 2:
                    ours.append(_ours(instance, b.store_url))
                    bare.append(_bare(instance))
                else:
                    bare.append(_bare(instance))
                    ours.append(_ours(instance, b.store_url))
            ratio = median(ours) / median(bare)
            profile = ""
            if ratio > 1.2 or os.environ.get("BENCH_PROFILE"):
                profile = _profile(name, instance, b.store_url)
    print(f"[exec_overhead/{name}] ours {median(ours) * 1000:.0f} ms, bare op "
          f"{median(bare) * 1000:.0f} ms, ratio {ratio:.2f}" +
          (f"; profile {profile}" if profile else ""), flush=True)
    return [Row(benchmark="execution overhead (in-process, 2-block workflow)", backend=name,
                ours=f"{median(ours) * 1000:.0f} ms", baseline=f"{median(bare) * 1000:.0f} ms",
                ratio=ratio, target="≤ 1.2", met=ratio <= 1.2,
                notes=f"median of {ROUNDS} alternating executions each"
                      + (f"; profile: `{profile}`" if profile else ""),
                extra={"profile": profile})]


def main() -> None:
    from bench.report import table

    names = sys.argv[1:] or BACKENDS
    print(table([row for n in names for row in measure(n)]))


if __name__ == "__main__":
    main()

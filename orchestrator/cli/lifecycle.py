"""``orchestrator environments`` (retention and concurrency limit per environment) and
``orchestrator db prune``."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from orchestrator.cli.output import emit, json_option
from orchestrator.domain.workflow import validate_name
from orchestrator.exceptions import InvalidInput
from orchestrator.lifecycle.prune import DEFAULT_BATCH
from orchestrator.settings import Settings
from orchestrator.startup import heavy_imports

if TYPE_CHECKING:
    from orchestrator.dagster.runs import DagsterRuns


def _days(retention: timedelta) -> str:
    """``7d``, ``36h`` or seconds: the retention as it would be written."""
    seconds = int(retention.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@click.group()
def environments() -> None:
    """Settings per environment (retention, concurrency limit)."""


@environments.command("list")
@json_option
def environments_list(as_json: bool) -> None:
    """Every environment with a workflow, an override or executions in flight: the retention
    that applies, its concurrency limit (max_concurrent, none: unlimited) and the executions in
    flight now."""
    from orchestrator.store import Store

    settings = Settings.from_env()
    store = Store(settings.database_url)
    overrides = store.retention.retentions()
    limits = store.concurrency.limits()
    flying = store.concurrency.in_flight()
    seen = (set(overrides) | set(limits) | set(flying)
            | {w.environment for w in store.workflows.list_workflows()})
    default = timedelta(days=settings.retention_days)
    rows = [{"environment": name, "retention": _days(overrides.get(name, default)),
             "source": "override" if name in overrides else "default",
             "max_concurrent": limits.get(name), "in_flight": flying.get(name, 0)}
            for name in sorted(seen)]
    emit(rows, as_json=as_json,
         columns=["environment", "retention", "source", "max_concurrent", "in_flight"])


@environments.command("set-retention")
@click.argument("environment")
@click.argument("retention")
@json_option
def environments_set_retention(environment: str, retention: str, as_json: bool) -> None:
    """Keep ENVIRONMENT's terminal executions for RETENTION ('7d', '36h'; 'default': back to
    ORCHESTRATOR_RETENTION_DAYS). Older ones are pruned by the retention_pruner sensor."""
    from orchestrator.lifecycle.retention import parse_retention
    from orchestrator.store import Store

    problems = validate_name(environment, "ENVIRONMENT")
    if problems:
        raise InvalidInput(*problems)
    keep = parse_retention(retention, "RETENTION")
    settings = Settings.from_env()
    Store(settings.database_url).retention.set_retention(environment, keep, datetime.now(UTC))
    effective = keep or timedelta(days=settings.retention_days)
    emit({"environment": environment, "retention": _days(effective),
          "source": "default" if keep is None else "override"}, as_json=as_json)


@environments.command("set-concurrency")
@click.argument("environment")
@click.argument("limit")
@json_option
def environments_set_concurrency(environment: str, limit: str, as_json: bool) -> None:
    """At most LIMIT executions of ENVIRONMENT in flight at once (1-10000; 'none': no limit).
    The others wait in the queue, highest priority then oldest first."""
    from orchestrator.domain.concurrency import parse_limit
    from orchestrator.exceptions import Problem
    from orchestrator.store import Store

    problems = validate_name(environment, "ENVIRONMENT")
    max_concurrent = None
    if limit != "none":
        try:
            max_concurrent = parse_limit(limit)
        except ValueError as exc:
            problems.append(Problem(field="LIMIT", message=f"{exc}, or 'none' for no limit"))
    if problems:
        raise InvalidInput(*problems)
    store = Store(Settings.from_env().database_url)
    store.concurrency.set_limit(environment, max_concurrent, datetime.now(UTC))
    emit({"environment": environment, "max_concurrent": max_concurrent,
          "in_flight": store.concurrency.in_flight().get(environment, 0)}, as_json=as_json)


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH,
              show_default=True, help="Executions (and rows of each other kind) per "
              "transaction.")
@json_option
def db_prune(dry_run: bool, batch_size: int, as_json: bool) -> None:
    """Remove terminal executions past their environment's retention (with their block entries,
    alerts and Dagster runs) and expired housekeeping rows, in small batches, as the
    retention_pruner sensor does; print the counts."""
    from orchestrator.lifecycle.prune import prune
    from orchestrator.store import Store

    settings = Settings.from_env()
    runs = None
    if settings.prune_dagster_runs and not dry_run:
        runs = _dagster_runs()
    try:
        report = prune(Store(settings.database_url), now=datetime.now(UTC),
                       default_retention=timedelta(days=settings.retention_days), runs=runs,
                       batch_size=batch_size, dry_run=dry_run)
    finally:
        if runs is not None:
            runs.instance.dispose()
    data = report.as_dict()
    if as_json:
        emit(data, as_json=True)
        return
    verb = "would remove" if dry_run else "removed"
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.removed.items())) or "nothing"
    click.echo(f"{verb} {counts}")
    if not dry_run:
        click.echo(f"deleted {report.dagster_runs} Dagster run(s)" if runs is not None else
                   "Dagster runs kept (ORCHESTRATOR_PRUNE_DAGSTER_RUNS=false or no "
                   "DAGSTER_HOME)")


def _dagster_runs() -> DagsterRuns | None:
    """The Dagster instance's runs (``DAGSTER_HOME``), or None without a home."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    with heavy_imports():
        import dagster as dg

        from orchestrator.dagster.runs import DagsterRuns

    return DagsterRuns(dg.DagsterInstance.get())

"""``orchestrator``: workflows, schedules, triggers and executions from the shell.

Exit codes: 0 ok; 1 the workflow failed with a user error; 2 bad input (message on stderr);
3 pipeline fault (the store or the machinery failed).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

# Only what every command needs is imported here: each command imports the rest (the store and
# SQLAlchemy, alembic, croniter, YAML, the block types and httpx, Dagster for `run`, uvicorn for
# `serve`) when it runs, so `--help` and input errors answer at once and a command pays only for
# what it uses.
from orchestrator.cli import access, lifecycle, processes, schedules
from orchestrator.cli.common import env_option
from orchestrator.cli.common import open_store as _store
from orchestrator.cli.common import parse_payload as _payload
from orchestrator.cli.common import utc_now as _now
from orchestrator.cli.output import emit, json_option
from orchestrator.domain.concurrency import key_problem
from orchestrator.domain.correlation import Correlation, Source, iso_utc, new_id, parse_iso
from orchestrator.domain.failures import classify
from orchestrator.domain.ingest import (
    DEFAULT_IDEMPOTENCY_TTL,
    parse_duration,
    parse_expiry,
    parse_idempotency_ttl,
    parse_start,
)
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.exceptions import (
    DagsterStorageError,
    InvalidInput,
    OrchestratorError,
    Problem,
)
from orchestrator.services.executions import DEFAULT_LIMIT, MAX_LIMIT, STATUSES, ExecutionService
from orchestrator.settings import Settings
from orchestrator.startup import heavy_imports

if TYPE_CHECKING:
    pass

EXIT_OK, EXIT_USER_ERROR, EXIT_BAD_INPUT, EXIT_FAULT = 0, 1, 2, 3
F = TypeVar("F", bound=Callable[..., Any])

@click.group()
@click.option("--verbose", "-v", is_flag=True, help="Log what happens.")
def cli(verbose: bool) -> None:
    """Run user-defined workflows on Dagster: schedules, triggers, executions."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# ------------------------------------------------------------------------------------------ db

@cli.group()
def db() -> None:
    """The orchestrator store."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations (safe to repeat; existing data is kept). With DAGSTER_HOME set,
    also create Dagster's storage (its dagster.yaml), once, before the daemon and the webserver
    start: processes that create it together on a fresh SQLite home can break it for good."""
    from orchestrator.store.migrate import upgrade

    revision = upgrade(Settings.from_env().database_url)
    click.echo(f"orchestrator store at revision {revision}")
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        click.echo("DAGSTER_HOME is not set: Dagster's storage not created (set it and run this "
                   "again before starting dagster-daemon)")
        return
    with heavy_imports():  # Dagster: slow
        from orchestrator.dagster.storage import create_dagster_storage

    try:
        storage = create_dagster_storage(home)
    except Exception as exc:
        logging.getLogger(__name__).info("creating Dagster's storage failed", exc_info=True)
        raise DagsterStorageError(type(exc).__name__) from None
    click.echo(f"Dagster storage ready ({storage}: run, event log and schedule storage) in "
               f"DAGSTER_HOME={home}")


# ----------------------------------------------------------------------------------- workflows

@cli.group()
def workflows() -> None:
    """Workflow documents (YAML or JSON)."""


def _load_document(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(Problem(field="file", message=f"cannot read it: {exc.strerror}"),
                           subject="path") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(Problem(field="file", message=f"is not valid "
                                   f"{'JSON' if path.suffix == '.json' else 'YAML'}: "
                                   f"{str(exc).splitlines()[0]}"), subject="workflow") from None


@workflows.command("apply")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
def workflows_apply(paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate and store workflow documents; every document is checked before any is written."""
    from orchestrator.domain.workflow import parse_workflow
    from orchestrator.execution.blocks import block_types, import_block_modules

    import_block_modules(Settings.from_env().block_modules)
    files: list[Path] = []
    for path in paths:
        files += sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml", ".json"}) \
            if path.is_dir() else [path]
    specs, problems = [], []
    for path in files:
        try:
            specs.append(parse_workflow(_load_document(path), block_types()))
        except InvalidInput as exc:
            problems += [Problem(field=f"{path}: {p.field}", message=p.message)
                         for p in exc.problems]
    if problems:
        raise InvalidInput(problems, subject="workflow document(s); nothing was applied")
    store, now, results = _store(), _now(), []
    for spec in specs:
        record, changed = store.apply_workflow(spec, now)
        results.append({"name": record.name, "environment": record.environment,
                        "version": record.version, "changed": changed})
    emit(results, as_json=as_json, columns=["environment", "name", "version", "changed"])


@workflows.command("list")
@click.option("--environment", "-e", default=None, help="Only this environment.")
@json_option
def workflows_list(environment: str | None, as_json: bool) -> None:
    """List current workflows."""
    rows = [{"environment": w.environment, "name": w.name, "version": w.version,
             "blocks": len(w.document.get("blocks", [])), "updated_at": iso_utc(w.updated_at)}
            for w in _store().list_workflows(environment)]
    emit(rows, as_json=as_json, columns=["environment", "name", "version", "blocks", "updated_at"])


@workflows.command("show")
@click.argument("name")
@env_option
@click.option("--version", type=int, default=None, help="A past version.")
@json_option
def workflows_show(name: str, environment: str, version: int | None, as_json: bool) -> None:
    """Show a workflow's document and version."""
    emit(_store().get_workflow(environment, name, version).to_dict(), as_json=as_json)


@workflows.command("delete")
@click.argument("name")
@env_option
def workflows_delete(name: str, environment: str) -> None:
    """Delete a workflow: history is kept, its schedules are paused."""
    paused = _store().delete_workflow(environment, name, _now())
    click.echo(f"deleted workflow {environment}/{name}; paused {paused} schedule(s)")


# ------------------------------------------------------------------------ triggers and runs

@cli.command("trigger")
@click.argument("workflow")
@click.option("--payload", default=None, help="JSON object passed as trigger.payload.")
@click.option("--idempotency-key", default=None,
              help="The same key (per environment and workflow, within its TTL) answers the "
                   "same execution, with deduplicated true.")
@click.option("--idempotency-ttl", default=None,
              help="How long the key holds, e.g. 30s, 15m, 1h, 2d (default 24h, at most 30d).")
@click.option("--delay", default=None, help="Start no earlier than this from now (10m, 2h).")
@click.option("--run-at", default=None, help="Start no earlier than this ISO-8601 instant.")
@click.option("--ttl", default=None,
              help="Not started this long after it may start, it ends expired (e.g. 1h).")
@click.option("--priority", type=click.IntRange(-10, 10), default=0, show_default=True,
              help="Higher starts first within the environment.")
@click.option("--concurrency-key", default=None,
              help="Executions of the workflow sharing this key run at most its "
                   "concurrency.key_limit (default 1) at once.")
@env_option
@json_option
def trigger(workflow: str, payload: str | None, idempotency_key: str | None,
            idempotency_ttl: str | None, delay: str | None, run_at: str | None,
            ttl: str | None, priority: int, concurrency_key: str | None, environment: str,
            as_json: bool) -> None:
    """Queue an execution; queued_trigger_sensor launches its run. Claims the idempotency key
    like the HTTP API does."""
    problems: list[Problem] = []
    body: dict[str, Any] = {}
    try:
        body = _payload(payload)
    except InvalidInput as exc:
        problems += exc.problems
    for option, key in (("--idempotency-key", idempotency_key),
                        ("--concurrency-key", concurrency_key)):
        problem = None if key is None else key_problem(key, option)
        if problem is not None:
            problems.append(problem)
    key_ttl = DEFAULT_IDEMPOTENCY_TTL
    if idempotency_ttl is not None:
        try:
            key_ttl = parse_idempotency_ttl(idempotency_ttl)
        except ValueError as exc:
            problems.append(Problem(field="--idempotency-ttl", message=str(exc)))
        if idempotency_key is None:
            problems.append(Problem(field="--idempotency-ttl", message="needs "
                                    "--idempotency-key"))
    now = _now()
    try:
        parse_expiry(ttl, parse_start(delay, run_at, now) or now)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        problems.append(Problem(field="--" + field.replace("_", "-"), message=message))
    if problems:
        raise InvalidInput(problems, subject="trigger")
    from orchestrator.services.triggers import IngestService, TriggerInput  # the store, SQLAlchemy

    [admission] = IngestService(_store().admission).trigger(
        environment=environment, workflow=workflow, request_id=None, source=Source.MANUAL,
        now=now, items=[TriggerInput(
            payload=body, idempotency_key=idempotency_key, idempotency_ttl=key_ttl,
            delay=None if delay is None else parse_duration(delay),
            run_at=None if run_at is None else parse_iso(run_at),
            ttl=None if ttl is None else parse_duration(ttl), priority=priority,
            concurrency_key=concurrency_key)])
    emit(admission.body(), as_json=as_json)


@cli.command("run")
@click.argument("workflow")
@click.option("--payload", default=None, help="JSON object passed as trigger.payload.")
@env_option
@json_option
def run(workflow: str, payload: str | None, environment: str, as_json: bool) -> None:
    """Execute now, in-process, through the same job. Exit 0 success, 1 user error, 3 fault."""
    body = _payload(payload)
    settings = Settings.from_env()
    _store().get_workflow(environment, workflow)
    with heavy_imports():  # after the input is known good
        from orchestrator.dagster.runner import run_in_process

    correlation = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.MANUAL,
                              workflow=workflow, environment=environment, payload=body)
    record = run_in_process(correlation, settings)
    emit(record.to_dict(), as_json=as_json)
    if record.outcome is Outcome.USER_ERROR:
        sys.exit(EXIT_USER_ERROR)
    if record.outcome is not Outcome.SUCCESS:
        sys.exit(EXIT_FAULT)


# ---------------------------------------------------------------------------------- executions

@cli.group()
def executions() -> None:
    """The execution log."""


EXECUTION_COLUMNS = ["execution_id", "workflow", "source", "status", "outcome", "priority",
                     "not_before", "expires_at", "scheduled_for", "created_at",
                     "replayed_from", "dagster_run_id"]


def _executions() -> ExecutionService:
    store = _store()
    return ExecutionService(store.executions, store.admission, store.cancellation)


@executions.command("list")
@click.option("--workflow", "-w", default=None)
@click.option("--status", "-s", default=None, type=click.Choice(STATUSES))
@click.option("--environment", "-e", default=None)
@click.option("--limit", "-n", default=DEFAULT_LIMIT, show_default=True,
              type=click.IntRange(1, MAX_LIMIT))
@json_option
def executions_list(workflow: str | None, status: str | None, environment: str | None,
                    limit: int, as_json: bool) -> None:
    """Most recent executions first."""
    rows = [e.to_dict() for e in _executions().log(
        workflow=workflow, status=ExecutionStatus(status) if status else None,
        environment=environment, limit=limit)]
    for row in rows:
        row.pop("blocks", None)
    emit(rows, as_json=as_json, columns=EXECUTION_COLUMNS)


@executions.command("cancel")
@click.argument("execution_id")
@json_option
def executions_cancel(execution_id: str, as_json: bool) -> None:
    """Cancel an execution, without an alert: one that has not started ends cancelled now (no
    run); a running one has its run stopped by execution_reconciler (in a batch run, it alone)
    and then ends cancelled. One that has ended: exit 2."""
    from orchestrator.domain.records import CancelOutcome

    record, outcome = _executions().cancel(execution_id, _now())
    if as_json:
        emit({**record.to_dict(), "cancel": outcome.value}, as_json=True)
        return
    click.echo(f"execution {execution_id} cancelled" if outcome is CancelOutcome.CANCELLED
               else f"execution {execution_id} is running: its run is being stopped "
                    "(executions show it to see it end cancelled)")


@executions.command("replay")
@click.argument("execution_id")
@click.option("--payload", default=None, help="JSON object (default: the original's payload).")
@click.option("--same-version", is_flag=True,
              help="Run the workflow version the original ran (default: the latest).")
@json_option
def executions_replay(execution_id: str, payload: str | None, same_version: bool,
                      as_json: bool) -> None:
    """Queue a new execution of the original's workflow in its environment (source replay, new
    correlation ids, replayed_from the original), with its payload unless --payload is given.
    The original may be finished or not."""
    body = None if payload is None else _payload(payload)
    from orchestrator.services.triggers import IngestService  # the store, SQLAlchemy

    store = _store()
    replay = ExecutionService(store.executions, store.admission, store.cancellation).replay(
        execution_id, payload=body, same_version=same_version)
    [admission] = IngestService(store.admission).trigger(
        environment=replay.environment, workflow=replay.workflow, items=[replay.item],
        request_id=None, source=Source.REPLAY, now=_now())
    emit({**admission.body(), "replayed_from": execution_id}, as_json=as_json)


@executions.command("show")
@click.argument("execution_id")
@json_option
def executions_show(execution_id: str, as_json: bool) -> None:
    """Status, outcome, correlation, timings, the Dagster run (id and UI URL; a batched
    execution shows its batch run and ``run_batch_id``), each block's entry and the idempotency
    key's expiry."""
    from orchestrator.api.views import execution_view

    view = execution_view(_executions().find(execution_id))
    run_id = view["dagster_run_id"]
    view["dagster_run_url"] = (f"{Settings.from_env().dagster_ui_url}/runs/{run_id}"
                               if run_id else None)
    emit(view, as_json=as_json)


# -------------------------------------------------------------------------------------- alerts

@cli.group()
def alerts() -> None:
    """Alerts: pipeline faults (never user errors) and triggers stuck in the burst buffer."""


ALERT_COLUMNS = ["id", "created_at", "kind", "environment", "workflow", "execution_id",
                 "delivery_status", "message"]


@alerts.command("list")
@click.option("--environment", "-e", default=None)
@click.option("--execution", "execution_id", default=None, help="Only this execution's alerts.")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
def alerts_list(environment: str | None, execution_id: str | None, limit: int,
                as_json: bool) -> None:
    """Most recent alerts first, with their webhook delivery status."""
    rows = [a.to_dict() for a in _store().list_alerts(
        environment=environment, execution_id=execution_id, limit=limit)]
    emit(rows, as_json=as_json, columns=ALERT_COLUMNS)


# ------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="orchestrator", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except OrchestratorError as exc:  # bad input (the user's) or a fault of the machinery
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT if classify(exc) is Outcome.USER_ERROR else EXIT_FAULT)
    except SystemExit:
        raise
    except Exception as exc:  # never a stack trace or a connection string on the terminal
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        click.echo(f"error: internal error ({type(exc).__name__}); rerun with -v for details",
                   err=True)
        sys.exit(EXIT_FAULT)



# The HTTP API's access: `keys`, `webhooks` (orchestrator/cli/access.py).
cli.add_command(access.keys)
cli.add_command(access.webhooks)
# The long-running processes (`serve`, `daemon`, `worker`): orchestrator/cli/processes.py.
cli.add_command(processes.serve)
cli.add_command(processes.daemon)
cli.add_command(processes.worker)
# Schedules: `schedules ...` (orchestrator/cli/schedules.py).
cli.add_command(schedules.schedules)
# Retention: `environments`, `db prune` (orchestrator/cli/lifecycle.py).
cli.add_command(lifecycle.environments)
db.add_command(lifecycle.db_prune)


if __name__ == "__main__":
    main()

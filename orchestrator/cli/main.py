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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

# Only what every command needs is imported here: each command imports the rest (the store and
# SQLAlchemy, alembic, croniter, YAML, the block types and httpx, Dagster for `run`, uvicorn for
# `serve`) when it runs, so `--help` and input errors answer at once and a command pays only for
# what it uses.
from orchestrator.cli import access, lifecycle, processes
from orchestrator.cli.output import emit, json_option
from orchestrator.domain.correlation import Correlation, Source, iso_utc, new_id, parse_iso
from orchestrator.domain.failures import classify
from orchestrator.domain.ingest import (
    DEFAULT_IDEMPOTENCY_TTL,
    parse_duration,
    parse_expiry,
    parse_idempotency_ttl,
    parse_start,
)
from orchestrator.domain.payloads import load_json, unstorable
from orchestrator.domain.records import ExecutionStatus, Outcome
from orchestrator.domain.workflow import DEFAULT_ENVIRONMENT
from orchestrator.exceptions import (
    DagsterStorageError,
    InvalidInput,
    OrchestratorError,
    Problem,
)
from orchestrator.services.executions import DEFAULT_LIMIT, MAX_LIMIT, STATUSES, ExecutionService
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.services.schedules import ScheduleService
    from orchestrator.store import Store

EXIT_OK, EXIT_USER_ERROR, EXIT_BAD_INPUT, EXIT_FAULT = 0, 1, 2, 3
F = TypeVar("F", bound=Callable[..., Any])

env_option = click.option("--environment", "-e", default=DEFAULT_ENVIRONMENT, show_default=True,
                          help="Tenant scope.")


def _now() -> datetime:
    return datetime.now(UTC)


def _store() -> Store:
    from orchestrator.store import Store

    return Store(Settings.from_env().database_url)


def _payload(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = load_json(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(Problem(field="--payload", message=f"is not valid JSON ({exc.msg} at "
                                   f"position {exc.pos})")) from None
    except RecursionError:
        raise InvalidInput(Problem(field="--payload", message="nests arrays or objects too "
                                   "deeply")) from None
    if not isinstance(value, dict):
        raise InvalidInput(Problem(field="--payload", message="must be a JSON object, e.g. "
                                   "'{\"user\": \"ada\"}'"))
    problem = unstorable(value, "--payload")
    if problem is not None:
        raise InvalidInput(problem)
    return value


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
    from orchestrator.dagster.storage import create_dagster_storage  # imports Dagster: slow

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


# ----------------------------------------------------------------------------------- schedules

@cli.group()
def schedules() -> None:
    """Cron (with an IANA timezone) and one-time schedules."""


def _schedules() -> ScheduleService:
    from orchestrator.services.schedules import ScheduleService

    store = _store()
    return ScheduleService(store.workflows, store.schedules, store.executions)


SCHEDULE_COLUMNS = ["id", "environment", "workflow", "cron", "timezone", "run_at", "enabled",
                    "next_run_at", "key"]


@schedules.command("create")
@click.option("--workflow", "-w", required=True, help="Workflow name.")
@click.option("--cron", default=None, help="5-field cron expression, e.g. '*/5 * * * *'.")
@click.option("--timezone", "--tz", "timezone", default="UTC", show_default=True,
              help="IANA timezone the cron expression is read in.")
@click.option("--at", "run_at", default=None, help="One time, ISO-8601 with offset.")
@click.option("--payload", default=None, help="JSON object passed as trigger.payload.")
@click.option("--key", default=None, help="Your key: creating again with it updates instead.")
@env_option
@json_option
def schedules_create(workflow: str, cron: str | None, timezone: str, run_at: str | None,
                     payload: str | None, key: str | None, environment: str,
                     as_json: bool) -> None:
    """Create a schedule (or update the one with --key)."""
    from orchestrator.domain.schedules import validate_schedule

    now = _now()
    problems: list[Problem] = []
    body: dict[str, Any] = {}
    try:
        body = _payload(payload)
    except InvalidInput as exc:
        problems += exc.problems
    try:
        spec = validate_schedule(workflow=workflow, environment=environment, cron=cron,
                                 timezone=timezone, run_at=run_at, payload=body, key=key,
                                 now=now)
    except InvalidInput as exc:
        problems += exc.problems
    if problems:
        raise InvalidInput(problems, subject="schedule")
    emit(_schedules().create(spec, now).to_dict(), as_json=as_json)


@schedules.command("list")
@click.option("--environment", "-e", default=None, help="Only this environment.")
@click.option("--workflow", "-w", default=None, help="Only this workflow.")
@json_option
def schedules_list(environment: str | None, workflow: str | None, as_json: bool) -> None:
    """List schedules."""
    rows = [s.to_dict() for s in _schedules().records(environment, workflow)]
    emit(rows, as_json=as_json, columns=SCHEDULE_COLUMNS)


@schedules.command("show")
@click.argument("schedule_id")
@json_option
def schedules_show(schedule_id: str, as_json: bool) -> None:
    """Show a schedule with its next five fire times (``upcoming``)."""
    emit(_schedules().show(schedule_id, _now()).to_dict(), as_json=as_json)


@schedules.command("pause")
@click.argument("schedule_id")
@json_option
def schedules_pause(schedule_id: str, as_json: bool) -> None:
    """Stop a schedule from firing."""
    emit(_schedules().pause(schedule_id, _now()).to_dict(), as_json=as_json)


@schedules.command("resume")
@click.argument("schedule_id")
@json_option
def schedules_resume(schedule_id: str, as_json: bool) -> None:
    """Resume a paused schedule from now on (missed occurrences are not replayed)."""
    emit(_schedules().resume(schedule_id, _now()).to_dict(), as_json=as_json)


@schedules.command("delete")
@click.argument("schedule_id")
def schedules_delete(schedule_id: str) -> None:
    """Delete a schedule (its executions stay in the log)."""
    _schedules().delete(schedule_id)
    click.echo(f"deleted schedule {schedule_id}")


@schedules.command("trigger")
@click.argument("schedule_id")
@json_option
def schedules_trigger(schedule_id: str, as_json: bool) -> None:
    """Queue one execution of the schedule's workflow now, with its payload."""
    record = _schedules().trigger(schedule_id, _now())
    emit({"execution_id": record.execution_id, "request_id": record.request_id,
          "status": record.status.value}, as_json=as_json)


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
@env_option
@json_option
def trigger(workflow: str, payload: str | None, idempotency_key: str | None,
            idempotency_ttl: str | None, delay: str | None, run_at: str | None,
            ttl: str | None, priority: int, environment: str, as_json: bool) -> None:
    """Queue an execution; queued_trigger_sensor launches its run. Claims the idempotency key
    like the HTTP API does."""
    from orchestrator.domain.schedules import KEY_PATTERN

    problems: list[Problem] = []
    body: dict[str, Any] = {}
    try:
        body = _payload(payload)
    except InvalidInput as exc:
        problems += exc.problems
    if idempotency_key is not None and not KEY_PATTERN.match(idempotency_key):
        problems.append(Problem(field="--idempotency-key", message="must be 1-200 characters: "
                                "letters, digits and _ . : / - (starting with a letter or "
                                "digit)"))
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
            ttl=None if ttl is None else parse_duration(ttl), priority=priority)])
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
    from orchestrator.dagster.runner import run_in_process  # after the input is known good

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


EXECUTION_COLUMNS = ["execution_id", "workflow", "source", "status", "outcome", "scheduled_for",
                     "created_at", "dagster_run_id"]


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
# Retention: `environments`, `db prune` (orchestrator/cli/lifecycle.py).
cli.add_command(lifecycle.environments)
db.add_command(lifecycle.db_prune)


if __name__ == "__main__":
    main()

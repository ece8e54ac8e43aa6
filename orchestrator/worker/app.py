"""The Celery app of ``orchestrator worker``: dagster-celery's run tasks, kept warm.

The app is built from the ``CeleryRunLauncher`` section of ``DAGSTER_HOME/dagster.yaml``
(broker, backend, queue, Celery settings), so a worker and the daemon that sends it runs always
agree. Its two tasks carry the names the launcher sends (``execute_job``, ``resume_job``) and
run the Dagster run in the worker's pool process, as dagster-celery's own tasks do, with the
differences that a long-lived worker needs:

- one Dagster instance per pool process, opened at its first run and kept, with its PostgreSQL
  connections kept open (dagster-celery opens and closes an instance per run, and
  dagster-postgres a connection per event: most of a small run's time in the worker);
- terminating a run (Dagster UI, ``dagster run terminate``) revokes its task with SIGTERM; the
  run process turns it into the interrupt Dagster's own run workers get, so the run ends
  ``CANCELED`` through Dagster's cancellation path and the pool process lives on for the next
  run;
- the pool processes are warm before the first run arrives: what every run needs is imported
  once in the worker's main process, before it forks them (the execution core, the blocks, the
  store), and each pool process opens its Dagster instance, a store connection and the ``http``
  block's client as it starts. Without it the first run of each pool process paid ~1 s of
  imports and connections before its first block (a lone trigger on a fresh worker, and the
  first batch of every burst after a deploy);
- a task is acknowledged when its run ends, not when it starts (``acks_late``; workers run
  with prefetch 1), so a worker holds no run beyond those it executes: a run sent while one
  worker is busy goes to an idle one instead of waiting behind the busy one's run. A worker
  that dies has its unacknowledged tasks delivered again to another; a run that already started
  is not executed a second time (its execution's heartbeat lease settles it), one that had not
  is executed there.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import dagster as dg
from celery import Celery
from celery.signals import worker_process_init

from orchestrator.dagster.compat import (
    ExecuteRunArgs,
    ResumeRunArgs,
    execute_run_command_body,
    resume_run_command_body,
    unpack_value,
)
from orchestrator.dagster.storage import POOL_MAX_OVERFLOW, POOL_RECYCLE
from orchestrator.exceptions import InvalidInput, Problem

log = logging.getLogger(__name__)
LAUNCHER_CLASS = "dagster_celery.launcher.CeleryRunLauncher"
TASK_EXECUTE_JOB = "execute_job"  # the names CeleryRunLauncher sends (dagster_celery.config)
TASK_RESUME_JOB = "resume_job"
# What a run task may execute (Dagster refuses the others): anything else was started already.
NOT_YET_EXECUTED = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING)

_instance: dg.DagsterInstance | None = None
_instance_lock = threading.Lock()


def build_app(instance: dg.DagsterInstance) -> Celery:
    """The worker app for ``instance``'s run launcher, with the run tasks registered.
    Raises :class:`InvalidInput` when ``dagster.yaml`` does not use the Celery run launcher."""
    from dagster_celery.launcher import CeleryRunLauncher
    from dagster_celery.make_app import make_app

    launcher = instance.run_launcher
    if not isinstance(launcher, CeleryRunLauncher):
        kind = f"{type(launcher).__module__}.{type(launcher).__name__}"
        raise InvalidInput(Problem(
            field="run_launcher", message=f"DAGSTER_HOME/dagster.yaml uses {kind}; a worker "
            f"needs {LAUNCHER_CLASS} (see examples/dagster.yaml)"), subject="dagster.yaml")
    app = make_app(launcher.app_args())
    register_tasks(app)
    _import_what_runs_need()
    worker_process_init.connect(_warm_pool_process, weak=False)
    return app


def _import_what_runs_need() -> None:
    """Import, in the worker's main process (its pool processes fork from it and share these
    pages), what the first run would otherwise import: the orchestrator's jobs with their
    execution core and store, the ``http`` block's client, and the block modules of
    ``ORCHESTRATOR_BLOCK_MODULES``. The code location's own module is still imported by the run
    (its code pointer), cheaply once these are loaded."""
    import httpx  # noqa: F401

    import orchestrator.dagster.definitions
    import orchestrator.store.sql  # noqa: F401
    from orchestrator.execution.blocks import import_block_modules
    from orchestrator.settings import Settings

    import_block_modules(Settings.from_env().block_modules)


def _warm_pool_process(**_: Any) -> None:
    """Celery's ``worker_process_init``, in each pool process as it starts: open what runs use
    and a forked process may not share (connections). A failure here only costs the first run
    its warm start: that run opens them itself, and reports what is wrong."""
    from orchestrator.execution.http_block import shared_client
    from orchestrator.settings import Settings
    from orchestrator.store.engine import engine_for

    try:
        _process_instance().get_runs(limit=1)  # one indexed row: not a count of all runs
        with engine_for(Settings.from_env().database_url).connect():
            pass
        shared_client()
    except Exception:
        log.warning("could not warm this pool process; its first run opens what it needs",
                    exc_info=True)


def register_tasks(app: Celery) -> None:
    # No results: nothing reads them (a run's outcome is in Dagster's run storage and in the
    # store), and a result nobody consumes stays in the broker.
    app.task(name=TASK_EXECUTE_JOB, ignore_result=True, acks_late=True)(execute_job)
    app.task(name=TASK_RESUME_JOB, ignore_result=True, acks_late=True)(resume_job)


def execute_job(execute_job_args_packed: Any) -> int:
    args = unpack_value(execute_job_args_packed, as_type=ExecuteRunArgs)
    run = _process_instance().get_run_by_id(args.run_id)
    if run is not None and run.status not in NOT_YET_EXECUTED:
        # Delivered again after the worker that took it died: that worker started the run, so
        # it is not executed twice (the reconciler fails it once its lease expires).
        log.warning("run %s is %s: not executed again", args.run_id, run.status.value)
        return 0
    return _run(execute_run_command_body, args)


def resume_job(execute_job_args_packed: Any) -> int:
    # CeleryRunLauncher.resume_run sends its ResumeRunArgs under this argument name too.
    args = unpack_value(execute_job_args_packed, as_type=ResumeRunArgs)
    return _run(resume_run_command_body, args)


def _run(body: Callable[..., int], args: Any) -> int:
    with terminate_interrupts():
        return body(instance=_process_instance(), run_id=args.run_id,
                    write_stream_fn=lambda _event: None,
                    set_exit_code_on_failure=args.set_exit_code_on_failure is not False)


def _process_instance() -> dg.DagsterInstance:
    """This pool process's Dagster instance (``DAGSTER_HOME``), opened once."""
    global _instance
    with _instance_lock:
        if _instance is None:
            instance = dg.DagsterInstance.get()
            # dagster-postgres opens a connection for every read and write unless told to keep
            # them (as dagster-webserver does, and PooledPostgresStorage): a run writes a dozen
            # events, so a warm worker keeps its connections. (No statement timeout: 0.)
            instance.optimize_for_webserver(statement_timeout=0, pool_recycle=POOL_RECYCLE,
                                            max_overflow=POOL_MAX_OVERFLOW)
            _instance = instance
        return _instance


@contextmanager
def terminate_interrupts() -> Iterator[None]:
    """While a run executes, SIGTERM acts as SIGINT does at that moment: Dagster's run workers
    map it so (``dagster api execute_run``), and its ``capture_interrupts`` sections defer it to
    a safe point. A Celery pool process ignores SIGINT, so the default handler is set too."""
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_term(signum: int, frame: FrameType | None) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)

    previous_term = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def main_app() -> Celery:
    """The app of ``celery -A orchestrator.worker.celery worker``: read from ``DAGSTER_HOME``."""
    with dg.DagsterInstance.get() as instance:
        return build_app(instance)

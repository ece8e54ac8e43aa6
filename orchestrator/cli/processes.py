"""``orchestrator serve``, ``daemon`` and ``worker``: the long-running processes. Each imports
what it runs (uvicorn, Dagster's daemon, Celery) only when started."""

from __future__ import annotations

import click

from orchestrator.settings import Settings
from orchestrator.startup import heavy_imports


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (each with its own writer; all count one burst-gate "
                   "window, in the store).")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (OpenAPI document at /openapi.json)."""
    import uvicorn

    from orchestrator.api.settings import ApiSettings

    ApiSettings.from_env()  # bad settings fail here, once, with their field named
    uvicorn.run("orchestrator.api.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="info", access_log=False)


@click.command("daemon", context_settings={"ignore_unknown_options": True})
@click.option("--sensor-loop", type=click.FloatRange(0.1, 5.0), default=0.5, show_default=True,
              help="Seconds between two iterations of the sensor daemon (Dagster's own: 5).")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def daemon(sensor_loop: float, args: tuple[str, ...]) -> None:
    """Run the Dagster daemon (`dagster-daemon run ARGS`, e.g. `-w workspace.yaml`) with a
    faster sensor loop, so a queued trigger starts within a second.

    The dispatch sensors wait for work inside their evaluation; the loop only decides how soon
    the next evaluation starts after one returns. `dagster-daemon run` works too, with up to
    5 s more latency per trigger.
    """
    with heavy_imports():
        from orchestrator.dagster.compat import daemon_run_command, set_sensor_loop_seconds

    set_sensor_loop_seconds(sensor_loop)
    daemon_run_command.main(args=list(args), prog_name="orchestrator daemon")


@click.command("worker")
@click.option("--concurrency", "-c", type=click.IntRange(1, 512), default=None,
              help="Runs executed at once (pool processes)  [default: the number of CPUs]")
@click.option("--queue", "-Q", "queues", default=None,
              help="Celery queues to take runs from, comma-separated  [default: the launcher's "
                   "default_queue, `dagster`]")
@click.option("--name", "-n", default=None,
              help="Worker name, unique per machine  [default: orchestrator@<hostname>]")
@click.option("--loglevel", "-l", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def worker(concurrency: int | None, queues: str | None, name: str | None, loglevel: str) -> None:
    """Execute Dagster runs in this machine's warm Celery worker.

    Needs the same environment as the daemon: DAGSTER_HOME whose dagster.yaml has the Celery run
    launcher and Dagster's shared (PostgreSQL) storage, and the store URL
    (ORCHESTRATOR_DATABASE_URL). Stop with Ctrl-C / SIGTERM (running runs finish first).
    """
    with heavy_imports():
        import dagster as dg

        from orchestrator.worker.app import build_app

    Settings.from_env()  # bad settings fail here, with their field named
    with dg.DagsterInstance.get() as instance:
        app = build_app(instance)
    argv = ["worker", f"--loglevel={loglevel.upper()}", "--prefetch-multiplier=1",
            "--without-gossip", "--without-mingle",
            f"--queues={queues or app.conf.task_default_queue}",
            f"--hostname={name or 'orchestrator@%h'}"]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv)

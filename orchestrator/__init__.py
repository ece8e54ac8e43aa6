"""orchestrator: user-defined workflows on Dagster, triggered by schedules, API calls and webhooks.

Layout (one folder per part):

- ``domain/``     plain-Python rules: cron and DST, schedule plans, workflow documents,
                  correlation ids. No Dagster, SQLAlchemy or HTTP imports.
- ``store/``      the SQL store (SQLAlchemy Core on SQLite or PostgreSQL) and its migrations.
- ``execution/``  the execution core (runs a workflow's blocks) and the logging session.
- ``dagster/``    thin Dagster adapters: resources, the ``execute_workflow`` job, sensors.
- ``cli/``        the ``orchestrator`` command line.
- ``services/``   what the CLI and the API share: trigger admission, schedules, executions.
- ``triggers/``   the dispatchers the sensors run (due schedules, queued triggers).
- ``api/``        the HTTP API (Starlette, served by uvicorn): a route table, thin handlers
                  over ``services/``.
- ``worker/``     warm Celery run workers (``orchestrator worker``) and their run launcher.

Public entry points: ``orchestrator_definitions()`` (the Dagster definitions, to merge into a
code location of your own) and ``register_block_type`` (a block type of your own). They are
imported on first use, so the CLI does not pay for Dagster.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["orchestrator_definitions", "register_block_type"]


def __getattr__(name: str) -> Any:
    if name == "orchestrator_definitions":
        from orchestrator.dagster.definitions import orchestrator_definitions

        return orchestrator_definitions
    if name == "register_block_type":
        from orchestrator.execution.blocks import register_block_type

        return register_block_type
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")

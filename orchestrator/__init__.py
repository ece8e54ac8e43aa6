"""orchestrator: user-defined workflows on Dagster, triggered by schedules, API calls and webhooks.

Layout (one folder per part):

- ``domain/``     plain-Python rules: cron and DST, schedule plans, workflow documents,
                  correlation ids. No Dagster, SQLAlchemy or HTTP imports.
- ``store/``      the SQL store (SQLAlchemy Core on SQLite or PostgreSQL) and its migrations.
- ``execution/``  the execution core (runs a workflow's blocks) and the logging session.
- ``dagster/``    thin Dagster adapters: resources, the ``execute_workflow`` job, sensors.
- ``cli/``        the ``orchestrator`` command line.
- ``api/``        the HTTP API (Starlette, served by uvicorn): thin handlers over
                  ``triggers/ingest.py``.
"""

from __future__ import annotations

__version__ = "0.1.0"

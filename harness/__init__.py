"""What ``tests/`` and ``bench/`` share to run the real thing: Dagster daemons and code servers in
process groups of their own (:mod:`harness.processes`), ``DAGSTER_HOME`` and store backends
(:mod:`harness.dagster_home`), PostgreSQL databases and private PostgreSQL servers
(:mod:`harness.postgres`), a scripted loopback HTTP server (:mod:`harness.http_server`), and the
fault-injection scenarios that run fast in ``make test`` and long in ``make chaos``
(``harness.chaos_*``).

Why a package at the repository root rather than ``orchestrator/testing``: this is test
machinery, not product. It needs the repository (``workspace.yaml``, ``definitions.py``,
``examples/dagster.dev.yaml``) and the server binaries of PostgreSQL, so it does not belong in the
wheel (``[tool.setuptools.packages.find]`` ships ``orchestrator*`` only). Both ``pytest`` and
``python -m bench.<module>`` run from the repository root, where it is importable; ``tests/``
imports nothing from ``bench/`` and ``bench/`` nothing from ``tests/``. It does not import pytest:
the tests turn "not available here" into a skip (a failure under ``CI=true``).
"""

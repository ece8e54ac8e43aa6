"""Dagster entry point (``dagster dev -w workspace.yaml``): thin, everything lives in the package."""

from orchestrator.dagster.definitions import build_definitions

defs = build_definitions()

"""Dagster entry point (``dagster dev -w workspace.yaml``): thin, everything lives in the
package."""

from orchestrator.startup import heavy_imports

with heavy_imports():  # each code server and run process loads this module
    from orchestrator.dagster.definitions import orchestrator_definitions

    defs = orchestrator_definitions()

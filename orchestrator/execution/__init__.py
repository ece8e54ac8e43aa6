"""The execution core (runs a workflow's blocks, finalizes the execution itself) and the logging
session (the durable execution-log record)."""

# Built-in block types that live in their own module register on import.
from orchestrator.execution import http_block as _http_block  # noqa: F401
from orchestrator.execution import trigger_block as _trigger_block  # noqa: F401

"""The execution core (runs a workflow's blocks, finalizes the execution itself) and the logging
session (the durable execution-log record)."""

"""Executions as the CLI and the API read them: the listing (its status filter and limits,
written once) and one execution, from the log or still in the burst buffer (``queued``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.domain.records import ExecutionRecord, ExecutionStatus

if TYPE_CHECKING:  # only the protocols: the CLI imports this module before any store
    from orchestrator.store.interfaces import AdmissionRepository, ExecutionRepository, Visible

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
STATUSES = tuple(s.value for s in ExecutionStatus)
"""What a listing filters on (``--status``, ``?status=``)."""


class ExecutionService:
    """Reads of the execution log on a store's repositories."""

    def __init__(self, executions: ExecutionRepository, admission: AdmissionRepository) -> None:
        self.executions = executions
        self.admission = admission

    def log(self, *, environment: str | None = None, workflow: str | None = None,
             status: ExecutionStatus | None = None,
             limit: int = DEFAULT_LIMIT) -> list[ExecutionRecord]:
        """The log, most recent first, of every environment unless one is given (the
        operator's view: ``orchestrator executions list``)."""
        return self.executions.list_executions(
            environment=environment, workflow=workflow,
            status=status.value if status else None, limit=limit)

    def visible(self, environment: str, *, workflow: str | None = None,
                status: ExecutionStatus | None = None,
                limit: int = DEFAULT_LIMIT) -> list[Visible]:
        """What a caller of ``environment`` sees, most recent first: the log and the burst
        buffer (buffered executions are ``queued``)."""
        return self.admission.visible(environment, workflow=workflow,
                                      status=status.value if status else None, limit=limit)

    def find(self, execution_id: str, environment: str | None = None) -> Visible:
        """One execution of ``environment`` (log or buffer), else NotFound; without an
        environment, one of the log in whichever environment holds it."""
        if environment is None:
            environment = self.executions.get_execution(execution_id).environment
        return self.admission.find(execution_id, environment)

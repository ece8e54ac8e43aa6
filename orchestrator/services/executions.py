"""Executions as the CLI and the API read and control them: the listing (its status filter
and limits, written once), one execution, from the log or still in the burst buffer
(``queued``), and cancelling one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from orchestrator.domain.records import CancelOutcome, ExecutionRecord, ExecutionStatus
from orchestrator.exceptions import Conflict

if TYPE_CHECKING:  # only the protocols: the CLI imports this module before any store
    from orchestrator.store.interfaces import (
        AdmissionRepository,
        CancellationRepository,
        ExecutionRepository,
        Visible,
    )

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
STATUSES = tuple(s.value for s in ExecutionStatus)
"""What a listing filters on (``--status``, ``?status=``)."""


class ExecutionService:
    """Reads of the execution log on a store's repositories."""

    def __init__(self, executions: ExecutionRepository, admission: AdmissionRepository,
                 cancellation: CancellationRepository) -> None:
        self.executions = executions
        self.admission = admission
        self.cancellation = cancellation

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

    def cancel(self, execution_id: str, now: datetime,
               environment: str | None = None) -> tuple[ExecutionRecord, CancelOutcome]:
        """Cancel one execution (of ``environment`` when given, else NotFound): one that has
        not started ends ``cancelled`` now, without a run; a running one is stopped by the
        reconciler (its run terminated, or it alone in a batch run) and ends ``cancelled``;
        one that has ended is a :class:`Conflict`. No alert either way."""
        if environment is not None:
            self.find(execution_id, environment)
        record, outcome = self.cancellation.cancel(execution_id, now)
        if outcome is CancelOutcome.FINISHED:
            raise Conflict(f"execution {execution_id} has already ended "
                           f"({record.status.value}); there is nothing to cancel")
        return record, outcome

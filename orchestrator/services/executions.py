"""Executions as the CLI and the API read and control them: the listing (its status filter
and limits, written once), one execution, from the log or still in the burst buffer
(``queued``), cancelling one, and what replaying one asks ingestion for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.domain.records import CancelOutcome, ExecutionRecord, ExecutionStatus
from orchestrator.exceptions import Conflict

if TYPE_CHECKING:  # only the protocols: the CLI imports this module before any store
    from orchestrator.services.triggers import TriggerInput
    from orchestrator.store.interfaces import (
        AdmissionRepository,
        CancellationRepository,
        ExecutionRepository,
        Visible,
    )

@dataclass(frozen=True, kw_only=True)
class Replay:
    """A replay as ingestion takes it: a new trigger of ``workflow`` in ``environment``."""

    environment: str
    workflow: str
    item: TriggerInput


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
        environment, in whichever environment holds it (the operator's view)."""
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

    def replay(self, execution_id: str, *, environment: str | None = None,
               payload: dict[str, Any] | None = None, same_version: bool = False) -> Replay:
        """The trigger that replays one execution (of ``environment`` when given, else
        NotFound), for :class:`~orchestrator.services.triggers.IngestService` to admit as any
        trigger (source ``replay``, new correlation ids, ``replayed_from`` the original): the
        same workflow and environment, the original's payload unless one is given, its
        priority and concurrency key; the workflow's latest version, or with ``same_version``
        the one the original ran (:class:`Conflict` when it has not run yet). Any execution may
        be replayed, finished or not: the replay is a new execution beside it."""
        from orchestrator.services.triggers import TriggerInput

        original = self.find(execution_id, environment).execution
        version = original.workflow_version if isinstance(original, ExecutionRecord) else None
        if same_version and version is None:
            raise Conflict(f"execution {execution_id} has not started, so it ran no workflow "
                           "version yet; replay it without same_version (the latest version)")
        return Replay(environment=original.environment, workflow=original.workflow,
                      item=TriggerInput(
                          payload=original.payload if payload is None else payload,
                          priority=original.priority,
                          concurrency_key=original.concurrency_key,
                          replayed_from=original.execution_id,
                          pinned_version=version if same_version else None))

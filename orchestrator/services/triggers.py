"""Ingestion: where an API call, a webhook delivery, a batch item or a child trigger enters the
system. The correlation (``execution_id``, ``request_id`` from the caller's ``X-Request-Id`` or
fresh) is assigned here, once, and written with the queued trigger; nothing downstream
regenerates it.

Order per trigger (DESIGN §7): workflow check → idempotency claim → debounce → burst gate →
buffer or queue, the writes in one transaction (the store's
:class:`~orchestrator.store.interfaces.AdmissionRepository`).
A call is first prepared (correlation, gate: no I/O), then admitted, alone or with other calls'
jobs (the API's :class:`~orchestrator.triggers.group_commit.GroupCommit`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.ingest import (
    DEFAULT_IDEMPOTENCY_TTL,
    Admission,
    AdmissionJob,
    Debounce,
    TriggerRequest,
    parse_expiry,
    parse_start,
)
from orchestrator.exceptions import InvalidInput, OrchestratorError, Problem
from orchestrator.store.interfaces import AdmissionRepository, JobResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TriggerInput:
    """One trigger as a caller described it (already validated field by field)."""

    payload: dict[str, Any]
    idempotency_key: str | None = None
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL
    debounce: Debounce | None = None
    parent_execution_id: str | None = None
    delay: timedelta | None = None  # start no earlier than this after the trigger
    run_at: datetime | None = None  # ... or than this instant
    ttl: timedelta | None = None  # not started this long after it may start: `expired`
    priority: int = 0  # -10..10, higher first within the environment
    concurrency_key: str | None = None  # at most the workflow's key_limit in flight per key
    replayed_from: str | None = None  # a replay: the execution it replays
    pinned_version: int | None = None  # ... and the version it must run (same_version)


class IngestService:
    """Admits triggers through a store's admission repository, with an optional burst gate
    (None, or a policy switched off: the hot path never consults it; the store counts the
    window of a covered environment)."""

    def __init__(self, admission: AdmissionRepository, gate: BurstPolicy | None = None) -> None:
        self.admission = admission
        self.gate = gate if gate is not None and gate.enabled else None

    def trigger(self, *, environment: str, workflow: str, items: Sequence[TriggerInput],
                request_id: str | None, source: Source, now: datetime,
                trigger_id: str | None = None, batch_key: str | None = None,
                batched: bool = False, receipt: tuple[str, str] | None = None
                ) -> list[Admission]:
        """Admit ``items`` (one, or a batch) for ``environment/workflow``; all or nothing."""
        job = self.prepare(environment=environment, workflow=workflow, items=items,
                           request_id=request_id, source=source, now=now,
                           trigger_id=trigger_id, batch_key=batch_key, batched=batched,
                           receipt=receipt)
        [result] = self.admit([job])
        if isinstance(result, OrchestratorError):
            raise result
        return result

    def prepare(self, *, environment: str, workflow: str, items: Sequence[TriggerInput],
                request_id: str | None, source: Source, now: datetime,
                trigger_id: str | None = None, batch_key: str | None = None,
                batched: bool = False, receipt: tuple[str, str] | None = None
                ) -> AdmissionJob:
        """The job for one call: correlations assigned, the gate's policy attached; nothing read
        or written yet (the workflow and any parent are checked when the job is admitted)."""
        request_id = request_id or new_id()
        batch_id = "bat_" + new_id().replace("-", "")[:20] if batched else None
        requests = []
        for index, item in enumerate(items):
            key = item.idempotency_key
            if key is None and batch_key is not None:
                key = f"{batch_key}:{index}"
            correlation = Correlation(
                execution_id=new_id(),
                request_id=request_id,
                source=(Source.CHILD if item.parent_execution_id else
                        Source.REPLAY if item.replayed_from else source),
                workflow=workflow, environment=environment, trigger_id=trigger_id,
                idempotency_key=key, parent_execution_id=item.parent_execution_id,
                replayed_from=item.replayed_from, payload=item.payload)
            not_before, expires_at = _timing(item, now, f"items.{index}." if batched else "")
            requests.append(TriggerRequest(correlation=correlation,
                                           idempotency_ttl=item.idempotency_ttl,
                                           debounce=item.debounce, batch_id=batch_id,
                                           not_before=not_before, expires_at=expires_at,
                                           priority=item.priority,
                                           concurrency_key=item.concurrency_key,
                                           pinned_version=item.pinned_version))
        gate = self.gate if self.gate is not None and self.gate.covers(environment) else None
        return AdmissionJob(environment=environment, workflow=workflow,
                            requests=tuple(requests), now=now, receipt=receipt,
                            batched=batched, buffer=(False,) * len(requests), gate=gate)

    def admit(self, jobs: Sequence[AdmissionJob]) -> list[JobResult]:
        """Admit prepared jobs in one transaction (the API's group commit hands it every job
        that is waiting); each result is the job's admissions or the error that refused it."""
        results = self.admission.admit_jobs(jobs)
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, OrchestratorError):
                continue
            for admission in result:
                log.info("trigger admitted: %s/%s deduplicated=%s buffered=%s debounced=%s",
                         job.environment, job.workflow, admission.deduplicated,
                         admission.buffered, admission.debounced,
                         extra={"execution_id": admission.execution_id,
                                "request_id": admission.request_id})
        return results


def _timing(item: TriggerInput, now: datetime, prefix: str) -> tuple[datetime | None,
                                                                     datetime | None]:
    """(not_before, expires_at) of ``item``: :class:`InvalidInput` naming the field when its
    delay, run_at or ttl is not allowed (``prefix``: a batch item's ``items.<i>.``)."""
    try:
        if item.debounce is not None and (item.delay is not None or item.run_at is not None):
            raise ValueError("delay: cannot be combined with debounce (a debounce sets the "
                             "start itself)")
        start = parse_start(item.delay, item.run_at, now)
        return start, parse_expiry(item.ttl, start or now)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise InvalidInput(Problem(field=prefix + field, message=message),
                           subject="trigger") from None

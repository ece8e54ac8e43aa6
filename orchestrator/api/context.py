"""The API's collaborators (:class:`Api`): the store, the services, the trigger writer, the key
cache and the metrics, shared by every handler of one app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from starlette.requests import Request

from orchestrator.api.http import KeyCache, environment_of
from orchestrator.api.metrics import ApiMetrics
from orchestrator.api.settings import ApiSettings
from orchestrator.domain.correlation import Source
from orchestrator.domain.ingest import Admission, AdmissionJob
from orchestrator.exceptions import StoreError
from orchestrator.services.executions import ExecutionService
from orchestrator.services.schedules import ScheduleService
from orchestrator.services.triggers import IngestService
from orchestrator.store import Store
from orchestrator.triggers.group_commit import GroupCommit

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


class Api:
    """The app's collaborators, shared by the handlers."""

    def __init__(self, settings: ApiSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.store = Store(settings.store.database_url)
        self.access = self.store.access
        self.keys = KeyCache(self.access)
        self.triggers = IngestService(self.store.admission, settings.burst)
        self.admissions: GroupCommit[AdmissionJob, list[Admission]] = GroupCommit(
            self.triggers.admit, name="trigger-admission",
            turn=self.store.admission.writer_turn)
        self.metrics = ApiMetrics(self.store.queue, clock, self.store.retention)
        self.schedules = ScheduleService.on(self.store)
        self.executions = ExecutionService(self.store.executions, self.store.admission,
                                           self.store.cancellation)

    def warm_up(self) -> None:
        """Before the first request: the trigger path's statements run once (nothing kept) and
        the key lookup once (for no key). It only saves time: a store that is away, or any
        other failure, leaves the process cold, never down."""
        now = self.clock()
        try:
            self.store.admission.warm_up(now)
            self.access.check_api_key("orchestrator-warm-up", now)
        except StoreError:
            log.warning("warm-up skipped: the store is unavailable; the first requests will "
                        "prepare their statements themselves")
        except Exception:
            log.exception("warm-up failed; the first requests will prepare their statements "
                          "themselves")

    async def admit(self, job: AdmissionJob) -> list[Admission]:
        """Admit ``job`` with whatever other requests are waiting (one shared transaction)."""
        return await asyncio.wrap_future(self.admissions.submit(job))

    async def environment(self, request: Request) -> str:
        return await environment_of(request, self.keys, self.clock())

    def count(self, environment: str, source: Source, admissions: list[Admission]) -> None:
        for a in admissions:
            if a.deduplicated or a.debounced:
                self.metrics.deduplicated.labels(environment).inc()
            else:
                self.metrics.accepted.labels(environment, source.value).inc()
            if a.buffered:
                self.metrics.buffered.labels(environment).inc()

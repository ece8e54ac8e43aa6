"""Retention in memory (the SQL twin: ``retention.py``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from orchestrator.domain.burst import MAX_WINDOW
from orchestrator.domain.records import ExecutionStatus, TriggerStatus
from orchestrator.store.interfaces import Expired
from orchestrator.store.memory.state import MemoryState, Row

TERMINAL = {s.value for s in ExecutionStatus if s.terminal}


class MemoryRetention:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def set_retention(self, environment: str, retention: timedelta | None,
                      now: datetime) -> None:
        with self.state.transaction() as s:
            s.put("environments", environment, dict(
                environment=environment, updated_at=now, max_concurrent=s.table(
                    "environments").get(environment, {}).get("max_concurrent"),
                retention_seconds=None if retention is None else int(retention.total_seconds())))

    def retentions(self) -> dict[str, timedelta]:
        with self.state.transaction() as s:
            return {name: timedelta(seconds=row["retention_seconds"])
                    for name, row in sorted(s.table("environments").items())
                    if row["retention_seconds"] is not None}

    def _expired_rows(self, now: datetime, default: timedelta) -> list[Row]:
        keep = self.retentions()
        rows = [r for r in self.state.table("executions").values()
                if r["status"] in TERMINAL and r["finished_at"] is not None
                and r["finished_at"] < now - keep.get(r["environment"], default)]
        return sorted(rows, key=lambda r: r["finished_at"])

    def expired(self, now: datetime, default: timedelta, limit: int) -> list[Expired]:
        with self.state.transaction():
            return [Expired(execution_id=r["execution_id"], run_batch_id=r["run_batch_id"])
                    for r in self._expired_rows(now, default)[:limit]]

    def count_expired(self, now: datetime, default: timedelta) -> int:
        with self.state.transaction():
            return len(self._expired_rows(now, default))

    def emptied_batches(self, execution_ids: Sequence[str]) -> list[str]:
        with self.state.transaction():
            return self._emptied(set(execution_ids))

    def _emptied(self, ids: set[str]) -> list[str]:
        executions = self.state.table("executions")
        batches = {executions[i]["run_batch_id"] for i in ids
                   if i in executions and executions[i]["run_batch_id"]}
        kept = {r["run_batch_id"] for r in executions.values()
                if r["run_batch_id"] in batches and r["execution_id"] not in ids}
        return sorted(batches - kept)

    def delete_executions(self, execution_ids: Sequence[str]) -> dict[str, int]:
        ids = set(execution_ids)
        counts: Counter[str] = Counter()
        with self.state.transaction() as s:
            emptied = self._emptied(ids)
            links = s.table("alert_executions")
            incidents = {a for a, e in links if e in ids}
            counts["alert_links"] = _drop(links, lambda key, _: key[1] in ids)
            linked = {a for a, _ in links}
            counts["alerts"] = _drop(s.table("alerts"), lambda key, row: (
                row["execution_id"] in ids or (key in incidents and key not in linked)))
            counts["blocks"] = _drop(s.table("blocks"), lambda key, _: key[0] in ids)
            counts["queue"] = _drop(s.table("queued"), lambda key, _: key in ids)
            counts["idempotency_keys"] = _drop(s.table("idempotency"),
                                               lambda _, row: row["execution_id"] in ids)
            counts["executions"] = _drop(s.table("executions"), lambda key, _: key in ids)
            counts["batches"] = _drop(s.table("run_batches"), lambda key, _: key in emptied)
            self._count(counts)
        return {kind: n for kind, n in counts.items() if n}

    def prune_housekeeping(self, now: datetime, limit: int, *,
                           dry_run: bool = False) -> dict[str, int]:
        counts: Counter[str] = Counter()
        with self.state.transaction() as s:
            executions, queued = s.table("executions"), s.table("queued")
            waiting = {k for k, r in queued.items() if r["status"] == TriggerStatus.QUEUED.value}
            kinds = [
                ("idempotency_keys", "idempotency", lambda r: r["expires_at"] < now),
                ("debounces", "debounces", lambda r: r["execution_id"] not in waiting),
                ("queue", "queued", lambda r: r["status"] == TriggerStatus.DISPATCHED.value
                 and r["execution_id"] in executions
                 and executions[r["execution_id"]]["status"] in TERMINAL),
                ("buffer", "buffer", lambda r: r["execution_id"] in executions),
                ("burst_counts", "burst_counts", lambda r: r["bucket"] < now - MAX_WINDOW),
            ]
            for kind, table, gone in kinds:
                rows = s.table(table)
                keys = [k for k, r in rows.items() if gone(r)]
                counts[kind] = len(keys) if dry_run else len(keys[:limit])
                if not dry_run:
                    for key in keys[:limit]:
                        del rows[key]
            if not dry_run:
                self._count(counts)
        return {kind: n for kind, n in counts.items() if n}

    def _count(self, counts: Counter[str]) -> None:
        totals = self.state.table("prune_totals")
        for kind, n in counts.items():
            if n:
                totals[kind] = {"kind": kind, "count": totals.get(kind, {"count": 0})["count"] + n}

    def prune_totals(self) -> dict[str, int]:
        with self.state.transaction() as s:
            return {kind: row["count"] for kind, row in sorted(s.table("prune_totals").items())}


def _drop(rows: dict[Any, Row], gone: Callable[[Any, Row], bool]) -> int:
    keys = [key for key, row in rows.items() if gone(key, row)]
    for key in keys:
        del rows[key]
    return len(keys)

"""Group commit: concurrent callers' jobs written in shared transactions by one writer thread.

While the writer commits one group, the next callers' jobs gather in the queue; the writer then
takes all of them (up to ``max_jobs``) in one call of ``commit``. Under load, N requests cost
one transaction (one commit, one fsync, a few round trips) instead of N; a lone request goes at
once, with no added wait. Each caller gets its own job's result or error, and only after the
transaction holding it has committed, so an answer never promises what was not written.

A ``turn`` (SQLite: the file's write lock, which other processes' writers hold in turn) is
taken before the group is gathered: the jobs that arrive while the writer waits for it join the
group, so the more writers contend, the fewer transactions they take turns for.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
J = TypeVar("J")
R = TypeVar("R")
_STOP = object()


class GroupCommit(Generic[J, R]):
    """``commit(jobs)`` returns one result per job; a result that is an exception is raised to
    that job's caller. ``commit`` raising fails every job of the group. ``turn()`` is held while
    a group is gathered and committed."""

    def __init__(self, commit: Callable[[Sequence[J]], Sequence[R | BaseException]], *,
                 max_jobs: int = 200, name: str = "group-commit",
                 turn: Callable[[], AbstractContextManager[object]] = nullcontext) -> None:
        self._commit = commit
        self._turn = turn
        self._max_jobs = max_jobs
        self._name = name
        self._queue: queue.SimpleQueue[tuple[J, Future[R]] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: J) -> Future[R]:
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((job, future))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:  # (closed: nothing comes after it)
                return
            group: list[tuple[J, Future[R]]] = [item]  # type: ignore[list-item]
            outcome: Sequence[R | BaseException] | BaseException
            try:
                with self._turn():
                    stopping = self._gather(group)
                    outcome = self._write(group)
            except BaseException as exc:  # taking or letting go of the turn failed
                log.exception("%s: the writer's turn failed", self._name)
                outcome = exc
            self._answer(group, outcome)

    def _gather(self, group: list[tuple[J, Future[R]]]) -> bool:
        """What else is queued into ``group`` (up to ``max_jobs`` in all); whether the writer is
        to stop after it."""
        while len(group) < self._max_jobs:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            group.append(item)  # type: ignore[arg-type]
        return False

    def _write(self, group: list[tuple[J, Future[R]]]
               ) -> Sequence[R | BaseException] | BaseException:
        """The group's results, or what failed every job of it."""
        try:
            results = self._commit([job for job, _ in group])
            if len(results) != len(group):
                raise RuntimeError(f"{self._name}: {len(results)} results for {len(group)} jobs")
        except BaseException as exc:  # every caller must hear back
            log.exception("%s: a group of %d jobs failed", self._name, len(group))
            return exc
        return results

    @staticmethod
    def _answer(group: list[tuple[J, Future[R]]],
                outcome: Sequence[R | BaseException] | BaseException) -> None:
        """Each caller hears back (once the turn is let go: a caller's next job may be
        waiting for it)."""
        if isinstance(outcome, BaseException):
            for _, future in group:
                future.set_exception(outcome)
            return
        for (_, future), result in zip(group, outcome, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

"""Who is to blame for an exception, and whether trying again can help: the one classifier.

``classify(exc)`` names the :class:`~orchestrator.domain.records.Outcome` an exception means:
our own errors carry it (``OrchestratorError.classification``); an interruption (a terminated
run) is ``cancelled``; anything else raised by a block's own code is the workflow's
``user_error``, and raised anywhere else a ``pipeline_fault``. ``retryable(exc)`` says whether
the same call may succeed if made again (a lost connection, a busy database, a provider that is
down for a moment); a user error, a constraint violation or a bug never is. Every retry in the
package asks ``retryable`` (``orchestrator/domain/retry.py``); the execution core, the failure
hooks, the reconciler, the API and the CLI ask ``classify``.
"""

from __future__ import annotations

from orchestrator.domain.records import Outcome
from orchestrator.exceptions import OrchestratorError

# HTTP answers that may pass on their own (the provider or the alert webhook is overloaded or
# restarting): the server errors, a request timeout and rate limiting.
RETRYABLE_STATUS = frozenset({408, 429})


def our_error(exc: BaseException | None) -> OrchestratorError | None:
    """The first of our own errors in ``exc``'s chain of causes."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OrchestratorError):
            return seen
        seen = seen.__cause__
    return None


def interrupted(exc: BaseException | None) -> bool:
    """An interruption rather than an error: ``KeyboardInterrupt`` or another ``BaseException``
    that is not an ``Exception`` (Dagster signals a terminated run with one), except an exit."""
    return exc is not None and not isinstance(exc, Exception | SystemExit | GeneratorExit)


def classify(exc: BaseException | None, *, raised_by_block: bool = False) -> Outcome:
    """The outcome ``exc`` means. ``raised_by_block``: it escaped a block's own code (inside the
    execution core), where anything that is not our machinery failing is the workflow's error."""
    if interrupted(exc):
        return Outcome.CANCELLED
    ours = our_error(exc)
    if ours is not None:
        return ours.classification
    return Outcome.USER_ERROR if raised_by_block else Outcome.PIPELINE_FAULT


def retryable(exc: BaseException) -> bool:
    """Whether the failed call may succeed if made again."""
    return isinstance(exc, OrchestratorError) and exc.transient


def retryable_status(status: int) -> bool:
    """Whether an HTTP answer with ``status`` may pass if the request is sent again."""
    return status >= 500 or status in RETRYABLE_STATUS

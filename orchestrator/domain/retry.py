"""The one retry policy, on tenacity: what is retried is decided by
:func:`~orchestrator.domain.failures.retryable` (never a user error or a non-transient store
error), how often and how long to wait by a delay schedule named here.

In-process retries (a call made again after a pause) go through :func:`retrying`. Two schemes
are not loops in one process, and only take their delays from here: the op's retry, which is
Dagster's own mechanism (``RetryRequested``: the op runs again, attempt + 1), and alert
delivery, whose schedule is durable in the store and driven by the reconciler's ticks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import tenacity

from orchestrator.domain.failures import retryable

log = logging.getLogger(__name__)
T = TypeVar("T")

# A terminal write of the logging session, a hook's settlement: a blip of the database passes.
STORE_WRITE_DELAYS = (0.2, 0.5, 1.0, 2.0)
SETTLE_DELAYS = (0.5, 1.0, 2.0)
# The op run again by Dagster for a lost connection (attempt + 1), then the run fails.
OP_RETRY_DELAYS = (2.0, 4.0, 8.0)
# An idempotency claim that lost a race to a concurrent request is tried again at once (its
# transaction is open): the key's holder has committed by then.
CLAIM_DELAYS = (0.0, 0.0, 0.0, 0.0)
# Alert webhook delivery after the first immediate attempt (about 2 hours in all), by the
# reconciler; then the alert is marked `failed` and stays listed.
ALERT_DELIVERY_DELAYS = (10, 30, 60, 120, 300, 600, 1800, 3600)


def exponential(base: float, retries: int, *, cap: float) -> tuple[float, ...]:
    """``retries`` delays doubling from ``base``, none over ``cap``."""
    return tuple(min(base * 2 ** n, cap) for n in range(retries))


def retrying(delays: Sequence[float], *, what: str = "call",
             retry_on: Callable[[BaseException], bool] = retryable,
             sleep: Callable[[float], None] | None = None,
             log_extra: Mapping[str, Any] | None = None) -> tenacity.Retrying:
    """The policy: the first attempt, then one more after each of ``delays`` while the failure
    is retryable; the last failure (or the first one that is not retryable) is raised as is."""
    def wait(state: tenacity.RetryCallState) -> float:
        # Asked after the last attempt too (before the stop is checked): no wait left then.
        n = state.attempt_number - 1
        return float(delays[n]) if n < len(delays) else 0.0

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if state.next_action is not None and state.next_action.sleep > 0:
            log.warning("%s failed; retrying in %.1fs", what, state.next_action.sleep,
                        extra=dict(log_extra) if log_extra else None)

    return tenacity.Retrying(stop=tenacity.stop_after_attempt(len(delays) + 1), wait=wait,
                             retry=tenacity.retry_if_exception(retry_on),
                             sleep=sleep or (lambda seconds: time.sleep(seconds)),
                             before_sleep=before_sleep, reraise=True)


def retry_call(call: Callable[[], T], delays: Sequence[float], **options: Any) -> T:
    """``call()`` under :func:`retrying`."""
    return retrying(delays, **options)(call)

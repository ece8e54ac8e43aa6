"""The API key cache: a key found stale by many requests at once is read from the store once,
and every one of them gets that answer (at a burst's rate, each expiry of the entry sent every
waiting request to the store, and each to record the key's last use)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

from orchestrator.api.http import KeyCache
from orchestrator.domain.access import KeyGrant


class Access:
    """A store that answers slowly and counts its reads."""

    def __init__(self, grant: KeyGrant | None) -> None:
        self.grant = grant
        self.reads = 0
        self.lock = threading.Lock()

    def check_api_key(self, key: str, now: datetime) -> KeyGrant | None:
        with self.lock:
            self.reads += 1
        time.sleep(0.05)
        return self.grant


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def _at_once(cache: KeyCache, n: int) -> list[str | None]:
    async def main() -> list[str | None]:
        return list(await asyncio.gather(*(cache.environment("ork_key", NOW) for _ in range(n))))
    return asyncio.run(main())


def test_requests_finding_the_key_stale_together_share_one_read() -> None:
    access = Access(KeyGrant(key_id="key_1", environment="acme", expires_at=None))
    clock = Clock()
    cache = KeyCache(access, ttl=0.5, clock=clock)  # type: ignore[arg-type]
    assert _at_once(cache, 50) == ["acme"] * 50
    assert access.reads == 1
    assert _at_once(cache, 20) == ["acme"] * 20 and access.reads == 1  # cached
    clock.now += 0.6  # stale: read again, once
    access.grant = None  # revoked meanwhile
    assert _at_once(cache, 30) == [None] * 30
    assert access.reads == 2


def test_an_expired_grant_is_refused_whatever_the_cache() -> None:
    access = Access(KeyGrant(key_id="key_1", environment="acme",
                             expires_at=NOW - timedelta(seconds=1)))
    cache = KeyCache(access, ttl=0.5, clock=Clock())  # type: ignore[arg-type]
    assert _at_once(cache, 5) == [None] * 5

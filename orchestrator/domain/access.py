"""API keys and webhooks: who may trigger what. Keys are shown once and stored hashed; a key is
``active`` until it is revoked or its expiry passes. A webhook has one signing secret, plus the
one it replaced while a rotation's grace lasts."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from orchestrator.domain.ingest import parse_duration
from orchestrator.domain.records import _Record

KEY_PREFIX = "ork_"
MAX_KEY_LIFETIME = timedelta(days=3650)
MAX_ROTATION_GRACE = timedelta(days=30)
DEFAULT_ROTATION_GRACE = timedelta(hours=24)
# A key's last use is written at most this often (it is read on every request; the write is
# conditional, so servers checking the key at once write it once).
LAST_USE_RESOLUTION = timedelta(minutes=1)


def new_api_key() -> str:
    """A fresh key (256 random bits); shown to the user once."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key_lifetime(value: Any) -> timedelta:
    """``keys create --expires-in``: a positive duration ('90d', '12h') of at most 10 years;
    ``ValueError`` fit for the user."""
    lifetime = parse_duration(value)
    if lifetime > MAX_KEY_LIFETIME:
        raise ValueError("must be at most 3650 days")
    return lifetime


def parse_rotation_grace(value: Any) -> timedelta:
    """``webhooks rotate-secret --grace``: how long the old secret is still accepted, from 0
    (at once) to 30 days; ``ValueError`` fit for the user."""
    grace = parse_duration(value, allow_zero=True)
    if grace > MAX_ROTATION_GRACE:
        raise ValueError("must be at most 30 days")
    return grace


class KeyStatus(str, Enum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, kw_only=True)
class ApiKeyRecord(_Record):
    id: str
    environment: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    def status(self, now: datetime) -> KeyStatus:
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE

    def shown(self, now: datetime) -> dict[str, Any]:
        """The listing's row: the record with its status now."""
        return self.to_dict() | {"status": self.status(now).value}


@dataclass(frozen=True, kw_only=True)
class KeyGrant:
    """What a key that is not revoked grants: its environment, until ``expires_at``."""

    key_id: str
    environment: str
    expires_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, kw_only=True)
class WebhookRecord(_Record):
    id: str
    environment: str
    workflow: str
    secret: str
    created_at: datetime
    previous_secret: str | None = None  # accepted until previous_secret_expires_at
    previous_secret_expires_at: datetime | None = None

    def secrets(self, now: datetime) -> list[str]:
        """The secrets a delivery may be signed with now: the current one, and the one it
        replaced while the rotation's grace lasts."""
        kept = self.previous_secret is not None and self.previous_secret_expires_at is not None \
            and now < self.previous_secret_expires_at
        return [self.secret] + ([self.previous_secret] if kept else [])  # type: ignore[list-item]

    def public(self) -> dict[str, object]:
        """Without the secrets (listings)."""
        data = self.to_dict()
        data.pop("secret")
        data.pop("previous_secret")
        return data

    def rotated(self, secret: str, now: datetime, grace: timedelta) -> WebhookRecord:
        """This webhook with ``secret``, the current one accepted for ``grace`` more (a
        previous one still in its grace is dropped: two secrets at most)."""
        return WebhookRecord(id=self.id, environment=self.environment, workflow=self.workflow,
                             secret=secret, created_at=self.created_at,
                             previous_secret=self.secret if grace else None,
                             previous_secret_expires_at=now + grace if grace else None)

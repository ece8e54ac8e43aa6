"""API keys and webhooks: who may trigger what. Keys are shown once and stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from orchestrator.domain.records import _Record

KEY_PREFIX = "ork_"


def new_api_key() -> str:
    """A fresh key (256 random bits); shown to the user once."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, kw_only=True)
class ApiKeyRecord(_Record):
    id: str
    environment: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class WebhookRecord(_Record):
    id: str
    environment: str
    workflow: str
    secret: str
    created_at: datetime

    def public(self) -> dict[str, object]:
        """Without the secret (listings)."""
        data = self.to_dict()
        data.pop("secret")
        return data

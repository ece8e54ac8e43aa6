"""What every command module of the CLI shares: the environment option, the clock, the store
and the ``--payload`` parser (kept light: the store is imported when a command opens it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from orchestrator.domain.payloads import load_json, unstorable
from orchestrator.domain.workflow import DEFAULT_ENVIRONMENT
from orchestrator.exceptions import InvalidInput, Problem
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.store import Store

env_option = click.option("--environment", "-e", default=DEFAULT_ENVIRONMENT, show_default=True,
                          help="Tenant scope.")


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_store() -> Store:
    from orchestrator.store import Store

    return Store(Settings.from_env().database_url)


def parse_payload(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = load_json(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(Problem(field="--payload", message=f"is not valid JSON ({exc.msg} at "
                                   f"position {exc.pos})")) from None
    except RecursionError:
        raise InvalidInput(Problem(field="--payload", message="nests arrays or objects too "
                                   "deeply")) from None
    if not isinstance(value, dict):
        raise InvalidInput(Problem(field="--payload", message="must be a JSON object, e.g. "
                                   "'{\"user\": \"ada\"}'"))
    problem = unstorable(value, "--payload")
    if problem is not None:
        raise InvalidInput(problem)
    return value

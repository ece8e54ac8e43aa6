"""``orchestrator keys`` (API keys: create with an expiry, list with status and last use,
revoke) and ``orchestrator webhooks`` (create, list, delete, rotate-secret)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli.output import emit, json_option
from orchestrator.domain.access import DEFAULT_ROTATION_GRACE
from orchestrator.domain.workflow import DEFAULT_ENVIRONMENT, validate_name
from orchestrator.exceptions import InvalidInput, Problem
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.store import Store


def _now() -> datetime:
    return datetime.now(UTC)


def _store() -> Store:
    from orchestrator.store import Store

    return Store(Settings.from_env().database_url)


def _duration(value: str | None, option: str, parse: Callable[[Any], timedelta]
              ) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise InvalidInput(Problem(field=option, message=str(exc))) from None


@click.group()
def keys() -> None:
    """API keys: each is scoped to one environment."""


@keys.command("create")
@click.option("--environment", "-e", required=True, help="The environment the key may use.")
@click.option("--expires-in", default=None,
              help="Refused after this long (90d, 12h; at most 3650d). Default: never.")
@json_option
def keys_create(environment: str, expires_in: str | None, as_json: bool) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from orchestrator.domain.access import parse_key_lifetime

    problems = validate_name(environment, "--environment")
    if problems:
        raise InvalidInput(problems)
    lifetime = _duration(expires_in, "--expires-in", parse_key_lifetime)
    now = _now()
    record, key = _store().access.create_api_key(
        environment, now, None if lifetime is None else now + lifetime)
    emit(record.shown(now) | {"key": key}, as_json=as_json)
    if not as_json:
        click.echo("store the key now: it is not shown again", err=True)


@keys.command("list")
@click.option("--environment", "-e", default=None, help="Only this environment.")
@json_option
def keys_list(environment: str | None, as_json: bool) -> None:
    """List keys with their status (active, revoked, expired), last use (to the minute) and
    expiry; never the key."""
    now = _now()
    rows = [k.shown(now) for k in _store().access.list_api_keys(environment)]
    emit(rows, as_json=as_json, columns=["id", "environment", "prefix", "status",
                                         "last_used_at", "expires_at", "created_at"])


@keys.command("revoke")
@click.argument("key_id")
@json_option
def keys_revoke(key_id: str, as_json: bool) -> None:
    """Revoke a key (by its id, from `keys list`): every server refuses it within a second."""
    now = _now()
    record = _store().access.revoke_api_key(key_id, now)
    emit(record.shown(now), as_json=as_json)


@click.group()
def webhooks() -> None:
    """Signed webhooks (Standard Webhooks) that trigger a workflow: POST /v1/webhooks/ID."""


@webhooks.command("create")
@click.option("--workflow", "-w", required=True, help="Workflow name.")
@click.option("--environment", "-e", default=DEFAULT_ENVIRONMENT, show_default=True,
              help="Tenant scope.")
@json_option
def webhooks_create(workflow: str, environment: str, as_json: bool) -> None:
    """Create a webhook; prints its id and signing secret (whsec_ + base64)."""
    record = _store().access.create_webhook(environment, workflow, _now())
    emit(_shown(record.to_dict(), record.id), as_json=as_json)


@webhooks.command("list")
@click.option("--environment", "-e", default=None, help="Only this environment.")
@json_option
def webhooks_list(environment: str | None, as_json: bool) -> None:
    """List webhooks (without secrets)."""
    rows = [w.public() for w in _store().access.list_webhooks(environment)]
    emit(rows, as_json=as_json, columns=["id", "environment", "workflow", "created_at",
                                         "previous_secret_expires_at"])


@webhooks.command("delete")
@click.argument("webhook_id")
def webhooks_delete(webhook_id: str) -> None:
    """Delete a webhook: its URL answers 404 from now on."""
    _store().access.delete_webhook(webhook_id)
    click.echo(f"deleted webhook {webhook_id}")


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
@click.option("--grace", default=None,
              help="How long the old secret is still accepted (24h default; 0 to 30d).")
@json_option
def webhooks_rotate_secret(webhook_id: str, grace: str | None, as_json: bool) -> None:
    """Give the webhook a new secret (Standard Webhooks; a legacy webhook moves to them); the old
    one is accepted until the grace ends."""
    from orchestrator.domain.access import parse_rotation_grace

    kept = _duration(grace, "--grace", parse_rotation_grace)
    record = _store().access.rotate_webhook_secret(
        webhook_id, _now(), DEFAULT_ROTATION_GRACE if kept is None else kept)
    shown = record.to_dict()
    shown.pop("previous_secret")
    emit(_shown(shown, record.id), as_json=as_json)
    if not as_json:
        click.echo("store the new secret now: it is not shown again", err=True)


def _shown(record: dict[str, Any], webhook_id: str) -> dict[str, Any]:
    return record | {"url_path": f"/v1/webhooks/{webhook_id}"}

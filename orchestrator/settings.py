"""Settings read from the environment, at the edges only (CLI, Dagster definitions, server).

Each setting is one line of :class:`Settings`: its name, its type (with what is allowed) and its
default. The variable is ``ORCHESTRATOR_`` + the name in capitals; a duration is read in whole
seconds from ``ORCHESTRATOR_<NAME>_SECONDS`` (``Field(validation_alias=...)``). An unset or empty
variable means the default. :meth:`EnvSettings.from_env` reads the mapping it is given (the
process environment by default) and reports every bad variable as :class:`InvalidInput`, naming
the variable, what was wrong and what is allowed; constructing a class directly reads nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import AliasGenerator, BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError, PydanticUseDefault
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from orchestrator.exceptions import InvalidInput, Problem

__all__ = ["DATABASE_URL_VAR", "DEFAULT_DB_FILENAME", "EnvSettings", "Settings", "at_least",
           "default_database_url", "env_var", "flag", "http_url", "names", "seconds", "token",
           "whsec"]

PREFIX = "ORCHESTRATOR_"
DATABASE_URL_VAR = "ORCHESTRATOR_DATABASE_URL"
DEFAULT_DB_FILENAME = "orchestrator.sqlite"


def _problem(message: str) -> PydanticCustomError:
    # The message goes in through the context: a value quoted in it may contain braces.
    return PydanticCustomError("setting", "{message}", {"message": message})


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _whole(raw: Any, minimum: int, maximum: int | None = None) -> int:
    if _blank(raw):
        raise PydanticUseDefault()
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = minimum - 1
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise _problem(f"{raw!r} is not allowed; use a whole number {allowed}")
    return value


def at_least(minimum: int) -> BeforeValidator:
    """A whole number >= ``minimum`` (``Annotated[int, at_least(1)]``)."""
    return BeforeValidator(lambda raw: _whole(raw, minimum))


def seconds(minimum: int, maximum: timedelta | None = None) -> BeforeValidator:
    """A duration given in whole seconds >= ``minimum`` and at most ``maximum``
    (``Annotated[timedelta, seconds(0)]``); a ``timedelta`` passed in code is taken as it is."""
    most = None if maximum is None else int(maximum.total_seconds())
    return BeforeValidator(lambda raw: raw if isinstance(raw, timedelta)
                           else timedelta(seconds=_whole(raw, minimum, most)))


def http_url(*, trailing_slash: bool = True) -> BeforeValidator:
    """An absolute http(s) URL (``Annotated[str | None, http_url()]``)."""

    def check(raw: Any) -> str:
        if _blank(raw):
            raise PydanticUseDefault()
        text = str(raw).strip()
        parsed = urlsplit(text)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise _problem("is not an http(s) URL; use e.g. https://hooks.example.com/alerts")
        return text if trailing_slash else text.rstrip("/")

    return BeforeValidator(check)


_TRUE = {"1", "true", "yes", "on"}


def flag() -> BeforeValidator:
    """On for ``1``, ``true``, ``yes`` or ``on`` (any case); off for anything else."""

    def check(raw: Any) -> bool:
        if _blank(raw):
            raise PydanticUseDefault()
        return raw if isinstance(raw, bool) else str(raw).lower() in _TRUE

    return BeforeValidator(check)


def whsec() -> BeforeValidator:
    """A Standard Webhooks secret: ``whsec_`` followed by base64 of at least 24 bytes."""

    def check(raw: Any) -> str:
        if _blank(raw):
            raise PydanticUseDefault()
        from orchestrator.domain.signatures import standard_secret_problem

        problem = standard_secret_problem(str(raw))
        if problem:
            raise _problem(problem)
        return str(raw)

    return BeforeValidator(check)


def token(min_length: int) -> BeforeValidator:
    """A secret token of at least ``min_length`` characters, without spaces."""

    def check(raw: Any) -> str:
        if _blank(raw):
            raise PydanticUseDefault()
        text = str(raw).strip()
        if len(text) < min_length or any(c.isspace() for c in text):
            raise _problem(f"use at least {min_length} characters without spaces, e.g. the "
                           "output of: python3 -c 'import secrets; "
                           "print(secrets.token_urlsafe(24))'")
        return text

    return BeforeValidator(check)


def names() -> BeforeValidator:
    """A comma-separated list of names, as a set (``a, b`` -> ``{"a", "b"}``)."""

    def check(raw: Any) -> frozenset[str]:
        if raw is None:  # set but empty: no names
            raise PydanticUseDefault()
        items = raw.split(",") if isinstance(raw, str) else raw
        return frozenset(str(item).strip() for item in items if str(item).strip())

    return BeforeValidator(check)


class _MappingSource(EnvSettingsSource):
    """The environment source of pydantic-settings over a mapping the caller gives (tests, the
    Dagster resource's overrides), not always ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._env, self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)


class EnvSettings(BaseSettings):
    """Base of the settings classes: variables ``ORCHESTRATOR_<FIELD>``, exactly that case; read
    only by :meth:`from_env`."""

    # The alias of a field is its variable, exactly that case (an explicit env_var() wins).
    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=lambda name: PREFIX + name.upper()),
        case_sensitive=True, frozen=True, extra="ignore", validate_by_name=True,
        validate_by_alias=True, validate_default=False)
    subject: ClassVar[str] = "settings"

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments only: the environment is read by from_env, never by a constructor.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        field_of = {cls.variable(name): name for name in cls.model_fields}
        values = {field_of.get(key, key): value
                  for key, value in _MappingSource(cls, env)().items()}
        values.update(cls.computed_defaults(env, values))
        try:
            return cls(**values)
        except ValidationError as exc:
            raise InvalidInput([Problem(field=cls.variable(str(error["loc"][0])),
                                        message=error["msg"]) for error in exc.errors()],
                               subject=cls.subject) from None

    @classmethod
    def computed_defaults(cls, env: Mapping[str, str], values: Mapping[str, Any]
                          ) -> dict[str, Any]:
        """Defaults that depend on other variables (none here)."""
        return {}

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of field (or alias) ``name``."""
        field = cls.model_fields.get(name)
        if field is None:
            return name
        alias = field.validation_alias
        return alias if isinstance(alias, str) else PREFIX + name.upper()


def env_var(name: str) -> Any:
    """Read this field from variable ``name`` instead of ``ORCHESTRATOR_<FIELD>``."""
    return Field(validation_alias=name)


class Settings(EnvSettings):
    """Everything configurable, with its default (one line per setting)."""

    database_url: str  # default: default_database_url(), SQLite under DAGSTER_HOME
    max_runs_per_tick: Annotated[int, at_least(1)] = 50
    sensor_interval_seconds: Annotated[int, at_least(1)] = 5
    catchup_window: Annotated[timedelta, seconds(0),
                              env_var("ORCHESTRATOR_CATCHUP_WINDOW_SECONDS")] = timedelta(hours=1)
    alert_webhook_url: Annotated[str | None, http_url()] = None
    # Signs each alert POST as Standard Webhooks do (whsec_ + base64; README "Alerts").
    alert_webhook_secret: Annotated[str | None, whsec()] = None
    dagster_ui_url: Annotated[str, http_url(trailing_slash=False)] = "http://127.0.0.1:3000"
    heartbeat_interval_seconds: Annotated[int, at_least(1)] = 10
    # More than heartbeat_interval_seconds (checked below).
    lease_timeout_seconds: Annotated[int, at_least(2)] = 60
    dispatch_lookahead: Annotated[timedelta, seconds(0),
                                  env_var("ORCHESTRATOR_DISPATCH_LOOKAHEAD_SECONDS")] = \
        timedelta(seconds=5)
    burst_stuck_after: Annotated[timedelta, seconds(1),
                                 env_var("ORCHESTRATOR_BURST_STUCK_AFTER_SECONDS")] = \
        timedelta(minutes=10)
    # Most executions one batch run carries (1 = every execution gets a run of its own). 200,
    # not 50: each spawned run costs 1-3 s of CPU to start, which a batch of 50 still pays 20
    # times per 1,000 executions (docs/PERFORMANCE.md, drain rows).
    max_batch_size: Annotated[int, at_least(1)] = 200
    # Executions of one batch run in flight at once (threads: most wait on providers).
    batch_concurrency: Annotated[int, at_least(1)] = 16
    # Queued triggers are handed to Dagster only as run slots free up (max_concurrent_runs of
    # the run coordinator), a backlog spread evenly over all slots; off: all at once, in runs of
    # max_batch_size, to wait in Dagster's run queue (README "Batch runs").
    dispatch_to_free_slots: Annotated[bool, flag()] = True
    # Days a terminal execution is kept (an environment may override it: `orchestrator
    # environments set-retention`); older ones are pruned with their block entries and alerts.
    retention_days: Annotated[int, at_least(1)] = 30
    # Delete the Dagster runs of pruned executions too (through Dagster's API).
    prune_dagster_runs: Annotated[bool, flag()] = True
    # Seconds between two ticks of the retention_pruner sensor.
    prune_interval_seconds: Annotated[int, at_least(1)] = 60
    # Modules that register block types of their own (comma-separated, importable here): the
    # code location, the workers and `workflows apply` import them.
    block_modules: Annotated[frozenset[str], names(), NoDecode] = frozenset()

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> Self:
        if self.lease_timeout_seconds <= self.heartbeat_interval_seconds:
            raise InvalidInput(Problem(
                field="ORCHESTRATOR_LEASE_TIMEOUT_SECONDS",
                message=f"{self.lease_timeout_seconds} must be greater than "
                        f"ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS "
                        f"({self.heartbeat_interval_seconds}); use at least three heartbeats"),
                subject="settings")
        return self

    @classmethod
    def computed_defaults(cls, env: Mapping[str, str], values: Mapping[str, Any]
                          ) -> dict[str, Any]:
        if not values.get("database_url"):
            return {"database_url": default_database_url(env)}
        return {}


def default_database_url(env: Mapping[str, str]) -> str:
    """SQLite next to Dagster's own storage: ``$DAGSTER_HOME/orchestrator.sqlite``."""
    home = env.get("DAGSTER_HOME")
    if not home:
        raise InvalidInput(Problem(field=DATABASE_URL_VAR, message="is not set and neither is "
                                   "DAGSTER_HOME; set one of them (e.g. export "
                                   "DAGSTER_HOME=$PWD/.dagster_home)"), subject="settings")
    path = Path(home).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / DEFAULT_DB_FILENAME}"


"""Settings of the HTTP API server, read from the environment at the edge (``orchestrator
serve``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from pydantic_settings import NoDecode

from orchestrator.domain.burst import MAX_WINDOW, BurstPolicy
from orchestrator.settings import (
    EnvSettings,
    Settings,
    at_least,
    env_var,
    flag,
    names,
    seconds,
    token,
)

_DEFAULT = BurstPolicy()


class BurstSettings(EnvSettings):
    """The burst gate's variables; the defaults are :class:`BurstPolicy`'s (except the
    environments: once the gate is switched on, it covers every environment unless listed)."""

    burst_gate: Annotated[bool, flag()] = _DEFAULT.enabled
    burst_gate_environments: Annotated[frozenset[str], names(), NoDecode] = frozenset({"*"})
    burst_threshold: Annotated[int, at_least(1)] = _DEFAULT.threshold
    burst_window: Annotated[timedelta, seconds(1, MAX_WINDOW),
                            env_var("ORCHESTRATOR_BURST_WINDOW_SECONDS")] = \
        _DEFAULT.window
    burst_hold: Annotated[timedelta, seconds(0),
                          env_var("ORCHESTRATOR_BURST_HOLD_SECONDS")] = _DEFAULT.hold

    def policy(self) -> BurstPolicy:
        return BurstPolicy(enabled=self.burst_gate, environments=self.burst_gate_environments,
                           threshold=self.burst_threshold, window=self.burst_window,
                           hold=self.burst_hold)


class OperatorSettings(EnvSettings):
    """``ORCHESTRATOR_OPERATOR_TOKEN``: the bearer token of operator-wide routes (``/metrics``);
    unset, they answer 401 to everyone."""

    operator_token: Annotated[str | None, token(16)] = None


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    store: Settings
    burst: BurstPolicy = field(default_factory=BurstPolicy)
    operator_token: str | None = None
    retry_after_seconds: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        return cls(store=Settings.from_env(env), burst=BurstSettings.from_env(env).policy(),
                   operator_token=OperatorSettings.from_env(env).operator_token)

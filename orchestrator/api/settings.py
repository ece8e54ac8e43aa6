"""Settings of the HTTP API server, read from the environment at the edge (``orchestrator
serve``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from orchestrator.domain.burst import BurstPolicy
from orchestrator.settings import Settings, _int

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    store: Settings
    burst: BurstPolicy = field(default_factory=BurstPolicy)
    retry_after_seconds: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        environments = {e.strip() for e in
                        env.get("ORCHESTRATOR_BURST_GATE_ENVIRONMENTS", "*").split(",")
                        if e.strip()}
        return cls(
            store=Settings.from_env(env),
            burst=BurstPolicy(
                enabled=env.get("ORCHESTRATOR_BURST_GATE", "").lower() in _TRUE,
                environments=frozenset(environments),
                threshold=_int(env, "ORCHESTRATOR_BURST_THRESHOLD", 200, minimum=1),
                window=timedelta(seconds=_int(env, "ORCHESTRATOR_BURST_WINDOW_SECONDS", 1,
                                              minimum=1)),
                hold=timedelta(seconds=_int(env, "ORCHESTRATOR_BURST_HOLD_SECONDS", 10,
                                            minimum=0))))

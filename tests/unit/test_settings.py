"""Settings beyond the single-variable cases of ``test_workflow_documents.py``: the cross-field
rule, the API server's burst-gate variables, and that only ``from_env`` reads the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.api.settings import ApiSettings
from orchestrator.exceptions import InvalidInput
from orchestrator.settings import Settings


def test_database_url_without_dagster_home() -> None:
    url = "postgresql+psycopg2://db/orch"
    assert Settings.from_env({"ORCHESTRATOR_DATABASE_URL": url}).database_url == url


def test_lease_must_outlast_the_heartbeat(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"DAGSTER_HOME": str(tmp_path),
                           "ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS": "10",
                           "ORCHESTRATOR_LEASE_TIMEOUT_SECONDS": "10"})
    [problem] = caught.value.problems
    assert problem.field == "ORCHESTRATOR_LEASE_TIMEOUT_SECONDS"
    assert problem.message.startswith("10 must be greater than "
                                      "ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS (10)")


def test_every_bad_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"DAGSTER_HOME": str(tmp_path),
                           "ORCHESTRATOR_ALERT_WEBHOOK_URL": "ftp://example.org",
                           "ORCHESTRATOR_DISPATCH_LOOKAHEAD_SECONDS": "-1"})
    assert {p.field: p.message for p in caught.value.problems} == {
        "ORCHESTRATOR_ALERT_WEBHOOK_URL":
            "is not an http(s) URL; use e.g. https://hooks.example.com/alerts",
        "ORCHESTRATOR_DISPATCH_LOOKAHEAD_SECONDS": "'-1' is not allowed; use a whole number >= 0"}
    assert str(caught.value).startswith("invalid settings (2 problem(s)):")


def test_empty_means_default_and_urls_are_trimmed(tmp_path: Path) -> None:
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path),
                                  "ORCHESTRATOR_MAX_BATCH_SIZE": "",
                                  "ORCHESTRATOR_DAGSTER_UI_URL": " https://dagster.example/ ",
                                  "ORCHESTRATOR_ALERT_WEBHOOK_URL": "  "})
    assert settings.max_batch_size == 200
    assert settings.dagster_ui_url == "https://dagster.example"
    assert settings.alert_webhook_url is None


def test_variable_names_are_exact(tmp_path: Path) -> None:
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path),
                                  "orchestrator_max_runs_per_tick": "7",
                                  "ORCHESTRATOR_CATCHUP_WINDOW": "5"})
    assert settings.max_runs_per_tick == 50
    assert settings.catchup_window == timedelta(hours=1)


def test_only_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("ORCHESTRATOR_MAX_RUNS_PER_TICK", "7")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert Settings(database_url="sqlite://").max_runs_per_tick == 50
    assert Settings.from_env({"DAGSTER_HOME": str(tmp_path)}).max_runs_per_tick == 50
    assert Settings.from_env().max_runs_per_tick == 7


def test_overrides_keep_the_rest() -> None:
    settings = Settings(database_url="sqlite://", catchup_window=timedelta(0))
    changed = settings.model_copy(update={"heartbeat_interval_seconds": 3})
    assert (changed.heartbeat_interval_seconds, changed.catchup_window) == (3, timedelta(0))
    with pytest.raises(ValueError, match="frozen"):
        settings.max_runs_per_tick = 3  # type: ignore[misc]


def test_burst_gate_variables(tmp_path: Path) -> None:
    home = {"DAGSTER_HOME": str(tmp_path)}
    off = ApiSettings.from_env(home).burst
    assert (off.enabled, set(off.environments), off.threshold, off.window, off.hold) == \
        (False, {"*"}, 200, timedelta(seconds=1), timedelta(seconds=10))
    on = ApiSettings.from_env({**home, "ORCHESTRATOR_BURST_GATE": "Yes",
                               "ORCHESTRATOR_BURST_GATE_ENVIRONMENTS": "acme, beta,",
                               "ORCHESTRATOR_BURST_THRESHOLD": "5",
                               "ORCHESTRATOR_BURST_WINDOW_SECONDS": "2",
                               "ORCHESTRATOR_BURST_HOLD_SECONDS": "0"}).burst
    assert (on.enabled, set(on.environments), on.threshold, on.window, on.hold) == \
        (True, {"acme", "beta"}, 5, timedelta(seconds=2), timedelta(0))
    assert not ApiSettings.from_env({**home, "ORCHESTRATOR_BURST_GATE": "maybe"}).burst.enabled
    with pytest.raises(InvalidInput) as caught:
        ApiSettings.from_env({**home, "ORCHESTRATOR_BURST_WINDOW_SECONDS": "0"})
    [problem] = caught.value.problems
    assert (problem.field, problem.message) == (
        "ORCHESTRATOR_BURST_WINDOW_SECONDS",
        "'0' is not allowed; use a whole number from 1 to 86400")
    with pytest.raises(InvalidInput) as caught:  # housekeeping keeps a day of counters
        ApiSettings.from_env({**home, "ORCHESTRATOR_BURST_WINDOW_SECONDS": "86401"})
    assert caught.value.problems[0].message == \
        "'86401' is not allowed; use a whole number from 1 to 86400"

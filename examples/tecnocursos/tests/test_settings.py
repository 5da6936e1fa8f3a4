"""Settings: the TC_ prefix, the app's sections, per-environment defaults, deploy rules."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fastapi_enterprise import DeployCheckError, SettingsValidationError
from tecnocursos.core.app import create_app
from tecnocursos.core.settings import TecnoCursosSettings

STRONG = "Q2v9xL7mR4pT8kW3nZ6yB1cF5hJ0dG2sA7eU4iO9"


def _ids(settings: TecnoCursosSettings) -> dict[str, str]:
    return {finding.id: finding.level for finding in settings.deploy_check()}


def test_environment_variables_use_the_tc_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TC_AUTH__ACCESS_TOKEN_TTL", "600")
    monkeypatch.setenv("TC_AI__OPENAI_API_KEY", "sk-test-value")
    monkeypatch.setenv("TC_STORAGE__LOCAL_DIR", "/srv/media")
    monkeypatch.setenv("FE_AUTH__ACCESS_TOKEN_TTL", "1")  # the library's prefix is not read
    settings = TecnoCursosSettings(_env_file=None)
    assert settings.auth.access_token_ttl == timedelta(minutes=10)
    assert settings.storage.local_dir == Path("/srv/media")
    assert settings.ai.openai_api_key is not None
    assert settings.ai.openai_api_key.get_secret_value() == "sk-test-value"
    assert "sk-test-value" not in str(settings.safe_dump())
    assert settings.app.name == "TecnoCursos"


def test_an_empty_worker_metrics_port_turns_the_worker_s_metrics_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TC_VIDEO__WORKER_METRICS_PORT", "")
    assert TecnoCursosSettings(_env_file=None).video.worker_metrics_port is None
    monkeypatch.setenv("TC_VIDEO__WORKER_METRICS_PORT", "9300")
    assert TecnoCursosSettings(_env_file=None).video.worker_metrics_port == 9300
    monkeypatch.setenv("TC_VIDEO__WORKER_METRICS_PORT", "0")
    with pytest.raises(SettingsValidationError):
        TecnoCursosSettings(_env_file=None)


def test_an_app_variable_keeps_the_app_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``TC_APP__*`` variable builds the section anew: the name stays the app's."""
    monkeypatch.setenv("TC_APP__DOCS_OFFLINE", "true")
    settings = TecnoCursosSettings(_env_file=None)
    assert settings.app.docs_offline is True
    assert settings.app.name == "TecnoCursos"
    assert settings.fastapi_kwargs()["title"] == "TecnoCursos"


@pytest.mark.parametrize(
    ("environment", "costs"),
    [("test", (1, 8192)), ("development", (3, 65536)), ("production", (3, 65536))],
)
def test_argon2_costs_default_by_environment(environment: str, costs: tuple[int, int]) -> None:
    settings = TecnoCursosSettings(environment=environment)
    assert (settings.auth.argon2_time_cost, settings.auth.argon2_memory_cost) == costs


def test_an_explicit_cost_beats_the_environment_default() -> None:
    settings = TecnoCursosSettings(environment="test", auth={"argon2_time_cost": 4})
    assert (settings.auth.argon2_time_cost, settings.auth.argon2_memory_cost) == (4, 8192)


@pytest.mark.parametrize(
    "auth",
    [{"algorithm": "none"}, {"algorithm": "RS256"}, {"max_failed_logins": 0}, {"typo": 1}],
)
def test_bad_auth_settings_are_refused(auth: dict[str, Any]) -> None:
    with pytest.raises(SettingsValidationError):
        TecnoCursosSettings(auth=auth)


def test_the_deploy_check_adds_the_apps_rules() -> None:
    weak = TecnoCursosSettings(
        environment="production",
        auth={"jwt_secret": "changeme", "argon2_time_cost": 1},
        storage={"local_dir": "media"},
    )
    found = _ids(weak)
    assert found["tecnocursos.auth.jwt_secret_weak"] == "error"
    assert found["tecnocursos.auth.password_hashing_weak"] == "error"
    assert found["tecnocursos.storage.relative_dir"] == "warning"
    assert found["tecnocursos.video.embedded_queue"] == "error"  # renders in the API
    assert any(finding_id.startswith("security.") for finding_id in found)  # the library's
    for finding in weak.deploy_check():
        assert "changeme" not in str(finding)
    sound = TecnoCursosSettings(
        environment="production",
        auth={"jwt_secret": STRONG},
        storage={"local_dir": "/srv/m"},
        video={"queue": "redis"},
    )
    assert not [finding_id for finding_id in _ids(sound) if finding_id.startswith("tecnocursos.")]


@pytest.mark.usefixtures("restore_logging")
def test_a_production_app_with_a_weak_jwt_secret_does_not_start() -> None:
    settings = TecnoCursosSettings(environment="production", auth={"jwt_secret": "changeme"})
    with pytest.raises(DeployCheckError) as caught:
        create_app(settings)
    assert "tecnocursos.auth.jwt_secret_weak" in {finding.id for finding in caught.value.findings}

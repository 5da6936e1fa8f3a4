"""An application's own deploy-check rules run with the library's, everywhere it runs."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from fastapi_enterprise import DeployCheckError, DeployChecks, EnterpriseSettings, install
from fastapi_enterprise.cli import main
from fastapi_enterprise.deploy_check import Outcome, run_deploy_check
from tests.test_deploy_check import safe_values

course_checks: DeployChecks[CourseSettings] = DeployChecks()


class Uploads(BaseModel):
    max_mb: int = 100
    directory: Path = Path("/srv/uploads")


class CourseSettings(EnterpriseSettings):
    deploy_checks: ClassVar[DeployChecks[Any] | None] = course_checks
    uploads: Uploads = Uploads()


@course_checks.register(
    "courses.uploads.too_large",
    "error",
    ["uploads.max_mb"],
    "uploads over 1 GB",
    "Set uploads.max_mb to 1024 or less.",
)
def _too_large(settings: CourseSettings) -> Outcome:
    return "uploads.max_mb is over 1 GB." if settings.uploads.max_mb > 1024 else None


@course_checks.register(
    "courses.uploads.relative_dir",
    "warning",
    ["uploads.directory"],
    "a relative upload directory",
    "Set uploads.directory to an absolute path.",
)
def _relative(settings: CourseSettings) -> Outcome:
    return None if settings.uploads.directory.is_absolute() else "uploads.directory is relative."


def course_settings(**uploads: object) -> CourseSettings:
    return CourseSettings(**safe_values(uploads=uploads))


def test_safe_app_settings_have_no_finding() -> None:
    assert course_settings().deploy_check() == []


class PrefixedSettings(EnterpriseSettings):
    model_config = SettingsConfigDict(env_prefix="COURSES_")


def test_fixes_name_the_variables_of_the_settings_class_s_own_prefix() -> None:
    """A subclass read from ``COURSES_*`` is told to set ``COURSES_...``, not ``FE_...``."""
    library = {
        finding.id: finding.fix
        for finding in EnterpriseSettings(**safe_values(app={"debug": True})).deploy_check()
    }
    prefixed = {
        finding.id: finding.fix
        for finding in PrefixedSettings(**safe_values(app={"debug": True})).deploy_check()
    }
    assert "FE_APP__DEBUG" in library["app.debug_enabled"]
    assert "FE_" not in prefixed["app.debug_enabled"]
    assert prefixed["app.debug_enabled"] == library["app.debug_enabled"].replace("FE_", "COURSES_")


def test_app_rules_join_the_library_findings_errors_first() -> None:
    settings = CourseSettings(
        **safe_values(uploads={"max_mb": 2048, "directory": "media"}, app={"debug": True})
    )
    findings = settings.deploy_check()
    assert [(finding.id, finding.level) for finding in findings] == [
        ("app.debug_enabled", "error"),
        ("courses.uploads.too_large", "error"),
        ("courses.uploads.relative_dir", "warning"),
    ]
    assert findings[1].fix == "Set uploads.max_mb to 1024 or less."
    assert findings[1].message == "uploads.max_mb is over 1 GB."


def test_an_outcome_can_lower_the_level() -> None:
    checks: DeployChecks[EnterpriseSettings] = DeployChecks()
    checks.add("x.lowered", "error", [], "always", "nothing", lambda _: ("lowered", "warning"))
    settings = EnterpriseSettings(**safe_values())
    [finding] = run_deploy_check(settings, checks)
    assert (finding.id, finding.level, finding.message) == ("x.lowered", "warning", "lowered")
    assert len(checks) == 1
    assert checks.run(settings) == [finding]


def test_the_library_settings_carry_no_app_rules() -> None:
    assert EnterpriseSettings.deploy_checks is None
    assert CourseSettings.deploy_checks is course_checks
    assert [check.id for check in course_checks] == [
        "courses.uploads.too_large",
        "courses.uploads.relative_dir",
    ]
    assert "deploy_checks" not in CourseSettings.model_fields  # not a setting


def test_install_refuses_production_on_an_app_rule_error() -> None:
    with pytest.raises(DeployCheckError) as caught:
        install(FastAPI(), course_settings(max_mb=4096))
    assert [finding.id for finding in caught.value.findings] == ["courses.uploads.too_large"]
    assert "courses.uploads.too_large" in str(caught.value)


def test_install_logs_an_app_rule_warning_and_starts(caplog: pytest.LogCaptureFixture) -> None:
    # Memory rate-limit storage: the suite also runs without the redis extra
    # (tests_minimal); its own warning is left out of the comparison below.
    settings = CourseSettings(
        **safe_values(uploads={"directory": "media"}, rate_limit={"storage_url": "memory://"})
    )
    with caplog.at_level(logging.WARNING, logger="fastapi_enterprise.security"):
        install(FastAPI(), settings)
    found = [getattr(record, "finding_id", None) for record in caplog.records]
    assert [finding for finding in found if str(finding).startswith("courses.")] == [
        "courses.uploads.relative_dir"
    ]
    assert set(found) == {"courses.uploads.relative_dir", "rate_limit.memory_storage"}


def test_the_check_command_prints_app_rules(tmp_path: Path) -> None:
    (tmp_path / "course_app_settings.py").write_text(
        "from typing import Any, ClassVar\n"
        "from fastapi_enterprise import DeployChecks, EnterpriseSettings\n"
        "checks: DeployChecks[Any] = DeployChecks()\n"
        "checks.add('courses.always', 'warning', [], 'always', 'Nothing to do.',\n"
        "           lambda settings: 'always fires.')\n"
        "class Settings(EnterpriseSettings):\n"
        "    deploy_checks: ClassVar[DeployChecks[Any] | None] = checks\n"
    )
    out = io.StringIO()
    code = main(
        ["--app-dir", str(tmp_path), "check", "--settings", "course_app_settings:Settings"],
        stdout=out,
    )
    assert code == 1  # development defaults have no secret key
    assert "[warning] courses.always: always fires. Fix: Nothing to do." in out.getvalue()


@pytest.mark.parametrize(
    ("check_id", "level", "error"),
    [("", "error", "empty or declared twice"), ("x.a", "fatal", "level must be")],
)
def test_a_bad_rule_is_refused_where_it_is_declared(check_id: str, level: Any, error: str) -> None:
    checks: DeployChecks[EnterpriseSettings] = DeployChecks()
    with pytest.raises(ValueError, match=error):
        checks.add(check_id, level, [], "when", "fix", lambda _: None)


def test_a_rule_id_cannot_be_declared_twice() -> None:
    checks: DeployChecks[EnterpriseSettings] = DeployChecks()
    checks.add("x.a", "error", [], "when", "fix", lambda _: None)
    with pytest.raises(ValueError, match="declared twice"):
        checks.add("x.a", "warning", [], "when", "fix", lambda _: None)

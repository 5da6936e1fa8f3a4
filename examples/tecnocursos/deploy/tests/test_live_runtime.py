"""The runtime contract on the command line (``TC_RUNTIME``), as the deploy scripts use it."""

from __future__ import annotations

import subprocess
import sys

import httpx2

from conftest import Deployment


def run(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    """``$TC_RUNTIME args...`` of the session's deployment."""
    return subprocess.run(
        [*deployment.command, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_url_prints_each_instance_base_url_for_direct_checks(deployment: Deployment) -> None:
    for service in ("app1", "app2"):
        result = run(deployment, "url", service)
        assert result.returncode == 0, result.stderr
        url = result.stdout.strip()
        assert url == f"http://{deployment.upstream(service)}"
        assert httpx2.get(f"{url}/health/ready", timeout=10).status_code == 200


def test_exec_runs_with_the_release_environment_and_returns_its_status(
    deployment: Deployment,
) -> None:
    release = str(deployment.root / "current")
    script = "import os, sys; print(os.environ['TC_ENVIRONMENT']); sys.exit(3)"
    result = run(deployment, "exec", release, sys.executable, "-c", script)
    assert (result.returncode, result.stdout.strip()) == (3, "test")


def test_migrate_and_nginx_test_succeed_on_the_running_deployment(
    deployment: Deployment,
) -> None:
    migrated = run(deployment, "migrate", str(deployment.root / "current"))
    assert migrated.returncode == 0, migrated.stderr
    checked = run(deployment, "nginx-test")
    assert checked.returncode == 0, checked.stderr


def test_a_start_from_a_release_without_release_env_fails_clearly(
    deployment: Deployment,
) -> None:
    result = run(deployment, "start", "worker", str(deployment.root / "releases" / "missing"))
    assert result.returncode == 1
    assert "release.env does not exist" in result.stderr
    assert deployment.runtime.pid("worker") is not None

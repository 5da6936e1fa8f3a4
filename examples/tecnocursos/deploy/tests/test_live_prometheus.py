"""Prometheus scrapes both instances and the worker, and loads every alert rule file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from conftest import Deployment

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


def alert_names(path: Path) -> set[str]:
    """The ``alert:`` names of a rule file."""
    return {
        line.split("alert:", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.strip().startswith("- alert:")
    }


def api(deployment: Deployment, path: str) -> Any:
    """``data`` of a Prometheus HTTP API answer."""
    response = httpx2.get(f"{deployment.runtime.prometheus_url()}/api/v1/{path}", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def test_every_target_is_scraped_and_up(deployment: Deployment) -> None:
    expected = {
        ("tecnocursos-app", deployment.upstream("app1")),
        ("tecnocursos-app", deployment.upstream("app2")),
        ("tecnocursos-video-worker", deployment.upstream("worker")),
    }

    def all_up() -> list[dict[str, Any]] | None:
        targets: list[dict[str, Any]] = api(deployment, "targets")["activeTargets"]
        if all(target["health"] == "up" for target in targets):
            return targets
        return None

    targets = deployment.wait_for(all_up, timeout=30, what="every target up")
    assert {(t["labels"]["job"], t["labels"]["instance"]) for t in targets} == expected


def test_the_app_and_library_alert_rules_are_loaded(deployment: Deployment) -> None:
    expected = set()
    for path in MONITORING.glob("*.yml"):
        expected |= alert_names(path)
    assert {"VideoWorkersDown", "RateLimitStorageDown", "HighErrorRatio"} <= expected
    groups = api(deployment, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    loaded = {rule["name"] for rule in rules if rule["type"] == "alerting"}
    assert loaded == expected
    assert all(rule["health"] != "err" for rule in rules)

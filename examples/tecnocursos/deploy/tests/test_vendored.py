"""Vendored copies stay identical to their sources in the repository."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
REPOSITORY = PROJECT.parents[1]


def test_library_alert_rules_are_vendored_unchanged() -> None:
    source = REPOSITORY / "docs" / "metrics" / "alerts.rules.yml"
    copy = PROJECT / "monitoring" / "library-alerts.rules.yml"
    assert copy.read_bytes() == source.read_bytes(), f"copy {source} to {copy}"

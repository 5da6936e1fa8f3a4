"""What a deploy check is, what it finds, and how the checks of one area are declared."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = [
    "GENERATE_KEY",
    "Checks",
    "DeployCheck",
    "DeployCheckError",
    "Finding",
    "Level",
    "Outcome",
    "Test",
    "positions",
]

Level = Literal["error", "warning"]
Outcome = str | tuple[str, Level] | None
Test = Callable[["EnterpriseSettings"], Outcome]

GENERATE_KEY = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
"""The command the fixes of weak secrets and tokens suggest."""

_Entry = TypeVar("_Entry")


@dataclass(frozen=True)
class Finding:
    """One problem found by the deploy check."""

    id: str
    """Stable identifier, e.g. ``security.secret_key_weak``; safe to match on."""

    level: Level
    """``error`` stops a production start; ``warning`` is logged."""

    message: str
    """What is wrong. Never contains a secret."""

    fix: str
    """How to fix it."""

    def __str__(self) -> str:
        return f"[{self.level}] {self.id}: {self.message} Fix: {self.fix}"


@dataclass(frozen=True)
class DeployCheck:
    """One rule of the deploy check, as documented in the settings guide."""

    id: str
    """Stable identifier of the findings it yields."""

    level: Level
    """Its usual level (a check may lower an error to a warning when acknowledged)."""

    settings: tuple[str, ...]
    """The settings it reads, dotted (``security.trusted_proxies``)."""

    when: str
    """When it fires, in one line."""

    fix: str
    """How to fix what it finds."""

    test: Test
    """Returns the message (and the level, when it differs), or ``None``."""


class DeployCheckError(RuntimeError):
    """The settings are not safe for production; raised by ``install()`` at startup."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        lines = [f"refusing to start in production: {len(findings)} deploy check error(s)"]
        lines.extend(f"  - {finding}" for finding in findings)
        super().__init__("\n".join(lines))


class Checks:
    """The checks of one area, in the order they are declared (the order they run)."""

    def __init__(self) -> None:
        self._checks: list[DeployCheck] = []

    def __iter__(self) -> Iterator[DeployCheck]:
        return iter(self._checks)

    def add(
        self, check_id: str, level: Level, settings: Sequence[str], when: str, fix: str, test: Test
    ) -> None:
        """Declare a check (see :class:`DeployCheck` for what each argument is)."""
        self._checks.append(DeployCheck(check_id, level, tuple(settings), when, fix, test))

    def register(
        self, check_id: str, level: Level, settings: Sequence[str], when: str, fix: str
    ) -> Callable[[Test], Test]:
        """Declare a check by decorating its test; the arguments are those of :meth:`add`."""

        def register(test: Test) -> Test:
            self.add(check_id, level, settings, when, fix, test)
            return test

        return register


def positions(entries: Iterable[_Entry], selected: Callable[[_Entry], bool]) -> str:
    """The 1-based positions of the selected entries, ``"2, 5"``; empty when none is.

    Messages name list entries by position, never by value.
    """
    return ", ".join(
        str(position) for position, entry in enumerate(entries, start=1) if selected(entry)
    )

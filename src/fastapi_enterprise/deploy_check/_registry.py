"""What a deploy check is, what it finds, and how the checks of one area are declared."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = [
    "GENERATE_KEY",
    "Checks",
    "DeployCheck",
    "DeployCheckError",
    "DeployChecks",
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
S = TypeVar("S", bound="EnterpriseSettings")


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
class DeployCheck(Generic[S]):
    """One rule of the deploy check, as documented in the settings guide.

    Generic in the settings class its test reads (``EnterpriseSettings`` or a subclass).
    """

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

    test: Callable[[S], Outcome]
    """Returns the message (and the level, when it differs), or ``None``."""

    def run(self, settings: S) -> Finding | None:
        """Test ``settings``; the finding, or ``None`` when the rule holds."""
        outcome = self.test(settings)
        if outcome is None:
            return None
        message, level = outcome if isinstance(outcome, tuple) else (outcome, self.level)
        return Finding(self.id, level, message, _in_prefix(self.fix, settings))


_LIBRARY_VARIABLE = re.compile(r"\bFE_(?=[A-Z])")


def _in_prefix(fix: str, settings: object) -> str:
    """``fix`` with the library's ``FE_`` variables under the settings class's own prefix.

    A subclass read from ``MYAPP_*`` variables must be told to set ``MYAPP_SECURITY__...``:
    ``FE_SECURITY__...`` would be ignored by it.
    """
    config = getattr(type(settings), "model_config", {})
    prefix = config.get("env_prefix") if isinstance(config, dict) else None
    if not isinstance(prefix, str) or prefix in {"", "FE_"}:
        return fix
    return _LIBRARY_VARIABLE.sub(prefix.upper(), fix)


class DeployCheckError(RuntimeError):
    """The settings are not safe for production; raised by ``install()`` at startup."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        lines = [f"refusing to start in production: {len(findings)} deploy check error(s)"]
        lines.extend(f"  - {finding}" for finding in findings)
        super().__init__("\n".join(lines))


class DeployChecks(Generic[S]):
    """A registry of deploy-check rules, in the order they are declared (and run).

    The library declares its own rules in registries like this one; an application
    declares its rules in one of its own and hands it to its settings class, whose
    ``deploy_check()`` (and so ``install()``'s production refusal and
    ``fastapi-enterprise check``) then runs them after the library's:

    ```python
    app_checks: DeployChecks[MySettings] = DeployChecks()


    class MySettings(EnterpriseSettings):
        deploy_checks: ClassVar[DeployChecks[Any]] = app_checks
        auth: AuthSettings = AuthSettings()


    @app_checks.register(
        "myapp.auth.token_ttl_long",
        "warning",
        ["auth.token_ttl"],
        when="access tokens live over an hour",
        fix="Set MYAPP_AUTH__TOKEN_TTL to 3600 or less.",
    )
    def _token_ttl(settings: MySettings) -> Outcome:
        if settings.auth.token_ttl > 3600:
            return "auth.token_ttl is over an hour: a stolen token stays useful."
        return None
    ```
    """

    def __init__(self) -> None:
        """Start an empty registry."""
        self._checks: list[DeployCheck[S]] = []

    def __iter__(self) -> Iterator[DeployCheck[S]]:
        """The rules, in the order they were declared."""
        return iter(self._checks)

    def __len__(self) -> int:
        """How many rules are declared."""
        return len(self._checks)

    def add(
        self,
        check_id: str,
        level: Level,
        settings: Sequence[str],
        when: str,
        fix: str,
        test: Callable[[S], Outcome],
    ) -> None:
        """Declare a rule (see :class:`DeployCheck` for what each argument is).

        Raises:
            ValueError: ``check_id`` is empty or already declared here, or ``level`` is
                neither ``error`` nor ``warning``.
        """
        if not check_id or any(check.id == check_id for check in self._checks):
            raise ValueError(f"deploy check id {check_id!r} is empty or declared twice")
        if level not in ("error", "warning"):
            raise ValueError(f"deploy check {check_id!r}: level must be 'error' or 'warning'")
        self._checks.append(DeployCheck(check_id, level, tuple(settings), when, fix, test))

    def register(
        self, check_id: str, level: Level, settings: Sequence[str], when: str, fix: str
    ) -> Callable[[Callable[[S], Outcome]], Callable[[S], Outcome]]:
        """Declare a rule by decorating its test; the arguments are those of :meth:`add`."""

        def register(test: Callable[[S], Outcome]) -> Callable[[S], Outcome]:
            self.add(check_id, level, settings, when, fix, test)
            return test

        return register

    def run(self, settings: S) -> list[Finding]:
        """Test ``settings`` against every rule, in order; the findings, unsorted."""
        return [finding for check in self._checks if (finding := check.run(settings))]


class Checks(DeployChecks["EnterpriseSettings"]):
    """The library's checks of one area (a registry over ``EnterpriseSettings``)."""


def positions(entries: Iterable[_Entry], selected: Callable[[_Entry], bool]) -> str:
    """The 1-based positions of the selected entries, ``"2, 5"``; empty when none is.

    Messages name list entries by position, never by value.
    """
    return ", ".join(
        str(position) for position, entry in enumerate(entries, start=1) if selected(entry)
    )

"""The deploy check: what must be fixed before these settings go to production.

Like Django's ``manage.py check --deploy``: every check in :data:`DEPLOY_CHECKS` has a
stable ``id``, a level, the settings it reads and a fix; each problem it finds is a
:class:`Finding`. ``install()`` refuses to start a production app with any error-level
finding and logs the warnings. Messages name settings (and list positions), never
their values.

Errors are settings that switch off a protection the library promises (HSTS, proxy
trust, the secret key, script restrictions) or make a configured limit untrue; warnings
are choices that are unsafe for most apps but deliberate for some (public docs, no CSP
on a JSON API, memory storage on a single process).

Policies that are unsafe in every environment (``*`` or an any-host regex with CORS
credentials, malformed CORS origins, CSPs, proxy entries, header values) are not deploy
checks: the settings refuse them at construction.

The checks are declared by area, in the order they run: the app and its secret key
(``_app``), who may reach it and how (``_network``: CORS, proxies, hosts, HSTS), what
responses tell browsers (``_headers``: CSP, framing, referrer), rate limiting
(``_rate_limit``), and operations (``_operations``: metrics, database, bodies, logging,
Sentry). ``_registry`` defines what a check and a finding are, ``_entropy`` how
guessable a secret is, and ``_workers`` how many processes serve the app.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from fastapi_enterprise.deploy_check import _app, _headers, _network, _operations, _rate_limit
from fastapi_enterprise.deploy_check._entropy import estimate_entropy_bits
from fastapi_enterprise.deploy_check._registry import (
    DeployCheck,
    DeployCheckError,
    DeployChecks,
    Finding,
)
from fastapi_enterprise.deploy_check._registry import Level as Level
from fastapi_enterprise.deploy_check._registry import Outcome as Outcome
from fastapi_enterprise.deploy_check._workers import worker_processes

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = [
    "DEPLOY_CHECKS",
    "DeployCheck",
    "DeployCheckError",
    "DeployChecks",
    "Finding",
    "estimate_entropy_bits",
    "run_deploy_check",
    "worker_processes",
]

S = TypeVar("S", bound="EnterpriseSettings")

DEPLOY_CHECKS: tuple[DeployCheck[EnterpriseSettings], ...] = tuple(
    itertools.chain(
        _app.checks, _network.checks, _headers.checks, _rate_limit.checks, _operations.checks
    )
)
"""Every check, in the order it runs; ``docs/how-to/settings.md`` lists the same IDs."""


def run_deploy_check(settings: S, extra: Iterable[DeployCheck[S]] = ()) -> list[Finding]:
    """Run every check against ``settings``; errors come first, then warnings.

    Args:
        settings: The settings to check.
        extra: The application's own rules (a :class:`DeployChecks`), run after the
            library's.
    """
    findings = [finding for check in DEPLOY_CHECKS if (finding := check.run(settings))]
    findings.extend(finding for check in extra if (finding := check.run(settings)))
    return sorted(findings, key=lambda finding: finding.level != "error")

"""Deploy checks of the app itself and its secret key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi_enterprise.deploy_check._entropy import weak_secret
from fastapi_enterprise.deploy_check._registry import GENERATE_KEY, Checks, Outcome

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = ["checks"]

_MIN_SECRET_LENGTH = 32
_MIN_SECRET_BITS = 128

checks = Checks()


@checks.register(
    "app.debug_enabled",
    "error",
    ["app.debug"],
    "`app.debug` is on: tracebacks in responses",
    "Set FE_APP__DEBUG=false in production.",
)
def _debug(settings: EnterpriseSettings) -> Outcome:
    return "app.debug is on." if settings.app.debug else None


@checks.register(
    "app.docs_public",
    "warning",
    ["app.docs"],
    "API docs (`/docs`, `/redoc`, `/openapi.json`) served in production",
    "Set FE_APP__DOCS=false unless the API is meant to be public.",
)
def _docs(settings: EnterpriseSettings) -> Outcome:
    if settings.app.docs and settings.is_production:
        return "API docs (/docs, /redoc, /openapi.json) are served in production."
    return None


@checks.register(
    "security.secret_key_missing",
    "error",
    ["security.secret_key"],
    "no secret key",
    f"Set FE_SECURITY__SECRET_KEY to a random value, e.g. the output of {GENERATE_KEY}.",
)
def _secret_missing(settings: EnterpriseSettings) -> Outcome:
    return "security.secret_key is not set." if _secret_key(settings) is None else None


@checks.register(
    "security.secret_key_weak",
    "error",
    ["security.secret_key"],
    "under 32 characters, an estimated entropy under 128 bits (repeats, runs such as "
    "`abc`/`123`, keyboard rows), or a placeholder",
    f"Generate one with {GENERATE_KEY}.",
)
def _secret_weak(settings: EnterpriseSettings) -> Outcome:
    secret = _secret_key(settings)
    if secret is not None and weak_secret(secret, _MIN_SECRET_LENGTH, _MIN_SECRET_BITS):
        return (
            f"security.secret_key is weak: it needs at least {_MIN_SECRET_LENGTH} characters "
            f"and about {_MIN_SECRET_BITS} bits of entropy (repeated blocks, runs such as "
            "'abc' or '123' and keyboard rows count for little), and must not be a "
            "placeholder."
        )
    return None


def _secret_key(settings: EnterpriseSettings) -> str | None:
    """The secret key; ``None`` when it is not set or empty."""
    secret = settings.security.secret_key
    value = secret.get_secret_value() if secret is not None else ""
    return value or None

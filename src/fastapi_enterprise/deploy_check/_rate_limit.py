"""Deploy checks of rate limiting: on, enforced, and counted in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi_enterprise.deploy_check._registry import Checks, Outcome
from fastapi_enterprise.deploy_check._workers import worker_processes

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = ["checks"]

checks = Checks()


@checks.register(
    "rate_limit.disabled",
    "warning",
    ["rate_limit.enabled"],
    "rate limiting is off",
    "Remove FE_RATE_LIMIT__ENABLED=false unless a gateway limits every route.",
)
def _rate_limit_off(settings: EnterpriseSettings) -> Outcome:
    if not settings.rate_limit.enabled:
        return "rate_limit.enabled is off: nothing limits brute force or scraping."
    return None


@checks.register(
    "rate_limit.no_default",
    "warning",
    ["rate_limit.default"],
    "no app-wide default limit",
    "Set FE_RATE_LIMIT__DEFAULT, e.g. 100/minute.",
)
def _no_default(settings: EnterpriseSettings) -> Outcome:
    options = settings.rate_limit
    if options.enabled and options.default is None:
        return (
            "rate_limit.default is empty: only routes with their own limit are limited, "
            "and 404 scans are not."
        )
    return None


@checks.register(
    "rate_limit.shadow",
    "warning",
    ["rate_limit.shadow"],
    "shadow mode: rejections are logged, not enforced",
    "Set FE_RATE_LIMIT__SHADOW=false once the limits are tuned.",
)
def _shadow(settings: EnterpriseSettings) -> Outcome:
    if settings.rate_limit.enabled and settings.rate_limit.shadow:
        return "rate_limit.shadow is on: every limit is reported and none is enforced."
    return None


_MEMORY_FIX = (
    "Share one storage between workers and hosts: "
    "FE_RATE_LIMIT__STORAGE_URL=redis://... (or rediss://, redis+sentinel://)."
)


@checks.register(
    "rate_limit.memory_storage_multi_worker",
    "error",
    ["rate_limit.storage_url"],
    "`memory://` storage while several worker processes are detected (`WEB_CONCURRENCY`, "
    "`--workers` of gunicorn/uvicorn/hypercorn, `PROMETHEUS_MULTIPROC_DIR`)",
    _MEMORY_FIX,
)
def _memory_workers(settings: EnterpriseSettings) -> Outcome:
    workers = worker_processes()
    if _uses_memory(settings) and workers is not None and workers > 1:
        return (
            f"rate_limit.storage_url is memory:// and the server runs {workers} worker "
            f"processes: each counts alone, so clients get {workers} times every limit."
        )
    return None


@checks.register(
    "rate_limit.memory_storage",
    "warning",
    ["rate_limit.storage_url"],
    "`memory://` storage (per process) in production",
    _MEMORY_FIX,
)
def _memory(settings: EnterpriseSettings) -> Outcome:
    workers = worker_processes()
    if settings.is_production and _uses_memory(settings) and (workers is None or workers <= 1):
        return (
            "rate_limit.storage_url is memory://: each worker process and host counts alone, "
            "so with N of them clients get N times every limit."
        )
    return None


def _uses_memory(settings: EnterpriseSettings) -> bool:
    url = settings.rate_limit.storage_url.get_secret_value().lower().removeprefix("async+")
    return settings.rate_limit.enabled and url.startswith("memory://")


@checks.register(
    "rate_limit.ip_key_without_proxies",
    "warning",
    ["rate_limit.key", "security.trusted_proxies"],
    "limits keyed on the client IP with no trusted proxy: behind a proxy every client "
    "shares its budget",
    "List your reverse proxies in FE_SECURITY__TRUSTED_PROXIES (or ignore this if clients "
    "connect directly).",
)
def _ip_without_proxies(settings: EnterpriseSettings) -> Outcome:
    options = settings.rate_limit
    if options.enabled and options.key == "ip" and not settings.security.trusted_proxies:
        return (
            "rate_limit.key is ip and security.trusted_proxies is empty: behind a reverse "
            "proxy every client has the proxy's address, and shares one budget."
        )
    return None

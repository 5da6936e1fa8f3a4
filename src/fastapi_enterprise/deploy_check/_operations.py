"""Deploy checks of operations: metrics, database, request bodies, logging, Sentry."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi_enterprise.client_ip import is_private_network, parse_networks
from fastapi_enterprise.deploy_check._entropy import weak_secret
from fastapi_enterprise.deploy_check._registry import GENERATE_KEY, Checks, Outcome, positions

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = ["checks"]

_MIN_TOKEN_BITS = 64

checks = Checks()


@checks.register(
    "metrics.allow_ips_public",
    "warning",
    ["metrics.allow_ips"],
    "`/metrics` open to networks that reach public address space",
    "Limit FE_METRICS__ALLOW_IPS to your Prometheus servers, or use a bearer token.",
)
def _metrics_public(settings: EnterpriseSettings) -> Outcome:
    if settings.metrics.enabled is False:
        return None
    networks = parse_networks(settings.metrics.allow_ips)
    public = positions(networks, lambda network: not is_private_network(network))
    if public:
        return (
            f"metrics.allow_ips entries {public} reach public address space: "
            "anyone there can read the routes, traffic and errors of the app."
        )
    return None


@checks.register(
    "metrics.bearer_token_weak",
    "warning",
    ["metrics.bearer_token"],
    "a `/metrics` bearer token under 16 characters or 64 bits of estimated entropy",
    f"Generate one with {GENERATE_KEY}.",
)
def _metrics_token(settings: EnterpriseSettings) -> Outcome:
    token = settings.metrics.bearer_token
    if token is not None and weak_secret(token.get_secret_value(), 16, _MIN_TOKEN_BITS):
        return "metrics.bearer_token is short, guessable or a placeholder."
    return None


@checks.register(
    "database.echo",
    "warning",
    ["database.echo"],
    "every SQL statement logged, with its parameters",
    "Set FE_DATABASE__ECHO=false in production.",
)
def _database_echo(settings: EnterpriseSettings) -> Outcome:
    if settings.database.echo:
        return "database.echo is on: statements and their parameters (personal data) are logged."
    return None


def _configured_backend(settings: EnterpriseSettings) -> str | None:
    """The backend ``database.url`` names (``sqlite``, ``postgresql``, ``mysql``, ...).

    ``None`` when the ``database`` section was not configured: the default SQLite URL of
    an app that has no database is not a finding.
    """
    if "database" not in settings.model_fields_set:
        return None
    scheme = settings.database.url.get_secret_value().partition(":")[0]
    return scheme.lower().partition("+")[0]


@checks.register(
    "database.sqlite_in_production",
    "warning",
    ["database.url"],
    "SQLite as the production database",
    "Use PostgreSQL or MySQL/MariaDB; SQLite allows one writer at a time, on one machine.",
)
def _sqlite_in_production(settings: EnterpriseSettings) -> Outcome:
    if _configured_backend(settings) == "sqlite" and settings.environment.value == "production":
        return (
            "database.url is SQLite: one writer at a time, a file on one machine, no "
            "failover; the app's instances cannot share it."
        )
    return None


# MySQL and MariaDB close a connection idle for wait_timeout seconds (8 hours unless set).
_MYSQL_WAIT_TIMEOUT = 28800


@checks.register(
    "database.recycle_above_idle_timeout",
    "warning",
    ["database.pool_recycle", "database.server_idle_timeout"],
    "pooled connections kept longer than the server keeps an idle connection",
    "Set FE_DATABASE__POOL_RECYCLE below the server's idle timeout (wait_timeout).",
)
def _recycle_above_idle(settings: EnterpriseSettings) -> Outcome:
    backend = _configured_backend(settings)
    if backend is None:
        return None
    database = settings.database
    idle = database.server_idle_timeout
    if idle is None and backend in ("mysql", "mariadb"):
        idle = _MYSQL_WAIT_TIMEOUT
    if idle is None or (0 <= database.pool_recycle < idle):
        return None
    kept = "forever" if database.pool_recycle < 0 else f"{database.pool_recycle} s"
    return (
        f"database.pool_recycle keeps connections {kept}, but the server drops idle ones "
        f"after {idle} s: without pre-ping the next request after a quiet period fails."
    )


@checks.register(
    "database.password_in_url",
    "warning",
    ["database.url", "database.password"],
    "the database password written in the URL while a secrets directory is available",
    "Move it to the secrets file database__password (or the whole URL to database__url).",
)
def _password_in_url(settings: EnterpriseSettings) -> Outcome:
    if _configured_backend(settings) is None:
        return None
    from pathlib import Path
    from urllib.parse import urlsplit

    try:
        password = urlsplit(settings.database.url.get_secret_value()).password
    except ValueError:
        return None
    if not password:
        return None
    configured = settings.model_config.get("secrets_dir")
    candidates = [Path(configured)] if isinstance(configured, (str, Path)) else []
    candidates.append(Path("/run/secrets"))  # where Docker and Kubernetes mount secrets
    available = next((path for path in candidates if path.is_dir()), None)
    if available is None:
        return None
    url_file = available / "database__url"
    if url_file.is_file():  # the whole URL, password included, came from the secrets file
        return None
    return (
        f"database.url carries a password while the secrets directory {available} is "
        "available: environment variables and configuration files are easier to leak."
    )


@checks.register(
    "body_limit.no_read_timeout",
    "warning",
    ["body_limit.read_timeout"],
    "no time limit for a request body to arrive (slow-body attacks)",
    "Set FE_BODY_LIMIT__READ_TIMEOUT, e.g. 30.",
)
def _no_read_timeout(settings: EnterpriseSettings) -> Outcome:
    if settings.body_limit.read_timeout is None:
        return (
            "body_limit.read_timeout is off: a client sending a body byte by byte holds a "
            "worker for as long as it likes."
        )
    return None


@checks.register(
    "logging.debug_level",
    "warning",
    ["logging.level"],
    "debug logging in production",
    "Set FE_LOGGING__LEVEL=INFO.",
)
def _debug_logging(settings: EnterpriseSettings) -> Outcome:
    if settings.is_production and settings.logging.level == "DEBUG":
        return "logging.level is DEBUG: libraries log payloads and headers at this level."
    return None


@checks.register(
    "sentry.local_variables",
    "warning",
    ["sentry.include_local_variables"],
    "stack-frame local variables sent to Sentry",
    "Set FE_SENTRY__INCLUDE_LOCAL_VARIABLES=false.",
)
def _sentry_locals(settings: EnterpriseSettings) -> Outcome:
    sentry = settings.sentry
    if sentry.dsn is not None and sentry.include_local_variables:
        return (
            "sentry.include_local_variables is on: locals hold passwords and tokens under "
            "names no scrubber can guess."
        )
    return None


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@checks.register(
    "otel.headers_in_clear",
    "error",
    ["otel.headers", "otel.endpoint"],
    "OpenTelemetry export headers (a collector's API key) sent over plain `http://` to "
    "another host",
    "Use an https:// FE_OTEL__ENDPOINT, or a collector on the same host.",
)
def _otel_headers_in_clear(settings: EnterpriseSettings) -> Outcome:
    otel = settings.otel
    if not (otel.enabled and otel.headers and otel.endpoint is not None):
        return None
    parts = urlsplit(otel.endpoint.get_secret_value())
    if parts.scheme != "http" or (parts.hostname or "") in _LOOPBACK_HOSTS:
        return None
    return (
        f"otel.headers ({len(otel.headers)}) go to the collector over plain http://: "
        "anyone on the network path reads its API key."
    )

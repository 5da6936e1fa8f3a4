"""The nested settings models: one per feature, each documented field by field.

Each model is usable alone (``SecuritySettings(cors_origins=[...])``) and as a section of
:class:`~fastapi_enterprise.settings.EnterpriseSettings` (``FE_SECURITY__CORS_ORIGINS``).

Policies are validated through the objects that enforce them (``CORSPolicy``,
``ContentSecurityPolicy``, ``TrustedProxies``, rate-limit strings, the security-header
checks), so a value the middleware would refuse is refused here, in every environment.
No validator message contains the rejected value: entries are named by position.
Enumerated values (log levels, strategies, modes) are accepted in any case.
"""

from __future__ import annotations

import logging.handlers
import string
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES

from fastapi_enterprise._http import is_header_name
from fastapi_enterprise._urls import (
    REDIS_SCHEMES,
    STORAGE_SCHEMES,
    storage_url_problem,
)
from fastapi_enterprise.settings._fields import (
    SECTION_CONFIG,
    casefold,
    checked_regex,
    checked_url,
    split_list,
)
from fastapi_enterprise.settings.security import SecuritySettings

__all__ = [
    "DSN_MARKER",
    "REDIS_SCHEMES",
    "STORAGE_SCHEMES",
    "AppSettings",
    "BodyLimitSettings",
    "CompressionSettings",
    "DatabaseSettings",
    "Environment",
    "LoggingSettings",
    "MetricsSettings",
    "OTelSettings",
    "RateLimitSettings",
    "RedisSettings",
    "RequestIDSettings",
    "SecuritySettings",
    "SentrySettings",
]

DSN_MARKER = "fastapi_enterprise:dsn"
"""Metadata marking a SecretStr field that holds a connection URL: ``safe_dump()`` shows
it with the password masked instead of hiding it whole."""


class Environment(str, Enum):
    """Where the app runs; several defaults and the deploy check depend on it."""

    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class AppSettings(BaseModel):
    """The application itself: name, version, debug, API docs."""

    model_config = SECTION_CONFIG

    name: str = Field("FastAPI", min_length=1, max_length=200)
    """Application name; the OpenAPI title."""

    version: str = Field("0.1.0", min_length=1, max_length=64)
    """Application version; the OpenAPI version."""

    debug: bool = False
    """Starlette debug mode. Never in production: the deploy check refuses it."""

    docs: bool | None = None
    """Serve ``/docs``, ``/redoc`` and ``/openapi.json``. ``None`` (the default) means
    on in development and test, off in staging and production."""

    description: str | None = None
    """API description shown at the top of the docs (Markdown)."""

    logo_url: str | None = None
    """Logo shown by ReDoc (``x-logo``)."""

    servers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Base URLs listed in the OpenAPI ``servers`` (``https://api.example.com``)."""

    docs_offline: bool = False
    """Serve Swagger UI and ReDoc from the ``fastapi-offline`` package (extra
    ``docs-offline``) instead of a CDN: for closed networks and the strictest CSP."""

    docs_color: str = Field("#0f766e", pattern=r"^#[0-9a-fA-F]{3,8}$")
    """Accent colour of the docs pages."""

    favicon_url: str | None = None
    """Favicon of the docs pages."""

    readable_operation_ids: bool = True
    """Name operations after their endpoint functions (``read_course``) when unique,
    instead of FastAPI's ``read_course_courses__course_id__get``."""

    _split = field_validator("servers", mode="before")(split_list)


class RequestIDSettings(BaseModel):
    """How each request gets its ID."""

    model_config = SECTION_CONFIG

    header_name: str = "X-Request-ID"
    """Request and response header that carries the ID."""

    trust_incoming: bool = True
    """Reuse an ID sent by the client or a proxy when it passes validation. When off,
    every request gets a fresh ID."""

    max_length: int = Field(128, ge=8, le=1024)
    """Longest incoming ID that is reused; longer ones are replaced."""

    pattern: str = r"[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}"
    """Regular expression an incoming ID must match in full to be reused."""

    use_traceparent: bool = False
    """"The request ID is the trace ID": when no valid ID header came in, use the trace-id
    of a valid W3C ``traceparent`` header, else that of the request's OpenTelemetry span.
    Off: the request ID is its own value beside the trace ID (log lines carry both)."""

    @field_validator("header_name")
    @classmethod
    def _check_header(cls, name: str) -> str:
        if not is_header_name(name):
            raise ValueError("must be an HTTP header name (RFC 9110 token, 1-64 characters)")
        return name

    _check_pattern = field_validator("pattern")(checked_regex)


class DatabaseSettings(BaseModel):
    """The SQL database: URL, pool, timeouts (``fastapi_enterprise.database``)."""

    model_config = SECTION_CONFIG

    url: Annotated[SecretStr, DSN_MARKER] = SecretStr("sqlite:///./app.db")
    """SQLAlchemy URL, e.g. ``postgresql+asyncpg://app@db/app``. Shown only with the
    password masked. ``Database`` picks the async driver when the URL names none
    (``postgresql://``: asyncpg, ``mysql://`` / ``mariadb://``: aiomysql, ``sqlite://``:
    aiosqlite)."""

    password: SecretStr | None = None
    """Password used in place of the URL's: keeps the URL in plain configuration and the
    password in a secrets file (``database__password``)."""

    pool_size: int = Field(5, ge=1, le=1000)
    """Connections kept open in the pool."""

    max_overflow: int = Field(10, ge=0, le=1000)
    """Connections opened beyond ``pool_size`` under load."""

    pool_timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds to wait for a free connection before failing (a 503 problem)."""

    pool_recycle: int = Field(1800, ge=-1)
    """Seconds after which a connection is replaced (-1: never); keeps it under the
    server's idle timeout."""

    pool_pre_ping: bool = True
    """Test each connection as it leaves the pool and replace it if the server dropped
    it (a restart, an idle timeout): costs a round trip per checkout. Not applied to
    SQLite, which has no server to drop it."""

    null_pool: bool = False
    """Open a connection per session and close it after (no pool): for tests and for
    processes that run briefly."""

    connect_timeout: float = Field(5.0, gt=0, le=600)
    """Seconds to establish a connection (an unreachable host fails after this)."""

    statement_timeout: float | None = Field(None, gt=0, le=86400)
    """Seconds a statement may run before the server cancels it (a 504 problem);
    PostgreSQL ``statement_timeout``, MariaDB ``max_statement_time``, MySQL
    ``max_execution_time`` (SELECT only). Not applied to SQLite."""

    read_timeout: float | None = Field(None, gt=0, le=86400)
    """Seconds the client waits for any answer of the server (a statement's result, a
    ping) before it drops the connection (a 503 problem): bounds a server that stopped
    answering, which never gets to apply ``statement_timeout``; keep it above that.
    asyncpg (``command_timeout``) and asyncmy (``read_timeout``) only: aiomysql and
    psycopg have no such option, and ``Database`` refuses it with them."""

    server_idle_timeout: int | None = Field(None, ge=1)
    """Seconds after which the server closes an idle connection, when it does (MySQL and
    MariaDB ``wait_timeout``: 28800 unless set); the deploy check compares
    ``pool_recycle`` with it."""

    connect_args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Extra keyword arguments for the driver's ``connect()`` (e.g. ``{"ssl": "require"}``
    for asyncpg); they take precedence over the timeouts above."""

    slow_query_ms: float | None = Field(500.0, gt=0)
    """Statements slower than this many milliseconds are logged (masked); None: never."""

    retry_after: int = Field(5, ge=1, le=3600)
    """Seconds a 503 problem (database down, pool exhausted) tells clients to wait."""

    startup_check: Literal["fail", "warn", "off"] = "warn"
    """At startup, connect once: ``fail`` refuses to start when the database does not
    answer, ``warn`` logs why and starts (readiness reports it; requests get 503
    problems until it answers), ``off`` does not try."""

    echo: bool = False
    """Log every SQL statement with its parameters (development only)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: SecretStr) -> SecretStr:
        return checked_url(url) or url

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``sqlalchemy.create_engine(url, **kwargs)``.

        SQLite uses SQLAlchemy's own pool choice (an in-memory database must keep its
        single connection), so only ``echo`` applies to it.
        """
        kwargs: dict[str, Any] = {"echo": self.echo}
        if not self.url.get_secret_value().startswith("sqlite"):
            kwargs.update(
                pool_size=self.pool_size,
                max_overflow=self.max_overflow,
                pool_timeout=self.pool_timeout,
                pool_recycle=self.pool_recycle,
                pool_pre_ping=self.pool_pre_ping,
            )
        return kwargs


class RedisSettings(BaseModel):
    """The Redis server: URL, timeouts and connection cap."""

    model_config = SECTION_CONFIG

    url: Annotated[SecretStr, DSN_MARKER] = SecretStr("redis://127.0.0.1:6379/0")
    """``redis://``, ``rediss://`` or ``unix://`` URL; shown only with the password masked."""

    socket_timeout: float = Field(0.5, gt=0, le=60)
    """Seconds a command may take before it fails: a hung server costs at most this."""

    socket_connect_timeout: float = Field(0.5, gt=0, le=60)
    """Seconds to establish a connection."""

    max_connections: int = Field(50, ge=1, le=10_000)
    """Most connections the client's pool opens."""

    pool_timeout: float = Field(5.0, gt=0, le=60)
    """Seconds a command waits for a free pooled connection when all ``max_connections``
    are busy (a burst waits its turn instead of failing)."""

    health_check_interval: int = Field(30, ge=0)
    """Seconds after which an idle connection is pinged before reuse (0: never)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: SecretStr) -> SecretStr:
        return checked_url(url, schemes=REDIS_SCHEMES) or url


class BodyLimitSettings(BaseModel):
    """Request body limits: size, arrival time, multipart parts."""

    model_config = SECTION_CONFIG

    max_bytes: int = Field(1_048_576, ge=0)
    """Largest request body accepted by default (1 MiB); larger gets 413."""

    routes: dict[str, int] = Field(default_factory=dict)
    """Per-route-template limits, e.g. ``{"/videos": 524288000}``; JSON in the environment."""

    read_timeout: float | None = Field(30.0, gt=0)
    """Seconds a whole body may take to arrive before 408 (slow-body attacks)."""

    multipart_max_files: int = Field(10, ge=0)
    """Most files in one multipart form."""

    multipart_max_fields: int = Field(100, ge=0)
    """Most non-file fields in one form."""

    multipart_max_part_bytes: int = Field(1_048_576, ge=0)
    """Largest non-file form field."""

    def form_limits(self) -> dict[str, int]:
        """Keyword arguments for ``request.form(**limits)`` and ``FastAPI(form_limits=)``."""
        return {
            "max_files": self.multipart_max_files,
            "max_fields": self.multipart_max_fields,
            "max_part_size": self.multipart_max_part_bytes,
        }


class CompressionSettings(BaseModel):
    """Response compression (gzip)."""

    model_config = SECTION_CONFIG

    enabled: bool = True
    """Compress responses for clients that accept gzip."""

    minimum_size: int = Field(500, ge=0)
    """Smaller bodies are sent uncompressed."""

    level: int = Field(6, ge=1, le=9)
    """zlib level: 6 is nearly as small as 9 for a third of the CPU."""

    exclude_paths: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["/metrics"])
    """Path prefixes never compressed."""

    exclude_content_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDED_CONTENT_TYPES)
    )
    """Media types never compressed (already compressed formats, event streams)."""

    _split = field_validator("exclude_paths", "exclude_content_types", mode="before")(split_list)


class RateLimitSettings(BaseModel):
    """Rate limiting: budgets, storage, strategy and what happens when storage fails."""

    model_config = SECTION_CONFIG

    enabled: bool = True
    """Enforce rate limits."""

    default: str | None = "100/minute"
    """App-wide budget per client for routes without their own, and for unmatched
    requests (404 scans). Several limits: ``10/second;1000/hour``. Empty: none."""

    routes: dict[str, str] = Field(default_factory=dict)
    """Per-route budgets, e.g. ``{"/login": "5/minute;20/hour", "POST /media":
    "2/second"}``; JSON in the environment. A bare template covers every method with one
    budget; ``METHOD /template`` only that method (``HEAD`` counts as ``GET``) and wins
    over the bare template. A ``@rate_limit`` on the endpoint wins over both."""

    exempt_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/health/live", "/health/ready", "/metrics"]
    )
    """Path prefixes never limited."""

    storage_url: Annotated[SecretStr, DSN_MARKER] = SecretStr("memory://")
    """``memory://`` (one process) or ``redis://``, ``rediss://``, ``redis+unix://``,
    ``redis+cluster://``, ``redis+sentinel://`` (shared by every worker and host). In
    production, ``memory://`` is an error with several workers and a warning otherwise."""

    strategy: Literal["sliding-window-counter", "moving-window", "fixed-window"] = (
        "sliding-window-counter"
    )
    """Windowing. The sliding-window counter keeps a flat cost per check; a burst across
    a window boundary can reach at most twice the limit in the worst case."""

    key: Literal["ip", "api_key"] = "ip"
    """Whose budget: the client IP (IPv6 by /64) or the API key header (hashed), with
    the IP for requests without a key."""

    identity_header: str = "X-Api-Key"
    """Header carrying the client's API key when ``key`` is ``api_key`` (hashed before
    use; never stored)."""

    timeout: float = Field(0.25, gt=0, le=10)
    """Seconds the storage has to answer a check, counted from when the check is sent
    and only while the event loop could have read the answer."""

    breaker_cooldown: float = Field(5.0, ge=0, le=600)
    """Seconds the storage is left alone once the breaker opens (one probe then retries
    it)."""

    breaker_threshold: int = Field(3, ge=1, le=100)
    """Storage failures in a row that open the breaker."""

    max_connections: int = Field(64, ge=1, le=10_000)
    """Storage connections per process, and so checks in flight at once; more checks
    queue for a free connection."""

    queue_timeout: float = Field(5.0, gt=0, le=60)
    """Seconds a check may queue for a free connection; past that the request is
    answered 503 (or decided by the in-memory fallback), never let through unchecked."""

    fail_mode: Literal["open", "closed"] = "open"
    """With the storage down: ``open`` serves requests unlimited, ``closed`` answers 503."""

    fallback_memory: bool = False
    """With the storage down, enforce the same limits per process instead of failing
    open."""

    shadow: bool = False
    """Report would-be rejections (security events, counters) without rejecting."""

    headers: bool = False
    """Send ``RateLimit-Policy``/``RateLimit`` on successful responses too (rejections
    always carry them). Costs one more storage read per request."""

    legacy_headers: bool = False
    """Also send ``X-RateLimit-Limit``/``-Remaining``/``-Reset``."""

    storage_prefix: str = Field("fe-rl", min_length=1, max_length=64)
    """Prefix of every storage key (share one Redis between apps safely)."""

    memory_max_keys: int = Field(100_000, ge=100)
    """Most keys the in-memory storage tracks (about 300 bytes each)."""

    _split = field_validator("exempt_paths", mode="before")(split_list)
    _casefold = field_validator("strategy", "key", "fail_mode", mode="before")(casefold(False))

    @field_validator("default")
    @classmethod
    def _check_default(cls, value: str | None) -> str | None:
        from fastapi_enterprise.ratelimit.policy import parse_limits

        if value is None or not value.strip():
            return None
        parse_limits(value)
        return value

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, routes: dict[str, str]) -> dict[str, str]:
        from fastapi_enterprise.ratelimit.policy import parse_limits, route_key

        checked: dict[str, str] = {}
        for position, (key, value) in enumerate(routes.items(), start=1):
            try:
                parse_limits(value)
            except ValueError:
                raise ValueError(
                    f"the limit of entry {position} is not like '10/second;1000/hour'"
                ) from None
            try:
                normalised = route_key(key)
            except ValueError as exc:
                raise ValueError(f"entry {position}: {exc}") from None
            if normalised in checked:
                raise ValueError(f"entry {position} repeats a route key of an earlier entry")
            checked[normalised] = value
        return checked

    @field_validator("storage_url")
    @classmethod
    def _check_storage(cls, url: SecretStr) -> SecretStr:
        problem = storage_url_problem(url.get_secret_value())
        if problem is not None:
            raise ValueError(f"the URL {problem}")
        return url


class MetricsSettings(BaseModel):
    """Prometheus metrics and the health probes."""

    model_config = SECTION_CONFIG

    enabled: bool | None = None
    """Measure and serve metrics. ``None`` (the default): on when the ``metrics`` extra is
    installed. ``true`` without the extra fails at startup."""

    path: str = "/metrics"
    """Where the scrape endpoint is served."""

    bearer_token: SecretStr | None = None
    """Require ``Authorization: Bearer <token>`` to scrape."""

    allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses or CIDR networks allowed to scrape. In production, with neither a token
    nor an allowlist, only loopback may scrape."""

    buckets: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    """Request duration histogram buckets, in seconds."""

    exclude_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/metrics", "/health/live", "/health/ready"]
    )
    """Paths not measured."""

    namespace: str = Field("", pattern=r"^([a-zA-Z_][a-zA-Z0-9_]*)?$")
    """Prefix for the library's metric names."""

    health: bool = True
    """Serve ``/health/live`` and ``/health/ready``."""

    health_timeout: float = Field(2.0, gt=0, le=60)
    """Seconds each readiness check may take."""

    _split = field_validator("allow_ips", "buckets", "exclude_paths", mode="before")(split_list)

    @field_validator("allow_ips")
    @classmethod
    def _check_ips(cls, networks: list[str]) -> list[str]:
        from fastapi_enterprise.client_ip import parse_networks

        parse_networks(networks)
        return networks


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LoggingSettings(BaseModel):
    """Structured logging: format, outputs, the access log, sampling and redaction."""

    model_config = SECTION_CONFIG

    @field_validator("trace_url")
    @classmethod
    def _check_trace_url(cls, template: str | None) -> str | None:
        if template is None:
            return None
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            template.format(trace_id="0", span_id="0")
        except (ValueError, KeyError, IndexError, AttributeError):
            fields = {"?"}
        if "trace_id" not in fields or fields - {"trace_id", "span_id"}:
            raise ValueError("must contain {trace_id}, and no placeholder but {span_id}")
        return template

    level: LogLevel = "INFO"
    """Lowest level written, for the app and every library logging through the stdlib."""

    format: Literal["json", "console"] | None = None
    """``json`` (one object per line) or ``console`` (readable, coloured). ``None`` (the
    default) means console in development, JSON everywhere else."""

    max_field_length: int = Field(2048, ge=64, le=1_048_576)
    """Longest string value written in a log field; longer values are cut and marked."""

    access_log: bool = True
    """Write one line per request (``fastapi_enterprise.access``)."""

    access_exclude_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/health/live", "/health/ready", "/metrics"]
    )
    """Paths that never get an access line (probes and scrapes)."""

    slow_request_ms: float = Field(1000.0, ge=0)
    """Requests slower than this get ``slow=true`` and at least warning level (0: off)."""

    trace_url: str | None = None
    """Link each traced access line to its trace: a URL with ``{trace_id}`` (and
    optionally ``{span_id}``), e.g. ``https://grafana.example/explore?traceId={trace_id}``;
    written as ``trace_url``."""

    access_sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    """Fraction of successful, fast access lines kept. Errors, 4xx/5xx and slow
    requests are always kept."""

    access_sample_routes: dict[str, float] = Field(default_factory=dict)
    """Per-route-template sample rates, e.g. ``{"/items/{item_id}": 0.01}``; JSON in the
    environment."""

    event_sample_rates: dict[str, float] = Field(default_factory=dict)
    """Per-event sample rates for high-volume debug and info events, e.g.
    ``{"cache.hit": 0.1}``. Warnings and errors are always kept."""

    user_agent_max_length: int = Field(256, ge=16, le=8192)
    """Longest User-Agent written on the access line."""

    stdout: bool = True
    """Write lines to standard output (or the stream given to ``configure_logging()``).
    Off: only the file and syslog outputs, of which one must then be set."""

    file_path: str | None = None
    """Also write JSON lines to this file, rotated by size."""

    file_max_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    """Size at which the log file is rotated."""

    file_backup_count: int = Field(5, ge=0, le=1000)
    """Rotated files kept."""

    syslog_address: str | None = None
    """Also send to syslog: a socket path (``/dev/log``) or ``host:port`` (UDP)."""

    syslog_facility: str = "user"
    """Syslog facility name, e.g. ``user``, ``local0``."""

    queue_size: int = Field(10_000, ge=1, le=10_000_000)
    """Records waiting for the writer thread; when full, new records are dropped and
    counted instead of blocking a request."""

    redact_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Extra substrings that make a field, key or query parameter secret."""

    redact_headers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Extra header names whose values are always masked."""

    uvicorn_access_log: bool = False
    """Keep uvicorn's own access lines (the library's access log replaces them)."""

    _split = field_validator(
        "access_exclude_paths", "redact_keys", "redact_headers", mode="before"
    )(split_list)
    _casefold_level = field_validator("level", mode="before")(casefold(True))
    _casefold_format = field_validator("format", mode="before")(casefold(False))

    @field_validator("access_sample_routes", "event_sample_rates")
    @classmethod
    def _check_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for position, rate in enumerate(rates.values(), start=1):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"the rate of entry {position} must be between 0 and 1")
        return rates

    @field_validator("syslog_facility")
    @classmethod
    def _check_facility(cls, facility: str) -> str:
        names = logging.handlers.SysLogHandler.facility_names
        if facility.strip().lower() not in names:
            raise ValueError("unknown syslog facility; use one of " + ", ".join(sorted(names)))
        return facility.strip().lower()

    @model_validator(mode="after")
    def _check_outputs(self) -> LoggingSettings:
        if not self.stdout and self.file_path is None and self.syslog_address is None:
            raise ValueError(
                "stdout is off and neither file_path nor syslog_address is set: "
                "log lines would go nowhere"
            )
        return self


class OTelSettings(BaseModel):
    """OpenTelemetry: FastAPI's own traces and logs, redacted, exported over OTLP/HTTP.

    Needs the ``otel`` extra. Off by default: without it nothing changes and nothing is
    exported. The HTTP metrics stay with Prometheus unless ``metrics`` is on.
    """

    model_config = SECTION_CONFIG

    enabled: bool = False
    """Turn FastAPI's telemetry on through ``fastapi_kwargs()`` (build the app with it)."""

    traces: bool = True
    """Export request spans (named ``METHOD /route/{template}``)."""

    logs: bool = True
    """Export FastAPI's log records: validation failures and unhandled exceptions."""

    metrics: bool = False
    """Export FastAPI's OpenTelemetry HTTP metrics too. Off: the library's Prometheus
    metrics already count each request, and each backend should count it once."""

    operation_spans: bool = False
    """Child spans for dependencies, the endpoint, serialization and background tasks.
    Off by default: one request becomes many spans in the trace backend."""

    exclude_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/health", "/metrics", "/docs", "/redoc", "/openapi.json"]
    )
    """Path prefixes never traced (probes, scrapes, docs)."""

    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    """Fraction of new traces kept; an incoming ``traceparent``'s decision is followed."""

    endpoint: Annotated[SecretStr | None, DSN_MARKER] = None
    """OTLP/HTTP (protobuf) base URL, e.g. ``http://collector:4318``; signals go to
    ``/v1/traces``, ``/v1/logs``, ``/v1/metrics``. Defaults to the standard
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; with neither, spans are made (logs carry their IDs)
    but nothing is exported."""

    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Headers sent with every export (a collector's API key); JSON in the environment."""

    timeout: float = Field(10.0, gt=0)
    """Seconds one export may take; exports run off the request path either way."""

    service_name: str | None = None
    """``service.name`` of the exported data; defaults to ``app.name``."""

    _split = field_validator("exclude_paths", mode="before")(split_list)

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, endpoint: SecretStr | None) -> SecretStr | None:
        return checked_url(endpoint, schemes=("http", "https"))


class SentrySettings(BaseModel):
    """Error tracking with Sentry; needs the ``sentry`` extra and a DSN."""

    model_config = SECTION_CONFIG

    dsn: Annotated[SecretStr | None, DSN_MARKER] = None
    """Project DSN. Without it, ``init_sentry()`` does nothing."""

    environment: str | None = None
    """Sentry environment; defaults to the settings' ``environment``."""

    release: str | None = None
    """Release name; defaults to ``<app.name>@<app.version>``."""

    traces_sample_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of requests traced for performance monitoring."""

    profiles_sample_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of traced requests profiled."""

    include_local_variables: bool = False
    """Send stack-frame local variables. Off by default: locals hold passwords and
    tokens under names no scrubber can guess."""

    event_level: LogLevel = "ERROR"
    """Log records at or above this level become Sentry events."""

    breadcrumb_level: LogLevel = "INFO"
    """Log records at or above this level become breadcrumbs."""

    _casefold = field_validator("event_level", "breadcrumb_level", mode="before")(casefold(True))

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, dsn: SecretStr | None) -> SecretStr | None:
        return checked_url(dsn, schemes=("http", "https"), require_user=True, require_path=True)

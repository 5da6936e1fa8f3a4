"""``EnterpriseSettings``: one settings class, one nested model per feature.

Values come, highest priority first, from keyword arguments, environment variables
(prefix ``FE_``, nested with ``__``: ``FE_SECURITY__SECRET_KEY``), a ``.env`` file, and
secret files (``secrets_dir``, one file per variable, named like the variable).

Every secret is a :class:`~pydantic.SecretStr`; a validation error never carries the
rejected value (see :class:`SettingsValidationError`), and :meth:`EnterpriseSettings.safe_dump`
gives a diagnostics view with secrets masked and connection URLs shown without passwords.
"""

from __future__ import annotations

import ipaddress
import json
import re
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from fastapi_enterprise._http import is_header_name
from fastapi_enterprise.redaction import MASK, mask_dsn

if TYPE_CHECKING:
    from fastapi_enterprise.deploy_check import Finding

__all__ = [
    "AppSettings",
    "DatabaseSettings",
    "EnterpriseSettings",
    "Environment",
    "RedisSettings",
    "RequestIDSettings",
    "SecuritySettings",
    "SettingsValidationError",
]

# Marks a SecretStr field that holds a connection URL: safe_dump() shows it with the
# password masked instead of hiding it whole.
_DSN_MARKER = "fastapi_enterprise:dsn"


class Environment(str, Enum):
    """Where the app runs; several defaults and the deploy check depend on it."""

    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


def _split_list(value: Any) -> Any:
    """Accept ``a,b`` and JSON ``["a","b"]`` from the environment; lists pass through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a valid JSON list") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


_Section = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class AppSettings(BaseModel):
    """The application itself: name, version, debug, API docs."""

    model_config = _Section

    name: str = Field("FastAPI", min_length=1, max_length=200)
    """Application name; the OpenAPI title."""

    version: str = Field("0.1.0", min_length=1, max_length=64)
    """Application version; the OpenAPI version."""

    debug: bool = False
    """Starlette debug mode. Never in production: the deploy check refuses it."""

    docs: bool | None = None
    """Serve ``/docs``, ``/redoc`` and ``/openapi.json``. ``None`` (the default) means
    on in development and test, off in staging and production."""


class SecuritySettings(BaseModel):
    """Secrets and the policies the deploy check verifies before a production start."""

    model_config = _Section

    secret_key: SecretStr | None = None
    """Key for signing sessions and tokens. Required in production: at least 32
    characters with at least 10 distinct ones; placeholders such as ``changeme`` are
    refused by the deploy check."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed to make cross-origin requests, e.g. ``https://app.example.com``
    (scheme, host and optional port; no path). ``*`` allows any origin. From the
    environment: a comma-separated list or a JSON list."""

    cors_origin_regex: str | None = None
    """A regular expression for allowed origins. It must be anchored (``^...$``) and
    escape the dots of host names (``^https://[a-z0-9-]+\\.example\\.com$``)."""

    cors_allow_credentials: bool = False
    """Allow cookies and ``Authorization`` on cross-origin requests. Never with ``*``."""

    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses or CIDR networks of reverse proxies whose ``X-Forwarded-*`` headers are
    believed, e.g. ``10.0.0.0/8``. ``*`` trusts every peer and is refused in production."""

    hsts_max_age: int = Field(31_536_000, ge=0, le=2 * 31_536_000)
    """``Strict-Transport-Security`` max-age in seconds (one year by default). The deploy
    check requires at least 180 days."""

    hsts_include_subdomains: bool = True
    """Add ``includeSubDomains`` to HSTS."""

    hsts_preload: bool = False
    """Add ``preload`` to HSTS. Opt-in: it needs a one-year max-age, includeSubDomains and
    a submission to the browsers' preload list that is hard to undo."""

    _split = field_validator("cors_origins", "trusted_proxies", mode="before")(_split_list)

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*":
                continue
            if origin.lower() == "null":
                raise ValueError("the 'null' origin must never be allowed")
            match = re.fullmatch(r"([a-z][a-z0-9+.-]*)://([^/?#@\s]+)", origin, re.IGNORECASE)
            if match is None:
                raise ValueError(
                    f"origin {_quote(origin)} is not scheme://host[:port] "
                    "(no path, no trailing slash)"
                )
        return origins

    @field_validator("cors_origin_regex")
    @classmethod
    def _check_regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc.msg}") from None
        return pattern

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            if proxy == "*":
                continue
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{_quote(proxy)} is not an IP address or CIDR network") from None
        return proxies


class RequestIDSettings(BaseModel):
    """How each request gets its ID."""

    model_config = _Section

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
    """Take the trace-id of a valid W3C ``traceparent`` header as the request ID when no
    valid ID header came in, so logs join up with distributed traces."""

    @field_validator("header_name")
    @classmethod
    def _check_header(cls, name: str) -> str:
        if not is_header_name(name):
            raise ValueError("must be an HTTP header name (RFC 9110 token, 1-64 characters)")
        return name

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc.msg}") from None
        return pattern


class DatabaseSettings(BaseModel):
    """The SQL database: URL and SQLAlchemy pool options."""

    model_config = _Section

    url: Annotated[SecretStr, _DSN_MARKER] = SecretStr("sqlite:///./app.db")
    """SQLAlchemy URL, e.g. ``postgresql+psycopg://app:pw@db/app``. Shown only with the
    password masked."""

    pool_size: int = Field(5, ge=1, le=1000)
    """Connections kept open in the pool."""

    max_overflow: int = Field(10, ge=0, le=1000)
    """Connections opened beyond ``pool_size`` under load."""

    pool_timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds to wait for a free connection before failing."""

    pool_recycle: int = Field(1800, ge=-1)
    """Seconds after which a connection is replaced (-1: never); keeps it under the
    server's idle timeout."""

    echo: bool = False
    """Log every SQL statement (development only)."""

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
                pool_pre_ping=True,
            )
        return kwargs


class RedisSettings(BaseModel):
    """The Redis server: URL, timeouts and connection cap."""

    model_config = _Section

    url: Annotated[SecretStr, _DSN_MARKER] = SecretStr("redis://127.0.0.1:6379/0")
    """``redis://``, ``rediss://`` or ``unix://`` URL; shown only with the password masked."""

    socket_timeout: float = Field(0.5, gt=0, le=60)
    """Seconds a command may take before it fails: a hung server costs at most this."""

    socket_connect_timeout: float = Field(0.5, gt=0, le=60)
    """Seconds to establish a connection."""

    max_connections: int = Field(50, ge=1, le=10_000)
    """Most connections the client's pool opens."""

    health_check_interval: int = Field(30, ge=0)
    """Seconds after which an idle connection is pinged before reuse (0: never)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: SecretStr) -> SecretStr:
        if not url.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url


class SettingsValidationError(ValueError):
    """Settings failed validation. Lists each bad field; never contains a rejected value.

    Pydantic's own error repeats the input (``input_value='hunter2'``) in its message,
    its ``errors()`` and any chained traceback; this error keeps only the location, the
    message and the error type, and is raised without a chained cause.
    """

    def __init__(self, title: str, errors: list[dict[str, Any]]) -> None:
        self.title = title
        self._errors = errors
        lines = [f"{len(errors)} validation error(s) for {title}"]
        for error in errors:
            location = ".".join(str(part) for part in error["loc"]) or "(settings)"
            lines.append(f"  {location}: {error['msg']} [type={error['type']}]")
        super().__init__("\n".join(lines))

    def errors(self) -> list[dict[str, Any]]:
        """Return the errors as dicts with ``loc``, ``msg`` and ``type`` (no input)."""
        return [dict(error) for error in self._errors]

    @classmethod
    def from_pydantic(cls, title: str, exc: ValidationError) -> SettingsValidationError:
        """Build the sanitized error from pydantic's ``ValidationError``."""
        errors = [
            {"loc": tuple(error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        return cls(title, errors)


class EnterpriseSettings(BaseSettings):
    """Settings for an app built with fastapi-enterprise; subclass it to add your own.

    Example:
        ```python
        from fastapi import FastAPI
        from fastapi_enterprise import EnterpriseSettings, install

        settings = EnterpriseSettings()  # FE_* environment variables, .env, secrets
        app = FastAPI(**settings.fastapi_kwargs())
        install(app, settings)
        ```
    """

    model_config = SettingsConfigDict(
        env_prefix="FE_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        secrets_dir=None,
        secrets_dir_missing="ok",
        case_sensitive=False,
        # A .env file usually holds other tools' variables too; the root ignores them.
        # Keyword-argument typos are still refused in __init__, and every section
        # forbids unknown keys, so FE_SECURITY__SECRET_KY fails loudly.
        extra="ignore",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    environment: Environment = Environment.DEVELOPMENT
    """``development``, ``test``, ``staging`` or ``production``."""

    app: AppSettings = Field(default_factory=AppSettings)
    """The application: name, version, debug, docs."""

    security: SecuritySettings = Field(default_factory=SecuritySettings)
    """Secret key, CORS, trusted proxies, HSTS."""

    request_id: RequestIDSettings = Field(default_factory=RequestIDSettings)
    """Request ID header and validation."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    """SQL database URL and pool."""

    redis: RedisSettings = Field(default_factory=RedisSettings)
    """Redis URL, timeouts and pool."""

    _environment_defaults: ClassVar[dict[Environment, dict[str, Any]]] = {
        Environment.DEVELOPMENT: {"docs": True},
        Environment.TEST: {"docs": True},
        Environment.STAGING: {"docs": False},
        Environment.PRODUCTION: {"docs": False},
    }

    def __init__(self, **values: Any) -> None:
        error: SettingsValidationError | None = None
        unknown = sorted(
            key for key in values if not key.startswith("_") and key not in type(self).model_fields
        )
        if unknown:
            raise SettingsValidationError(
                type(self).__name__,
                [
                    {
                        "loc": (key,),
                        "msg": "Extra inputs are not permitted",
                        "type": "extra_forbidden",
                    }
                    for key in unknown
                ],
            )
        try:
            super().__init__(**values)
        except ValidationError as exc:
            error = SettingsValidationError.from_pydantic(type(self).__name__, exc)
        except SettingsError as exc:
            # Raised for unparsable JSON in a complex variable; its cause holds the raw
            # document, which may contain a secret. Keep only pydantic-settings' message.
            error = SettingsValidationError(
                type(self).__name__,
                [{"loc": (), "msg": str(exc).split(": ")[0], "type": "settings_error"}],
            )
        if error is not None:
            # Raised outside the except blocks so the original (which holds the inputs)
            # is neither the cause nor the context of this one.
            raise error

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read secret files with the same nested names as the environment variables."""
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            NestedSecretsSettingsSource(file_secret_settings),
        )

    @field_validator("environment", mode="before")
    @classmethod
    def _normalise_environment(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _apply_environment_defaults(self) -> EnterpriseSettings:
        for name, default in self._environment_defaults[self.environment].items():
            if getattr(self.app, name) is None:
                setattr(self.app, name, default)
        return self

    @property
    def is_production(self) -> bool:
        """Whether ``environment`` is ``production``."""
        return self.environment is Environment.PRODUCTION

    def deploy_check(self) -> list[Finding]:
        """Check these settings for a production deployment, like Django's ``check --deploy``.

        Returns:
            The findings, errors first. An empty list means nothing to fix. Messages
            name fields and never contain a secret value.
        """
        from fastapi_enterprise.deploy_check import run_deploy_check

        return run_deploy_check(self)

    def safe_dump(self) -> dict[str, Any]:
        """Return every setting as JSON-compatible data, safe to log or print.

        Secrets become ``**********``; connection URLs keep scheme, user, host, port and
        database but lose their password and secret query values.
        """
        return _safe_dump_model(self)

    def fastapi_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``FastAPI(...)`` from the ``app`` section.

        Title, version, debug, and the docs URLs (``None`` when docs are off).
        """
        docs = bool(self.app.docs)
        return {
            "title": self.app.name,
            "version": self.app.version,
            "debug": self.app.debug,
            "docs_url": "/docs" if docs else None,
            "redoc_url": "/redoc" if docs else None,
            "openapi_url": "/openapi.json" if docs else None,
        }


def _safe_dump_model(model: BaseModel) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            is_dsn = _DSN_MARKER in field.metadata
            result[name] = mask_dsn(value.get_secret_value()) if is_dsn else MASK
        else:
            result[name] = _safe_value(value)
    return result


def _safe_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _safe_dump_model(value)
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_safe_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _safe_value(item) for key, item in value.items()}
    return value


def _quote(value: str, limit: int = 80) -> str:
    """Quote a (non-secret) configuration value for an error message, bounded."""
    shown = value if len(value) <= limit else value[:limit] + "..."
    return repr(shown)

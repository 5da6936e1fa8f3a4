"""``EnterpriseSettings``: one settings class, one nested model per feature.

Values come, highest priority first, from keyword arguments, environment variables
(prefix ``FE_``, nested with ``__``: ``FE_SECURITY__SECRET_KEY``), a ``.env`` file, and
secret files (``secrets_dir``, one file per variable, named like the variable).

Every secret is a :class:`~pydantic.SecretStr`; a validation error never carries the
rejected value (see :class:`SettingsValidationError`), and :meth:`EnterpriseSettings.safe_dump`
gives a diagnostics view with secrets masked and connection URLs shown without passwords.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from fastapi_enterprise.redaction import MASK, mask_dsn
from fastapi_enterprise.settings.sections import (
    DSN_MARKER,
    AppSettings,
    BodyLimitSettings,
    CompressionSettings,
    DatabaseSettings,
    Environment,
    LoggingSettings,
    MetricsSettings,
    OTelSettings,
    RateLimitSettings,
    RedisSettings,
    RequestIDSettings,
    SecuritySettings,
    SentrySettings,
)

if TYPE_CHECKING:
    from fastapi_enterprise.deploy_check import DeployChecks, Finding
    from fastapi_enterprise.telemetry import Telemetry

__all__ = [
    "AppSettings",
    "BodyLimitSettings",
    "CompressionSettings",
    "DatabaseSettings",
    "EnterpriseSettings",
    "Environment",
    "LoggingSettings",
    "MetricsSettings",
    "OTelSettings",
    "RateLimitSettings",
    "RedisSettings",
    "RequestIDSettings",
    "SecuritySettings",
    "SentrySettings",
    "SettingsValidationError",
]


class SettingsValidationError(ValueError):
    """Settings failed validation. Lists each bad field; never contains a rejected value.

    Pydantic's own error repeats the input (``input_value='hunter2'``) in its message,
    its ``errors()`` and any chained traceback; this error keeps only the location, the
    message and the error type, and is raised without a chained cause. Locations stop at
    the setting: the keys of a mapping setting (``rate_limit.routes``) are part of its
    value and show as ``<key>``. Every validator names a bad list entry by its position.
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
    def from_pydantic(
        cls, title: str, exc: ValidationError, model: type[BaseModel] | None = None
    ) -> SettingsValidationError:
        """Build the sanitized error from pydantic's ``ValidationError``.

        Args:
            title: The settings class name, for the first line.
            exc: Pydantic's error; only locations, messages and types are kept.
            model: The model validated, to tell field names in a location from the keys
                of a mapping value (which are replaced by ``<key>``).
        """
        errors = [
            {"loc": _safe_loc(model, error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        return cls(title, errors)


def _safe_loc(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Keep field names and list positions; a mapping's keys are input, so masked."""
    safe: list[int | str] = []
    current = model
    for part in loc:
        if isinstance(part, int):
            safe.append(part)
            current = None
        elif current is not None:
            # A field of the model, or an unknown name the user wrote (extra_forbidden).
            safe.append(part)
            field = current.model_fields.get(part)
            annotation = field.annotation if field is not None else None
            is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            current = annotation if is_model else None  # type: ignore[assignment]
        else:
            safe.append("<key>")
    return tuple(safe)


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
        hide_input_in_errors=True,
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

    body_limit: BodyLimitSettings = Field(default_factory=BodyLimitSettings)
    """Request body size, arrival time and multipart limits."""

    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    """Rate-limit budgets, storage and failure behaviour."""

    compression: CompressionSettings = Field(default_factory=CompressionSettings)
    """Gzip compression of responses."""

    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    """Prometheus metrics, the scrape endpoint and the health probes."""

    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    """Log format, level, outputs, access log, sampling and redaction."""

    sentry: SentrySettings = Field(default_factory=SentrySettings)
    """Error tracking with Sentry (extra ``sentry``); off without a DSN."""

    otel: OTelSettings = Field(default_factory=OTelSettings)
    """OpenTelemetry traces and logs through FastAPI's own telemetry (extra ``otel``)."""

    # The providers fastapi_kwargs() built for these settings, once (install() flushes
    # and shuts them down at the end of the app's lifespan).
    _telemetry: Any = PrivateAttr(default=None)

    deploy_checks: ClassVar[DeployChecks[Any] | None] = None
    """The application's own deploy-check rules, run by :meth:`deploy_check` after the
    library's (so ``install()`` refuses a production start on their errors too, and
    ``fastapi-enterprise check`` prints them). Set it on a subclass; ``None`` adds none."""

    _environment_defaults: ClassVar[dict[Environment, dict[str, Any]]] = {
        Environment.DEVELOPMENT: {
            "app.docs": True,
            "logging.format": "console",
            "security.hsts_enabled": False,
        },
        Environment.TEST: {
            "app.docs": True,
            "logging.format": "json",
            "security.hsts_enabled": False,
        },
        Environment.STAGING: {
            "app.docs": False,
            "logging.format": "json",
            "security.hsts_enabled": True,
        },
        Environment.PRODUCTION: {
            "app.docs": False,
            "logging.format": "json",
            "security.hsts_enabled": True,
        },
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
            error = SettingsValidationError.from_pydantic(type(self).__name__, exc, type(self))
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
        for dotted, default in self._environment_defaults[self.environment].items():
            section_name, name = dotted.split(".")
            section = getattr(self, section_name)
            if getattr(section, name) is None:
                setattr(section, name, default)
        return self

    @property
    def is_production(self) -> bool:
        """Whether ``environment`` is ``production``."""
        return self.environment is Environment.PRODUCTION

    def deploy_check(self) -> list[Finding]:
        """Check these settings for a production deployment, like Django's ``check --deploy``.

        Returns:
            The findings, errors first. An empty list means nothing to fix. Messages
            name fields and never contain a secret value. The rules of
            :attr:`deploy_checks`, if any, run after the library's.
        """
        from fastapi_enterprise.deploy_check import run_deploy_check

        return run_deploy_check(self, self.deploy_checks or ())

    def safe_dump(self) -> dict[str, Any]:
        """Return every setting as JSON-compatible data, safe to log or print.

        Secrets become ``**********``; connection URLs keep scheme, user, host, port and
        database but lose their password and secret query values.
        """
        return _safe_dump_model(self)

    def fastapi_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``FastAPI(...)``.

        Title, version and debug from ``app``, the docs URLs (``None`` when docs are
        off), and the multipart ``form_limits`` from ``body_limit``. Not ``max_body_size``:
        the library's body-limit layer is the app default (FastAPI would copy an app-level
        value onto every route declared later, under a larger ``body_limit.routes`` limit
        too); a route's own ``max_body_size`` is honoured by both. With ``otel.enabled``,
        also ``telemetry``: FastAPI's own OpenTelemetry configuration, with providers built
        once for these settings (needs the ``otel`` extra).
        """
        docs = bool(self.app.docs)
        kwargs: dict[str, Any] = {
            "title": self.app.name,
            "version": self.app.version,
            "debug": self.app.debug,
            "docs_url": "/docs" if docs else None,
            "redoc_url": "/redoc" if docs else None,
            "openapi_url": "/openapi.json" if docs else None,
            "form_limits": self.body_limit.form_limits(),
        }
        if self.otel.enabled:
            kwargs["telemetry"] = self.telemetry().fastapi_config()
        return kwargs

    def telemetry(self) -> Telemetry:
        """The OpenTelemetry providers for these settings, built on the first call.

        Raises:
            MissingExtraError: The ``otel`` extra is not installed.
        """
        if self._telemetry is None:
            from fastapi_enterprise.telemetry import build_telemetry  # needs the otel extra

            self._telemetry = build_telemetry(self)
        telemetry: Telemetry = self._telemetry
        return telemetry


def _safe_dump_model(model: BaseModel) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            is_dsn = DSN_MARKER in field.metadata
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

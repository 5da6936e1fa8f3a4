"""``install(app, settings)``: the one place settings become middleware, handlers and routes.

The middleware are added innermost first, so the stack reads, outermost first, as
``docs/how-to/middleware-order.md`` explains::

    ProxyHeaders               client IP and scheme from trusted proxies, resolved once
    RequestID / error shield   every response gets the ID; unhandled errors become 500 problems
    SecurityHeaders            every response gets the headers, exactly once (500s included)
    AccessLog                  one line per request, after the response; sees inner statuses
    TrustedHost, HTTPS redirect
    Metrics                    route-template labels; sees 413/429/500
    CORS                       outside the limits, so a 413/429 still carries CORS headers
    BodyLimit                  400/408/413 before the app reads too much or too long
    RateLimit                  429 keyed on the route template; fail-open behind a breaker
    Compression                next to the app: only application bodies are compressed
    app                        problem+json handlers for HTTP and validation errors

The outer stages, proxy headers to metrics, run in one layer,
:class:`~fastapi_enterprise.middleware.pipeline.EnterprisePipeline` (one ``send`` and
one ``receive`` wrapper, the same stage code as each middleware class); the metrics
stay a layer of their own when the host check or the HTTPS redirect sits between them
and the access log.

What ``install()`` adds to the app's start and end (a trial build of the middleware, a
guard around the stack's build, one lifespan wrapper: startup checks, then the app's
lifespan, then closing the rate-limit storage and writing the logs through) lives in
``_startup.py``, in the order it documents.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.routing import Route

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise._startup import (
    UnknownRouteTemplateError,
    guard_stack_build,
    trial_build,
    wrap_lifespan,
)
from fastapi_enterprise.csp import ContentSecurityPolicy
from fastapi_enterprise.deploy_check import DeployCheckError
from fastapi_enterprise.errors import register_exception_handlers
from fastapi_enterprise.health import HealthChecks, health_routes
from fastapi_enterprise.middleware.body_limit import BodyLimitMiddleware, check_fastapi_limits
from fastapi_enterprise.middleware.compression import CompressionMiddleware
from fastapi_enterprise.middleware.cors import CORSPolicyMiddleware
from fastapi_enterprise.middleware.pipeline import EnterprisePipeline
from fastapi_enterprise.middleware.rate_limit import RateLimitMiddleware
from fastapi_enterprise.middleware.trusted_host import TrustedHostMiddleware
from fastapi_enterprise.openapi import (
    OpenAPICustomizer,
    apply_customizers,
    document_problem_errors,
)
from fastapi_enterprise.openapi import customizers as customizers_module
from fastapi_enterprise.openapi.body_limits import document_body_limits
from fastapi_enterprise.openapi.docs_pages import DocsTheme, install_docs_pages
from fastapi_enterprise.openapi.docs_policy import docs_policies
from fastapi_enterprise.openapi.rate_limits import document_rate_limits
from fastapi_enterprise.ratelimit.keys import api_key_header, client_ip, composite_or_ip
from fastapi_enterprise.ratelimit.limiter import RateLimiter
from fastapi_enterprise.ratelimit.policy import KeyFunction
from fastapi_enterprise.ratelimit.readiness import storage_readiness
from fastapi_enterprise.redaction import Redactor
from fastapi_enterprise.security_events import SecurityEvent, security_event
from fastapi_enterprise.settings import DatabaseSettings, EnterpriseSettings, Environment

if TYPE_CHECKING:
    from fastapi_enterprise.telemetry import Telemetry

__all__ = [
    "UnknownRouteTemplateError",
    "check_database_settings",
    "install",
    "installed_health_checks",
    "installed_metrics_registry",
    "installed_rate_limiter",
    "installed_settings",
]

_STATE_KEY = "fastapi_enterprise_settings"
_LIMITER_KEY = "fastapi_enterprise_rate_limiter"
_REGISTRY_KEY = "fastapi_enterprise_metrics_registry"
_HEALTH_KEY = "fastapi_enterprise_health_checks"

_Layer = TypeVar("_Layer")


def install(app: Starlette, settings: EnterpriseSettings | None = None) -> None:
    """Make ``app`` production-ready from ``settings``.

    Adds the request-ID middleware (with its error shield), the access log and the
    problem+json exception handlers; initialises Sentry when a DSN is configured;
    documents every status the stack can answer in the OpenAPI schema (in every
    environment: the exported contract does not depend on it), and serves the API docs
    pages only when ``settings.app.docs`` is on. Logging itself is configured only by an
    explicit :func:`~fastapi_enterprise.configure_logging` call; after the app's
    lifespan shutdown, that pipeline writes every line at once (servers end on
    ``SIGTERM`` without running ``atexit``).

    In production, the deploy check runs first and any error-level finding stops the
    start with :class:`~fastapi_enterprise.deploy_check.DeployCheckError`; warnings are
    logged. In staging every finding is logged as a warning.

    Args:
        app: A FastAPI (or Starlette) app that has not started yet.
        settings: The settings; read from the environment when omitted.

    Raises:
        RuntimeError: ``install()`` was already called on this app, or the app has
            already started serving.
        DeployCheckError: Production settings failed the deploy check.
        ValueError: A middleware refused its options (the trial build, here).

    At the app's startup (its lifespan), :class:`UnknownRouteTemplateError` stops it
    when ``rate_limit.routes``, ``body_limit.routes`` or
    ``logging.access_sample_routes`` names a route template the app does not have, and
    a ``RuntimeError`` when the rate-limit storage does not answer in production where
    requests are refused without it (fail mode ``closed``, no memory fallback).
    """
    if installed_settings(app) is not None:
        raise RuntimeError("install() was already called on this app; call it once")
    if app.middleware_stack is not None:
        raise RuntimeError("install() must be called before the app starts serving requests")
    if getattr(app.state, "fastapi_enterprise_databases", None):
        # Its readiness check and metrics hook into what install() sets up.
        raise RuntimeError("call install(app) before database.install(app)")
    settings = settings if settings is not None else EnterpriseSettings()
    _run_deploy_check(settings)

    register_exception_handlers(app)
    limiter = _rate_limiter(settings)
    docs_csp: dict[str, ContentSecurityPolicy] = {}
    if not settings.app.docs:
        _remove_docs(app)
    elif isinstance(app, FastAPI):
        # The themed pages answer with their own CSP, computed from the HTML they serve;
        # the path policies cover any docs route they do not replace.
        docs_csp = dict(docs_policies(app))
        install_docs_pages(
            app,
            theme=DocsTheme(
                primary_color=settings.app.docs_color,
                favicon_url=settings.app.favicon_url,
                logo_url=settings.app.logo_url,
            ),
            offline=settings.app.docs_offline,
        )
    metrics = _metrics(app, settings, limiter)
    before = len(app.user_middleware)
    _add_middleware(app, settings, docs_csp, limiter, metrics)
    built = trial_build(app.user_middleware[: len(app.user_middleware) - before])
    rate_limits = _built(built, RateLimitMiddleware)
    body_limits = _built(built, BodyLimitMiddleware)
    check = functools.partial(check_fastapi_limits, app, body_limits) if body_limits else None
    if check is not None:
        check()  # the routes declared so far; the rest at startup
    if isinstance(app, FastAPI):
        # The contract is the same in every environment; only serving it depends on docs.
        apply_customizers(app, *_contract(app, settings, built))
    guard_stack_build(app, settings.request_id.header_name)
    wrap_lifespan(
        app,
        route_settings=_route_keyed_settings(settings),
        rate_limit=rate_limits,
        telemetry=_telemetry(app, settings),
        on_startup=check,
    )
    if settings.metrics.health:
        checks = HealthChecks(timeout=settings.metrics.health_timeout)
        if limiter is not None:
            required = _refuses_without_storage(settings)
            checks.add("rate_limit", storage_readiness(limiter["limiter"], required=required))
        app.router.routes.extend(health_routes(checks))
        setattr(app.state, _HEALTH_KEY, checks)
    if settings.sentry.dsn is not None:
        from fastapi_enterprise.sentry import init_sentry  # needs the sentry extra

        init_sentry(settings)
    setattr(app.state, _STATE_KEY, settings)


def _telemetry(app: Starlette, settings: EnterpriseSettings) -> Telemetry | None:
    """The OpenTelemetry providers whose end the app's lifespan owns, if any.

    With ``otel.enabled``, the app must have been built with ``settings.fastapi_kwargs()``
    (FastAPI takes its telemetry configuration at construction only). Without it, on
    FastAPI's environment route (``FASTAPI_OTEL_AUTO_CONFIGURE=true``), redacting global
    providers are set first, so the exporters FastAPI attaches to them are redacted too.
    """
    if not settings.otel.enabled:
        if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").strip().lower() == "true":
            try:
                from fastapi_enterprise.telemetry import install_environment_providers
            except MissingExtraError:
                return None  # FastAPI's own auto-configuration needs the SDK too
            install_environment_providers(settings)
        return None
    built: Telemetry | None = settings._telemetry
    if built is None or not isinstance(app, FastAPI):
        raise RuntimeError(
            "otel.enabled is on, but the app was not built from these settings: create it "
            "with FastAPI(**settings.fastapi_kwargs()) and pass the same settings to install()"
        )
    return built


def _built(built: list[Any], cls: type[_Layer]) -> _Layer | None:
    """The instance of ``cls`` among the middleware the trial build made, if any."""
    return next((layer for layer in built if isinstance(layer, cls)), None)


def _contract(
    app: FastAPI, settings: EnterpriseSettings, built: list[Any]
) -> list[OpenAPICustomizer]:
    """The customizers that make ``app.openapi()`` document what the stack really does.

    Applied whether or not the docs are served: ``fastapi-enterprise openapi`` and
    ``postman`` export the same contract from a production app as from a laptop. The
    limits are read from the twins of the stack's middleware that the trial build made
    (same options, same rate-limit engine).
    """
    customizers: list[OpenAPICustomizer] = [
        document_problem_errors,
        customizers_module.info(
            description=settings.app.description, logo_url=settings.app.logo_url
        ),
    ]
    body_limits = _built(built, BodyLimitMiddleware)
    if body_limits is not None:
        # Before standard_errors, so the 400 says what the stack checks.
        customizers.append(document_body_limits(app, body_limits))
    customizers += [customizers_module.standard_errors(app), customizers_module.generated_examples]
    if settings.app.servers:
        customizers.append(
            customizers_module.servers([{"url": url} for url in settings.app.servers])
        )
    if settings.app.readable_operation_ids:
        customizers.append(customizers_module.readable_operation_ids(app))
    rate_limits = _built(built, RateLimitMiddleware)
    if rate_limits is not None:
        customizers.append(document_rate_limits(app, rate_limits))
    return customizers


def _body_limits(settings: EnterpriseSettings) -> dict[str, Any]:
    """Keyword arguments of ``BodyLimitMiddleware`` from settings."""
    body = settings.body_limit
    return {
        "max_bytes": body.max_bytes,
        "route_limits": body.routes,
        "read_timeout": body.read_timeout,
    }


def _rate_limiter(settings: EnterpriseSettings) -> dict[str, Any] | None:
    """Keyword arguments of ``RateLimitMiddleware`` from settings (one shared engine)."""
    options = settings.rate_limit
    if not options.enabled:
        return None
    engine = RateLimiter(
        options.storage_url.get_secret_value(),
        strategy=options.strategy,
        key_prefix=options.storage_prefix,
        timeout=options.timeout,
        breaker_cooldown=options.breaker_cooldown,
        breaker_threshold=options.breaker_threshold,
        fallback_memory=options.fallback_memory,
        memory_max_keys=options.memory_max_keys,
        max_connections=options.max_connections,
        queue_timeout=options.queue_timeout,
    )
    key: KeyFunction = client_ip
    if options.key == "api_key":
        key = composite_or_ip(api_key_header(options.identity_header))
    return {
        "limiter": engine,
        "default": options.default,
        "routes": options.routes,
        "exempt_paths": options.exempt_paths,
        "key": key,
        "fail_mode": options.fail_mode,
        "shadow": options.shadow,
        "headers": options.headers,
        "legacy_headers": options.legacy_headers,
        # In production, a storage that every default-policy request needs (fail mode
        # closed, no fallback) must answer before the app takes traffic.
        "startup_check": "require"
        if settings.is_production and _refuses_without_storage(settings)
        else "warn",
        # install()'s lifespan wrapper checks and closes the storage, in its order.
        "manage_storage": False,
    }


def _refuses_without_storage(settings: EnterpriseSettings) -> bool:
    """Whether requests are refused while the rate-limit storage is away."""
    options = settings.rate_limit
    return options.fail_mode == "closed" and not options.fallback_memory


def _metrics(
    app: Starlette, settings: EnterpriseSettings, limiter: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Build the metrics registry and endpoint; return the middleware's arguments."""
    options = settings.metrics
    if options.enabled is False:
        return None
    try:
        from fastapi_enterprise import metrics  # needs the metrics extra
        from fastapi_enterprise.metrics._prometheus import REGISTRY, CollectorRegistry
    except MissingExtraError:
        if options.enabled:
            raise
        return None
    registry = CollectorRegistry()
    metrics.register_app_info(
        registry,
        name=settings.app.name,
        version=settings.app.version,
        environment=settings.environment.value,
    )
    if limiter is not None:
        engine: RateLimiter = limiter["limiter"]
        metrics.RateLimitCollector(engine.stats, registry=registry, breaker=engine.breaker)
    metrics.LogPipelineMetrics(registry)  # the registry holds what it publishes
    secret = options.bearer_token
    token = secret.get_secret_value() if secret is not None else None  # "" fails loudly
    endpoint = metrics.MetricsEndpoint(
        metrics.CombinedRegistry(registry, REGISTRY),
        bearer_token=token,
        allow_ips=options.allow_ips,
        require_protection=settings.is_production,
    )
    app.router.routes.append(Route(options.path, endpoint, include_in_schema=False))
    setattr(app.state, _REGISTRY_KEY, registry)
    return {
        "class": metrics.PrometheusMiddleware,
        "registry": registry,
        "buckets": options.buckets,
        "exclude_paths": options.exclude_paths,
        "namespace": options.namespace,
    }


def installed_metrics_registry(app: Starlette) -> Any:
    """The ``CollectorRegistry`` ``install()`` made for ``app``'s metrics, or ``None``.

    Register your own metrics on it (or on the global default: both are exposed).
    """
    return getattr(app.state, _REGISTRY_KEY, None)


def installed_health_checks(app: Starlette) -> HealthChecks | None:
    """The readiness checks ``install()`` serves on ``/health/ready``: add yours."""
    checks = getattr(app.state, _HEALTH_KEY, None)
    return checks if isinstance(checks, HealthChecks) else None


def installed_rate_limiter(app: Starlette) -> RateLimiter | None:
    """The rate-limit engine ``install()`` built for ``app`` (its ``stats``, ``reset()``)."""
    limiter = getattr(app.state, _LIMITER_KEY, None)
    return limiter if isinstance(limiter, RateLimiter) else None


def _add_middleware(
    app: Starlette,
    settings: EnterpriseSettings,
    docs_csp: dict[str, ContentSecurityPolicy],
    limiter: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
) -> None:
    """Build the stack of ``docs/how-to/middleware-order.md``, innermost first.

    Each ``add_middleware()`` call wraps the previous ones.
    """
    security = settings.security
    compression = settings.compression
    if compression.enabled:
        app.add_middleware(
            CompressionMiddleware,
            minimum_size=compression.minimum_size,
            compresslevel=compression.level,
            exclude_paths=compression.exclude_paths,
            exclude_content_types=compression.exclude_content_types,
        )
    if limiter is not None:
        app.add_middleware(RateLimitMiddleware, **limiter)
        setattr(app.state, _LIMITER_KEY, limiter["limiter"])
    app.add_middleware(BodyLimitMiddleware, **_body_limits(settings))
    if security.cors_origins or security.cors_origin_regex:
        app.add_middleware(
            CORSPolicyMiddleware,
            allow_origins=security.cors_origins,
            allow_origin_regex=security.cors_origin_regex,
            allow_credentials=security.cors_allow_credentials,
            allow_methods=security.cors_methods,
            allow_headers=security.cors_headers,
            expose_headers=security.cors_expose_headers,
            max_age=security.cors_max_age,
        )
    # The pipeline runs the metrics stage too, unless a layer sits between the access
    # log and the metrics (the host check, the HTTPS redirect), whose answers the
    # metrics do not count.
    fused_metrics: dict[str, Any] | None = None
    between = security.https_redirect or security.allowed_hosts != ["*"]
    if metrics is not None:
        options = dict(metrics)
        metrics_class = options.pop("class")
        if between:
            app.add_middleware(metrics_class, **options)
        else:
            fused_metrics = options
    if security.https_redirect:
        app.add_middleware(HTTPSRedirectMiddleware)
    if security.allowed_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=security.allowed_hosts)
    logging_options = settings.logging
    access_log = (
        {
            "exclude_paths": logging_options.access_exclude_paths,
            "slow_request_ms": logging_options.slow_request_ms,
            "sample_rate": logging_options.access_sample_rate,
            "sample_routes": logging_options.access_sample_routes,
            "user_agent_max_length": logging_options.user_agent_max_length,
            "redactor": Redactor(
                keys=logging_options.redact_keys, headers=logging_options.redact_headers
            ),
        }
        if logging_options.access_log
        else None
    )
    csp = (
        ContentSecurityPolicy.parse(
            security.csp,
            report_only=security.csp_report_only,
            report_uri=security.csp_report_uri,
        )
        if security.csp.strip()
        else None
    )
    request_id = settings.request_id
    registry = fused_metrics.pop("registry") if fused_metrics is not None else None
    app.add_middleware(
        EnterprisePipeline,
        proxy_headers={"trusted_proxies": security.trusted_proxies},
        request_id={
            "header_name": request_id.header_name,
            "trust_incoming": request_id.trust_incoming,
            "max_length": request_id.max_length,
            "pattern": request_id.pattern,
            "use_traceparent": request_id.use_traceparent,
        },
        security_headers={
            "csp": csp,
            "path_policies": docs_csp,
            "hsts_max_age": security.hsts_max_age if security.hsts_enabled else None,
            "hsts_include_subdomains": security.hsts_include_subdomains,
            "hsts_preload": security.hsts_preload,
            "frame_options": security.frame_options,
            "referrer_policy": security.referrer_policy,
        },
        access_log=access_log,
        metrics=fused_metrics,
        metrics_registry=registry,
    )


def _route_keyed_settings(settings: EnterpriseSettings) -> dict[str, Mapping[str, object]]:
    """The settings keyed by route template that are in use, by their names in errors."""
    return {
        "rate_limit.routes": settings.rate_limit.routes if settings.rate_limit.enabled else {},
        "body_limit.routes": settings.body_limit.routes,
        "logging.access_sample_routes": (
            settings.logging.access_sample_routes if settings.logging.access_log else {}
        ),
    }


def installed_settings(app: Starlette) -> EnterpriseSettings | None:
    """Return the settings ``install()`` applied to ``app``, or ``None`` if not installed."""
    settings = getattr(app.state, _STATE_KEY, None)
    return settings if isinstance(settings, EnterpriseSettings) else None


def _run_deploy_check(settings: EnterpriseSettings, *, only: str = "") -> None:
    """Stop a production start on an error-level finding; report every finding.

    Args:
        settings: The settings to check (staging and production only).
        only: Run only the checks whose ID starts with this (``database.``).
    """
    if settings.environment not in (Environment.STAGING, Environment.PRODUCTION):
        return
    findings = [finding for finding in settings.deploy_check() if finding.id.startswith(only)]
    errors = [finding for finding in findings if finding.level == "error"]
    if settings.is_production and errors:
        raise DeployCheckError(errors)
    for finding in findings:
        security_event(
            SecurityEvent.DEPLOY_CHECK_WARNING,
            finding_id=finding.id,
            finding_level=finding.level,
            detail=finding.message,
            fix=finding.fix,
        )


def check_database_settings(app: Starlette, database: DatabaseSettings) -> None:
    """Run the ``database.*`` deploy checks on the settings a ``Database`` really uses.

    ``install()`` checks ``settings.database`` only when it was configured (an app
    without a database keeps the default SQLite URL); ``Database.install()`` calls this
    with its own settings, so the checks apply to the database the app uses.
    """
    settings = installed_settings(app)
    if settings is None:
        return
    if database == settings.database and "database" in settings.model_fields_set:
        return  # install() already checked these
    _run_deploy_check(settings.model_copy(update={"database": database}), only="database.")


def _remove_docs(app: Starlette) -> None:
    """Drop the OpenAPI schema and docs routes FastAPI added at construction."""
    names = ("openapi_url", "docs_url", "redoc_url", "swagger_ui_oauth2_redirect_url")
    paths = {getattr(app, name, None) for name in names} - {None}
    app.router.routes = [
        route
        for route in app.router.routes
        if not (isinstance(route, Route) and route.path in paths)
    ]
    for name in names:
        if hasattr(app, name):
            setattr(app, name, None)

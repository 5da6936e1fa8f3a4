"""``install(app, settings)``: the one place settings become middleware, handlers and routes.

The middleware are added innermost first, so the stack reads, outermost first, as
``docs/how-to/middleware-order.md`` explains::

    RequestID / error shield   every response gets the ID; unhandled errors become 500 problems
    AccessLog                  one line per request, after the response; sees inner statuses
    app                        problem+json handlers for HTTP and validation errors

Later layers (security headers, access log, metrics, CORS, body limit, rate limit, gzip)
slot in between, each at its documented position.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Route

from fastapi_enterprise.deploy_check import DeployCheckError
from fastapi_enterprise.errors import register_exception_handlers
from fastapi_enterprise.middleware.access_log import AccessLogMiddleware
from fastapi_enterprise.middleware.request_id import RequestIDMiddleware
from fastapi_enterprise.openapi import apply_customizers, document_problem_errors
from fastapi_enterprise.redaction import Redactor
from fastapi_enterprise.security_events import SecurityEvent, security_event
from fastapi_enterprise.settings import EnterpriseSettings, Environment

__all__ = ["install", "installed_settings"]

_STATE_KEY = "fastapi_enterprise_settings"


def install(app: Starlette, settings: EnterpriseSettings | None = None) -> None:
    """Make ``app`` production-ready from ``settings``.

    Adds the request-ID middleware (with its error shield), the access log and the
    problem+json exception handlers; initialises Sentry when a DSN is configured;
    documents errors as problem+json in the OpenAPI schema, or removes the API docs
    routes when ``settings.app.docs`` is off. Logging itself is configured only by an
    explicit :func:`~fastapi_enterprise.configure_logging` call.

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
    """
    if installed_settings(app) is not None:
        raise RuntimeError("install() was already called on this app; call it once")
    if app.middleware_stack is not None:
        raise RuntimeError("install() must be called before the app starts serving requests")
    settings = settings if settings is not None else EnterpriseSettings()
    _run_deploy_check(settings)

    register_exception_handlers(app)
    if not settings.app.docs:
        _remove_docs(app)
    elif isinstance(app, FastAPI):
        apply_customizers(app, document_problem_errors)
    # Innermost first: each add_middleware() call wraps the previous ones.
    logging_options = settings.logging
    if logging_options.access_log:
        app.add_middleware(
            AccessLogMiddleware,
            exclude_paths=logging_options.access_exclude_paths,
            slow_request_ms=logging_options.slow_request_ms,
            sample_rate=logging_options.access_sample_rate,
            sample_routes=logging_options.access_sample_routes,
            user_agent_max_length=logging_options.user_agent_max_length,
            redactor=Redactor(
                keys=logging_options.redact_keys, headers=logging_options.redact_headers
            ),
        )
    request_id = settings.request_id
    app.add_middleware(
        RequestIDMiddleware,
        header_name=request_id.header_name,
        trust_incoming=request_id.trust_incoming,
        max_length=request_id.max_length,
        pattern=request_id.pattern,
        use_traceparent=request_id.use_traceparent,
    )
    if settings.sentry.dsn is not None:
        from fastapi_enterprise.sentry import init_sentry  # needs the sentry extra

        init_sentry(settings)
    setattr(app.state, _STATE_KEY, settings)


def installed_settings(app: Starlette) -> EnterpriseSettings | None:
    """Return the settings ``install()`` applied to ``app``, or ``None`` if not installed."""
    settings = getattr(app.state, _STATE_KEY, None)
    return settings if isinstance(settings, EnterpriseSettings) else None


def _run_deploy_check(settings: EnterpriseSettings) -> None:
    if settings.environment not in (Environment.STAGING, Environment.PRODUCTION):
        return
    findings = settings.deploy_check()
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

"""fastapi-enterprise: production-ready FastAPI in one call.

```python
from fastapi import FastAPI
from fastapi_enterprise import EnterpriseSettings, install

settings = EnterpriseSettings()
app = FastAPI(**settings.fastapi_kwargs())
install(app, settings)
```
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from fastapi_enterprise._logging import UnheardErrorHandler
from fastapi_enterprise.client_ip import ClientInfo, ClientIPResolver, client_key, get_client_info
from fastapi_enterprise.conditional import (
    PreconditionFailedError,
    body_entity_tag,
    check_if_match,
    check_if_none_match,
    entity_tag,
    not_modified,
    set_etag,
)
from fastapi_enterprise.context import (
    bind_request,
    continue_request,
    get_csp_nonce,
    get_request_fields,
    get_request_id,
)
from fastapi_enterprise.csp import ContentSecurityPolicy, CSPError
from fastapi_enterprise.deploy_check import DeployCheckError, DeployChecks, Finding
from fastapi_enterprise.errors import (
    PROBLEM_CONTENT_TYPE,
    ProblemResponse,
    problem_response,
    register_exception_handlers,
)
from fastapi_enterprise.health import HealthChecks, HealthStatus
from fastapi_enterprise.install import (
    UnknownRouteTemplateError,
    install,
    installed_health_checks,
    installed_metrics_registry,
    installed_rate_limiter,
    installed_settings,
)
from fastapi_enterprise.log_config import LoggingHandle, configure_logging
from fastapi_enterprise.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    CompressionMiddleware,
    CORSPolicyMiddleware,
    ProxyHeadersMiddleware,
    RateLimitMiddleware,
    RequestIDMiddleware,
    SecurityHeadersMiddleware,
    TrustedHostMiddleware,
    body_limit,
    no_compression,
)
from fastapi_enterprise.middleware.request_id import generate_request_id
from fastapi_enterprise.openapi.customizers import declare_errors
from fastapi_enterprise.pagination import Page, PageParams, paginate
from fastapi_enterprise.ratelimit import RateLimiter, RateLimitPolicy, rate_limit, rate_limit_exempt
from fastapi_enterprise.redaction import Redactor
from fastapi_enterprise.responses import (
    ErrorResponse,
    PaginatedResponse,
    StandardResponse,
    ValidationErrorItem,
    problem_responses,
)
from fastapi_enterprise.routing import UNMATCHED_ROUTE, route_template
from fastapi_enterprise.security_events import SecurityEvent, security_event
from fastapi_enterprise.settings import (
    AppSettings,
    BodyLimitSettings,
    CompressionSettings,
    DatabaseSettings,
    EnterpriseSettings,
    Environment,
    LoggingSettings,
    MetricsSettings,
    OTelSettings,
    RateLimitSettings,
    RedisSettings,
    RequestIDSettings,
    SecuritySettings,
    SentrySettings,
    SettingsValidationError,
)

try:
    __version__ = version("fastapi-enterprise")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

# The library never configures logging by surprise: its records go nowhere until the
# application configures logging (or calls the library's explicit setup), except an
# error that no handler would take, which reaches stderr as it would in bare FastAPI.
logging.getLogger(__name__).addHandler(UnheardErrorHandler())

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "UNMATCHED_ROUTE",
    "AccessLogMiddleware",
    "AppSettings",
    "BodyLimitMiddleware",
    "BodyLimitSettings",
    "CORSPolicyMiddleware",
    "CSPError",
    "ClientIPResolver",
    "ClientInfo",
    "CompressionMiddleware",
    "CompressionSettings",
    "ContentSecurityPolicy",
    "DatabaseSettings",
    "DeployCheckError",
    "DeployChecks",
    "EnterpriseSettings",
    "Environment",
    "ErrorResponse",
    "Finding",
    "HealthChecks",
    "HealthStatus",
    "LoggingHandle",
    "LoggingSettings",
    "MetricsSettings",
    "OTelSettings",
    "Page",
    "PageParams",
    "PaginatedResponse",
    "PreconditionFailedError",
    "ProblemResponse",
    "ProxyHeadersMiddleware",
    "RateLimitMiddleware",
    "RateLimitPolicy",
    "RateLimitSettings",
    "RateLimiter",
    "Redactor",
    "RedisSettings",
    "RequestIDMiddleware",
    "RequestIDSettings",
    "SecurityEvent",
    "SecurityHeadersMiddleware",
    "SecuritySettings",
    "SentrySettings",
    "SettingsValidationError",
    "StandardResponse",
    "TrustedHostMiddleware",
    "UnknownRouteTemplateError",
    "ValidationErrorItem",
    "__version__",
    "bind_request",
    "body_entity_tag",
    "body_limit",
    "check_if_match",
    "check_if_none_match",
    "client_key",
    "configure_logging",
    "continue_request",
    "declare_errors",
    "entity_tag",
    "generate_request_id",
    "get_client_info",
    "get_csp_nonce",
    "get_request_fields",
    "get_request_id",
    "install",
    "installed_health_checks",
    "installed_metrics_registry",
    "installed_rate_limiter",
    "installed_settings",
    "no_compression",
    "not_modified",
    "paginate",
    "problem_response",
    "problem_responses",
    "rate_limit",
    "rate_limit_exempt",
    "register_exception_handlers",
    "route_template",
    "security_event",
    "set_etag",
]

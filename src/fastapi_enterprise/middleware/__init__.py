"""Pure-ASGI middleware, one per module; each works alone with ``app.add_middleware``."""

from __future__ import annotations

from fastapi_enterprise.middleware.access_log import AccessLogMiddleware
from fastapi_enterprise.middleware.body_limit import BodyLimitMiddleware, body_limit
from fastapi_enterprise.middleware.compression import CompressionMiddleware, no_compression
from fastapi_enterprise.middleware.cors import CORSPolicyMiddleware
from fastapi_enterprise.middleware.pipeline import EnterprisePipeline
from fastapi_enterprise.middleware.proxy_headers import ProxyHeadersMiddleware
from fastapi_enterprise.middleware.rate_limit import RateLimitMiddleware
from fastapi_enterprise.middleware.request_id import RequestIDMiddleware
from fastapi_enterprise.middleware.security_headers import SecurityHeadersMiddleware
from fastapi_enterprise.middleware.trusted_host import TrustedHostMiddleware

__all__ = [
    "AccessLogMiddleware",
    "BodyLimitMiddleware",
    "CORSPolicyMiddleware",
    "CompressionMiddleware",
    "EnterprisePipeline",
    "ProxyHeadersMiddleware",
    "RateLimitMiddleware",
    "RequestIDMiddleware",
    "SecurityHeadersMiddleware",
    "TrustedHostMiddleware",
    "body_limit",
    "no_compression",
]

"""Pure-ASGI middleware, one per module; each works alone with ``app.add_middleware``."""

from __future__ import annotations

from fastapi_enterprise.middleware.access_log import AccessLogMiddleware
from fastapi_enterprise.middleware.request_id import RequestIDMiddleware

__all__ = ["AccessLogMiddleware", "RequestIDMiddleware"]

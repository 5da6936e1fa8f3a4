"""``EnterprisePipeline``: the outer stages of ``install()``'s stack in one layer.

``install()`` used to stack five layers in front of the rest: proxy headers, the request
ID with its error shield, the security headers, the access log and (when nothing sits
between them) the metrics. Each wrapped ``send`` (two also ``receive``), copied the
response's start message, answered an escaped exception, and timed, counted and
classified the same response again. Here they run as stages of one layer, in the same
order, with one ``send`` and one ``receive`` wrapper, and through the code each
middleware class runs on its own:

==========================  ==========================================================
stage                       shared code
==========================  ==========================================================
proxy headers               :meth:`ProxyHeadersMiddleware.resolve`
request ID                  :meth:`RequestIDMiddleware.request_id_for`, ``stamped``
security headers            :meth:`SecurityHeadersMiddleware.headers_for`, ``merged``
access log                  :meth:`AccessLogMiddleware.log_line`, ``log_unfinished``
metrics                     :meth:`PrometheusMiddleware.begin`, ``end``
error shield                :func:`~fastapi_enterprise.errors.answer_exception`
==========================  ==========================================================

What a response gets is what the stack gave it: the security headers merged into the
app's, then exactly one request-ID header; an exception that escapes the app is counted
by type, answered with the problem+json 500 (through the wrapper, so it carries both
header sets and is logged and measured), and logged once when the client is gone or the
response had started. The access line and the metrics use one start time, one byte
count and one :func:`~fastapi_enterprise.errors.final_status`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_enterprise.context import _reset_csp_nonce, _set_csp_nonce
from fastapi_enterprise.errors import answer_exception, final_status, log_unhandled_exception
from fastapi_enterprise.middleware.access_log import AccessLogMiddleware
from fastapi_enterprise.middleware.proxy_headers import ProxyHeadersMiddleware
from fastapi_enterprise.middleware.request_id import (
    RequestIDMiddleware,
    enter_request,
    exit_request,
)
from fastapi_enterprise.middleware.security_headers import SecurityHeadersMiddleware

if TYPE_CHECKING:
    from fastapi_enterprise.metrics import PrometheusMiddleware

__all__ = ["EnterprisePipeline"]


class EnterprisePipeline:
    """Proxy headers, request ID, security headers, access log and metrics as one layer.

    Each stage is configured with the keyword arguments of its middleware class (which
    the pipeline builds around the app it wraps, and never calls); ``None`` leaves the
    access log or the metrics out.

    Args:
        app: The ASGI app to wrap.
        proxy_headers: Options of :class:`ProxyHeadersMiddleware`.
        request_id: Options of :class:`RequestIDMiddleware`.
        security_headers: Options of :class:`SecurityHeadersMiddleware`.
        access_log: Options of :class:`AccessLogMiddleware`, or ``None``.
        metrics: Options of :class:`~fastapi_enterprise.metrics.PrometheusMiddleware`
            (without ``registry``), or ``None``.
        metrics_registry: The metrics' registry (a keyword of its own, so that
            ``install()``'s trial build can hand it a scratch one).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        proxy_headers: Mapping[str, Any] | None = None,
        request_id: Mapping[str, Any] | None = None,
        security_headers: Mapping[str, Any] | None = None,
        access_log: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        metrics_registry: Any = None,
    ) -> None:
        self.app = app
        self.proxy = ProxyHeadersMiddleware(app, **(proxy_headers or {}))
        self.request_id = RequestIDMiddleware(app, **(request_id or {}))
        self.security = SecurityHeadersMiddleware(app, **(security_headers or {}))
        self.access = AccessLogMiddleware(app, **access_log) if access_log is not None else None
        self.metrics: PrometheusMiddleware | None = None
        if metrics is not None:
            from fastapi_enterprise.metrics import PrometheusMiddleware  # the metrics extra

            options = dict(metrics)
            if metrics_registry is not None:
                options["registry"] = metrics_registry
            self.metrics = PrometheusMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the stages around one HTTP request; resolve WebSocket clients; pass the rest."""
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                self.proxy.resolve(scope)
            await self.app(scope, receive, send)
            return
        self.proxy.resolve(scope)
        stamp = self.request_id.stamped
        request_id = self.request_id.request_id_for(scope)
        id_value = request_id.encode("latin-1")
        security = self.security
        merge = security.merged
        security_headers, nonce = security.headers_for(scope)
        path = scope["path"]
        access = self.access
        if access is not None and path in access.exclude_paths:
            access = None
        metrics = self.metrics
        if metrics is not None and path in metrics.exclude_paths:
            metrics = None
        method, tallied = metrics.begin(scope) if metrics is not None else ("", False)

        start = time.perf_counter()
        started = False  # a start message went out (or was being sent): too late for a 500
        status: int | None = None  # the status of a start message that was sent
        request_bytes = 0
        response_bytes = 0
        completed = False
        client_gone = False
        logged = False

        async def receive_counted() -> Message:
            nonlocal request_bytes, client_gone
            message = await receive()
            if message["type"] == "http.request":
                request_bytes += len(message.get("body", b""))
            elif message["type"] == "http.disconnect" and not completed:
                client_gone = True
            return message

        async def send_stamped(message: Message) -> None:
            nonlocal started, status, response_bytes, completed, client_gone, logged
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                headers = stamp(merge(message.get("headers", ()), security_headers), id_value)
                message = {**message, "headers": headers}
            try:
                await send(message)
            except BaseException:
                client_gone = True  # the server could not write to the client
                raise
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                response_bytes += len(message.get("body", b""))
                if not message.get("more_body", False) and not completed:
                    completed = True
                    if access is not None:
                        logged = True
                        access.log_line(scope, status or 500, start, request_bytes, response_bytes)

        counted = False
        failure: BaseException | None = None
        tokens = enter_request(request_id, scope)
        nonce_token = _set_csp_nonce(nonce)
        try:
            try:
                await self.app(
                    scope,
                    receive_counted if access is not None or metrics is not None else receive,
                    send_stamped,
                )
            except Exception as exc:  # noqa: BLE001 - the error shield answers everything
                if metrics is not None:
                    metrics.count_exception(method, scope, type(exc).__name__)
                    counted = True
                if client_gone:
                    failure = exc  # the access line names it, as before the answer
                await _shield(scope, receive, send_stamped, exc, started=started)
            except BaseException as exc:  # cancelled: counted and reported, not answered
                if metrics is not None and not counted:
                    metrics.count_exception(method, scope, type(exc).__name__)
                    counted = True
                failure = exc
                raise
        finally:
            try:
                if metrics is not None:
                    metrics.end(
                        scope,
                        method,
                        tallied,
                        time.perf_counter() - start,
                        final_status(status, completed=completed, client_gone=client_gone),
                        request_bytes,
                        response_bytes,
                        counted=counted,
                    )
                if access is not None and not logged:
                    access.log_unfinished(
                        scope,
                        status,
                        start,
                        request_bytes,
                        response_bytes,
                        completed=completed,
                        client_gone=client_gone,
                        failure=failure,
                    )
            finally:
                _reset_csp_nonce(nonce_token)
                exit_request(tokens)


async def _shield(
    scope: Scope, receive: Receive, send: Send, exc: Exception, *, started: bool
) -> None:
    """Answer ``exc`` (or log it, once the response started); never raise.

    An answer that cannot be sent (the client is gone) is logged once, as the request-ID
    middleware's shield does with what escapes every other layer.
    """
    try:
        await answer_exception(scope, receive, send, exc, response_started=started)
    except Exception as late:  # noqa: BLE001 - the outermost shield: nothing may escape
        log_unhandled_exception(scope, late)

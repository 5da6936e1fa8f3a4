"""``init_sentry(settings)``: error tracking with every event scrubbed by the shared redactor.

Needs the ``sentry`` extra: ``pip install 'fastapi-enterprise[sentry]'``.

What it sets up:

- no user identity, cookies or request bodies collected, and no local variables in
  stack frames (locals hold secrets under names no scrubber can guess; opt in with
  ``include_local_variables``);
- ``before_send`` and ``before_breadcrumb`` pass headers, cookies, query strings, request
  bodies, extra data, contexts, exception messages, log messages and breadcrumbs through
  the same :class:`~fastapi_enterprise.redaction.Redactor` as the logs;
- the request ID as the ``request_id`` tag, so an event leads straight to its log lines;
- log records at ``event_level`` (error) become events, and at ``breadcrumb_level``
  (info) breadcrumbs; the error shield's single traceback log is what reports an
  unhandled exception, so it is reported once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise.context import get_request_id
from fastapi_enterprise.middleware.access_log import ACCESS_LOGGER
from fastapi_enterprise.redaction import MASK, Redactor, mask_dsn_in_text
from fastapi_enterprise.settings import EnterpriseSettings

try:
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
    from sentry_sdk.utils import BadDsn
except ImportError as exc:  # pragma: no cover - exercised by the tests_minimal session
    raise MissingExtraError("sentry", module=__name__, missing="sentry-sdk") from exc

__all__ = ["init_sentry", "scrub_event"]


def init_sentry(
    settings: EnterpriseSettings,
    *,
    redactor: Redactor | None = None,
    **options: Any,
) -> bool:
    """Initialise the Sentry SDK from ``settings.sentry``; do nothing without a DSN.

    Args:
        settings: The settings; ``settings.sentry`` holds the DSN and sample rates, and
            ``settings.logging`` the redaction rules shared with the logs.
        redactor: Override the redactor built from ``settings.logging``.
        **options: Extra ``sentry_sdk.init()`` options (``transport``,
            ``integrations``, ...); they override the computed ones.

    Returns:
        Whether Sentry was initialised (``False`` when no DSN is configured).
    """
    sentry = settings.sentry
    if sentry.dsn is None:
        return False
    shared = redactor or Redactor(
        keys=settings.logging.redact_keys, headers=settings.logging.redact_headers
    )

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        return scrub_event(event, shared)

    def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        return _scrub_crumb(crumb, shared)

    init_options: dict[str, Any] = {
        "dsn": sentry.dsn.get_secret_value(),
        "environment": sentry.environment or settings.environment.value,
        "release": sentry.release or f"{settings.app.name}@{settings.app.version}",
        "traces_sample_rate": sentry.traces_sample_rate,
        "profiles_sample_rate": sentry.profiles_sample_rate,
        # What send_default_pii=False meant, spelled out in the SDK's newer option: no user
        # identity, no cookies, no request bodies; frame locals only when opted in.
        "data_collection": {
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_bodies": [],
            "stack_frame_variables": sentry.include_local_variables,
        },
        "include_local_variables": sentry.include_local_variables,
        "before_send": before_send,
        "before_breadcrumb": before_breadcrumb,
        "integrations": [
            LoggingIntegration(
                level=logging.getLevelName(sentry.breadcrumb_level),
                event_level=logging.getLevelName(sentry.event_level),
            )
        ],
    }
    init_options.update(options)
    error: str | None = None
    try:
        sentry_sdk.init(**init_options)
    except (BadDsn, ValueError, TypeError) as exc:
        error = mask_dsn_in_text(str(exc), init_options.get("dsn") or "")
    if error is not None:
        # Outside the except block, so the SDK's error (which may quote the DSN) is
        # neither the cause nor the context of this one. The DSN itself is not shown:
        # its user part is the project's key, whatever the scheme.
        raise ValueError(f"sentry.dsn is not a usable DSN: {error}")
    # An access line at error level repeats what the error shield already reported.
    ignore_logger(ACCESS_LOGGER)
    return True


def scrub_event(event: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """Redact a Sentry event in place and tag it with the current request ID."""
    request = event.get("request")
    if isinstance(request, dict):
        _scrub_request(request, redactor)
    for key in ("extra", "contexts", "tags"):
        if isinstance(event.get(key), Mapping):
            event[key] = redactor.value(event[key])
    for exception in (event.get("exception") or {}).get("values") or ():
        if isinstance(exception.get("value"), str):
            exception["value"] = redactor.text(exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames") or ():
            if "vars" in frame:
                frame["vars"] = redactor.value(frame["vars"])
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = redactor.text(logentry[key])
        if "params" in logentry:
            logentry["params"] = redactor.value(logentry["params"])
    if isinstance(event.get("message"), str):
        event["message"] = redactor.text(event["message"])
    breadcrumbs = event.get("breadcrumbs")
    crumbs = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    for crumb in crumbs or ():
        _scrub_crumb(crumb, redactor)
    request_id = get_request_id()
    if request_id is not None:
        tags = event.setdefault("tags", {})
        if isinstance(tags, dict):
            tags["request_id"] = request_id
    return event


def _scrub_request(request: dict[str, Any], redactor: Redactor) -> None:
    headers = request.get("headers")
    if isinstance(headers, Mapping):
        request["headers"] = {
            name: redactor.header(name, str(value)) for name, value in headers.items()
        }
    if request.get("cookies"):
        request["cookies"] = MASK
    query = request.get("query_string")
    if isinstance(query, str):
        request["query_string"] = redactor.query_string(query)
    if isinstance(request.get("url"), str):
        request["url"] = redactor.text(request["url"])
    if "data" in request:
        request["data"] = redactor.value(request["data"])


def _scrub_crumb(crumb: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    if isinstance(crumb.get("message"), str):
        crumb["message"] = redactor.text(crumb["message"])
    if isinstance(crumb.get("data"), Mapping):
        crumb["data"] = redactor.value(crumb["data"])
    return crumb

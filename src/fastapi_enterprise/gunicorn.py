"""gunicorn: the master and every worker write the same lines as the app.

gunicorn's master logs through handlers of its own (plain text on standard error), and
without ``--preload`` it never imports the app, so it never runs the app's
:func:`~fastapi_enterprise.configure_logging`: its lines ("Listening at", "Booting
worker", "Shutting down") come out in another format beside the app's JSON. This
logger class configures logging from ``EnterpriseSettings()`` (the ``FE_*`` environment)
in the master and hands gunicorn's records to that pipeline (with
``--worker-class uvicorn_worker.UvicornWorker``)::

    gunicorn app:app --logger-class fastapi_enterprise.gunicorn.Logger

or as a config module, which also sets the uvicorn worker class::

    gunicorn app:app --config python:fastapi_enterprise.gunicorn

The workers keep it: they are forked from the master with the pipeline, which starts
its writer threads again in each child; an app that calls ``configure_logging()`` at
import replaces it with the same settings.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger as _GunicornLogger  # type: ignore[import-untyped]

from fastapi_enterprise.log_config import configure_logging, current_logging_handle
from fastapi_enterprise.settings import EnterpriseSettings

__all__ = ["Logger", "logger_class", "worker_class"]

logger_class = f"{__name__}.Logger"
"""For ``--config python:fastapi_enterprise.gunicorn``: this module's logger class."""

worker_class = "uvicorn_worker.UvicornWorker"
"""For ``--config python:fastapi_enterprise.gunicorn``: the uvicorn worker."""


class Logger(_GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger, writing through :func:`~fastapi_enterprise.configure_logging`.

    Levels follow gunicorn's ``--log-level`` for gunicorn's own records; format,
    outputs and redaction follow ``settings.logging``.
    """

    def setup(self, cfg: Any) -> None:
        """Configure logging once per process, then route gunicorn's loggers into it."""
        super().setup(cfg)
        if current_logging_handle() is None:
            configure_logging(EnterpriseSettings())
        for log in (self.error_log, self.access_log):
            # A handler rather than propagation: the uvicorn worker copies these
            # handlers to uvicorn's loggers and turns their propagation off.
            log.handlers = [_ToRoot()]
            log.propagate = False


class _ToRoot(logging.Handler):
    """Hands a record to the root logger's handlers (the pipeline, whichever is current)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Pass ``record`` on to the root logger."""
        logging.getLogger().handle(record)

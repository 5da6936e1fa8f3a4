"""gunicorn settings of a TecnoCursos instance, from the environment.

Run from ``examples/tecnocursos`` (or the image's app directory)::

    gunicorn -c deploy/gunicorn.conf.py 'tecnocursos.core.app:create_app()'

``GUNICORN_BIND`` (``0.0.0.0:8000``), ``GUNICORN_WORKERS`` (2: a small machine),
``GUNICORN_TIMEOUT`` and ``GUNICORN_GRACEFUL_TIMEOUT`` override the defaults. With
``PROMETHEUS_MULTIPROC_DIR`` set, the directory is emptied when the master starts and a
dead worker's live gauges are dropped (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from fastapi_enterprise import configure_logging
from tecnocursos.core.settings import TecnoCursosSettings

# The master logs through the app's own settings (TC_*): configured here, before
# gunicorn sets its logger up, so the library's Logger reuses this handle instead of
# configuring one from EnterpriseSettings() (the FE_* environment).
configure_logging(TecnoCursosSettings())

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
logger_class = "fastapi_enterprise.gunicorn.Logger"
# A worker silent this long is killed and replaced (the uvicorn worker notifies the
# master from its event loop, so only a blocked loop trips it).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# SIGTERM: in-flight requests get this long to finish (nginx sends no new ones to a
# drained instance).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# Request line and header caps (nginx's are tighter; these hold for direct traffic).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# uvicorn believes no forwarding header: the library's ProxyHeadersMiddleware, with
# TC_SECURITY__TRUSTED_PROXIES naming nginx, is the one place the client is resolved.
forwarded_allow_ips = ""

_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def on_starting(server: Any) -> None:
    """Empty the metrics directory: files of a previous run would be summed in."""
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
        os.makedirs(_metrics_dir)


def child_exit(server: Any, worker: Any) -> None:
    """Drop the live gauges of a worker that exited."""
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


# gunicorn 25+'s control socket has one default path per user: two instances on one
# machine would fight over it, and nothing here uses it.
control_socket_disable = True

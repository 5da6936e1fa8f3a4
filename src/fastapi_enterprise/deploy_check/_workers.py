"""How many worker processes serve this app, as far as the environment tells."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence

__all__ = ["worker_processes"]

_SERVER_PROGRAMS = ("gunicorn", "uvicorn", "hypercorn")


def worker_processes(
    environ: Mapping[str, str] | None = None, argv: Sequence[str] | None = None
) -> int | None:
    """How many worker processes serve this app, when the environment says; else ``None``.

    Read from ``WEB_CONCURRENCY``, the ``--workers``/``-w`` option of a gunicorn,
    uvicorn or hypercorn command line (and ``GUNICORN_CMD_ARGS``), and
    ``PROMETHEUS_MULTIPROC_DIR`` (set for multi-process metrics: at least two).
    """
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    counts: list[int] = []
    concurrency = environ.get("WEB_CONCURRENCY", "").strip()
    if concurrency.isdigit():
        counts.append(int(concurrency))
    if argv and any(program in argv[0] for program in _SERVER_PROGRAMS):
        arguments = [*argv[1:], *shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))]
        counts.extend(_workers_option(arguments))
    if environ.get("PROMETHEUS_MULTIPROC_DIR") or environ.get("prometheus_multiproc_dir"):
        counts.append(2)
    return max(counts) if counts else None


def _workers_option(arguments: Sequence[str]) -> list[int]:
    found: list[int] = []
    for index, argument in enumerate(arguments):
        value: str | None = None
        if argument in ("-w", "--workers") and index + 1 < len(arguments):
            value = arguments[index + 1]
        elif argument.startswith("--workers="):
            value = argument.partition("=")[2]
        elif argument.startswith("-w") and argument[2:].isdigit():
            value = argument[2:]
        if value is not None and value.isdigit():
            found.append(int(value))
    return found

"""``python -m tecnocursos.demo``: load the demo data, or serve the demo.

``python -m tecnocursos.demo`` (or ``... load``) runs the migrations on the database of the
app's settings (``TC_DATABASE__URL``...) and adds the demo accounts and the sample course.
The accounts it creates get the password in ``TECNOCURSOS_DEMO_PASSWORD``, or a generated
one printed once. It refuses staging and production settings (exit status 2).

``python -m tecnocursos.demo serve`` runs TecnoCursos on embedded defaults, everything
under one directory (``--dir``, default ``.demo``): a SQLite file, media files, a signing
key and the demo password, both generated on the first start and kept, so tokens and
logins survive a restart. The cache and the rate limits are in memory, the console shows
one JSON access line per request, and ``/docs`` is served without a CDN when the
``docs-offline`` extra is installed. Any ``TC_*`` variable set in the environment wins
over these defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.demo.data import COURSE, COURSE_OWNER
from tecnocursos.demo.seed import (
    DemoRefusedError,
    DemoReport,
    check_environment,
    load_demo_data,
    migrate,
)

__all__ = ["PASSWORD_VARIABLE", "demo_defaults", "main"]

PASSWORD_VARIABLE = "TECNOCURSOS_DEMO_PASSWORD"  # noqa: S105 - a variable's name
"""The environment variable with the demo accounts' password (not a ``TC_`` setting)."""


def _secret_file(path: Path, make: int) -> str:
    """The secret kept in ``path``; ``secrets.token_urlsafe(make)`` written there first."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(make) + "\n")
    return path.read_text(encoding="utf-8").strip()


def demo_defaults(directory: Path) -> dict[str, str]:
    """The settings of ``serve``, as ``TC_*`` variables, for the demo in ``directory``.

    Creates ``directory``, its signing key (``secret_key``) and its demo password
    (``password``) when missing; both files are readable by their owner only.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    defaults = {
        "TC_ENVIRONMENT": "development",
        "TC_DATABASE__URL": f"sqlite:///{directory / 'tecnocursos.db'}",
        "TC_STORAGE__LOCAL_DIR": str(directory / "media"),
        "TC_SECURITY__SECRET_KEY": _secret_file(directory / "secret_key", 48),
        "TC_LOGGING__FORMAT": "json",
        "TC_CACHE__BACKEND": "memory",
        "TC_RATE_LIMIT__STORAGE_URL": "memory://",
        PASSWORD_VARIABLE: _secret_file(directory / "password", 12),
    }
    if importlib.util.find_spec("fastapi_offline") is not None:
        defaults["TC_APP__DOCS_OFFLINE"] = "true"  # Swagger UI and ReDoc without a CDN
    return defaults


def _load(settings: TecnoCursosSettings, password: str) -> DemoReport:
    check_environment(settings)  # before the migrations touch anything
    migrate(settings)  # Alembic runs its own event loop: outside ours
    return asyncio.run(load_demo_data(settings, password))


def _print_report(report: DemoReport, *, generated: bool) -> None:
    for account in report.accounts:
        if account.created:
            state = "created"
        elif account.password_works or generated:
            state = "exists (password unchanged)"
        else:
            state = "exists, with another password (unchanged)"
        print(f"  {account.role:<10} {account.email:<38} {state}")
    course = "created" if report.project_created else "exists"
    print(
        f"  course     project {report.project_id} ({course}): {COURSE.title!r}, "
        f"{report.scene_count} scenes ({report.scenes_created} added)"
    )
    if not report.changed:
        print("Nothing to add: the demo data was already there.")


def _command_load() -> int:
    settings = TecnoCursosSettings()
    given = os.environ.get(PASSWORD_VARIABLE)
    password = given or secrets.token_urlsafe(12)
    report = _load(settings, password)
    print("TecnoCursos demo data:")
    _print_report(report, generated=not given)
    if not given and any(account.created for account in report.accounts):
        print(
            f"Password of the accounts created: {password}\n"
            "It is shown this once and stored only as a hash; set "
            f"{PASSWORD_VARIABLE} to choose it."
        )
    return 0


def _command_serve(directory: Path, host: str, port: int, environ: MutableMapping[str, str]) -> int:
    defaults = demo_defaults(directory)
    for name, value in defaults.items():
        environ.setdefault(name, value)  # what the caller set wins
    settings = TecnoCursosSettings()
    password = environ[PASSWORD_VARIABLE]
    kept = password == defaults[PASSWORD_VARIABLE]
    where = f"kept in {directory / 'password'}" if kept else f"from {PASSWORD_VARIABLE}"
    report = _load(settings, password)
    base = f"http://{host}:{port}"
    print(f"TecnoCursos demo on {base} (API docs: {base}/docs)")
    print(f"Data in {directory.resolve()} (delete it to start over). Accounts:")
    _print_report(report, generated=False)
    print(f"Password of the demo accounts: {password} ({where})")
    print(
        f"Try: TOKEN=$(curl -s {base}/auth/token -d username={COURSE_OWNER} "
        f"-d password={password} | python3 -c 'import json,sys; print(json.load(sys.stdin)"
        '["access_token"])\')\n'
        f"Render the course: curl -s -X POST {base}/projects/{report.project_id}/videos "
        '-H "Authorization: Bearer $TOKEN"\n'
        f'Follow it: curl -N {base}/videos/<id>/events -H "Authorization: Bearer $TOKEN"\n'
        "Stop with Ctrl+C.",
        flush=True,
    )
    import uvicorn  # only the server needs it

    uvicorn.run(
        "tecnocursos.core.app:create_app",
        factory=True,
        host=host,
        port=port,
        # The app's configure_logging() takes over uvicorn's loggers; its access lines
        # replace uvicorn's.
        access_log=False,
        # Open progress streams (GET /videos/{id}/events) would otherwise hold Ctrl+C
        # until their render ends.
        timeout_graceful_shutdown=5,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tecnocursos.demo", description="TecnoCursos demo data and server."
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("load", help="migrate and add the demo data (the default)")
    serve = commands.add_parser("serve", help="load the demo data and serve the app")
    serve.add_argument("--dir", type=Path, default=Path(".demo"), help="demo data directory")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "serve":
            return _command_serve(arguments.dir, arguments.host, arguments.port, os.environ)
        return _command_load()
    except DemoRefusedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

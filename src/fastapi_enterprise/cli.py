"""The ``fastapi-enterprise`` command: OpenAPI, Postman and the deploy check.

It writes an app's OpenAPI schema or a Postman collection, and runs the settings deploy
check.

::

    fastapi-enterprise openapi examples.minimal.app:app -o openapi.json
    fastapi-enterprise postman examples.minimal.app:app -o collection.json
    fastapi-enterprise postman --factory myapp.main:create_app -o collection.json
    FE_ENVIRONMENT=production fastapi-enterprise check

Exit codes: 0 success, 1 the check found errors or the app could not be loaded, 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from fastapi_enterprise.redaction import DEFAULT_REDACTOR

__all__ = ["CLIError", "load_app", "load_attribute", "main"]


class CLIError(Exception):
    """A problem the user can fix; printed without a traceback."""


def load_app(path: str, *, app_dir: str | None = None, factory: bool = False) -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted) and return it.

    Args:
        path: Where the app is, as ``package.module:attribute``.
        app_dir: Directory to import from (default: the current one).
        factory: The attribute is a function that builds the app (``create_app``), called
            with no arguments, as ``uvicorn --factory`` does.

    Raises:
        CLIError: The path is malformed, the module does not import, the factory fails,
            or the attribute (or what the factory returns) is missing or not a FastAPI app.
    """
    target = load_attribute(path, app_dir=app_dir, what="APP", example="package.module:app")
    if factory:
        if not callable(target):
            raise CLIError(f"{path!r} is not callable, so it cannot be an app factory")
        try:
            # What the factory prints or logs (an app that configures logging in its
            # factory) goes to standard error: standard output carries the document.
            with contextlib.redirect_stdout(sys.stderr):
                target = target()
        except Exception as exc:  # noqa: BLE001 - any factory failure is reported the same way
            reason = DEFAULT_REDACTOR.text(str(exc))
            raise CLIError(
                f"the app factory {path!r} failed: {type(exc).__name__}: {reason}"
            ) from None
    if not callable(getattr(target, "openapi", None)):
        hint = "" if factory or not callable(target) else "; if it builds the app, pass --factory"
        raise CLIError(f"{path!r} is not a FastAPI app (it has no openapi() method){hint}")
    return target


def _write(document: dict[str, Any], output: str | None, indent: int, stdout: TextIO) -> None:
    text = json.dumps(document, indent=indent or None, ensure_ascii=False) + "\n"
    if output in (None, "-"):
        stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _openapi(args: argparse.Namespace, stdout: TextIO) -> int:
    app = load_app(args.app, app_dir=args.app_dir, factory=args.factory)
    spec = app.openapi()
    if not spec:
        raise CLIError("the app serves no OpenAPI schema (docs or openapi_url are off)")
    _write(spec, args.output, args.indent, stdout)
    return 0


def _postman(args: argparse.Namespace, stdout: TextIO) -> int:
    from fastapi_enterprise.openapi.postman import openapi_to_postman

    app = load_app(args.app, app_dir=args.app_dir, factory=args.factory)
    spec = app.openapi()
    if not spec:
        raise CLIError("the app serves no OpenAPI schema (docs or openapi_url are off)")
    _write(openapi_to_postman(spec, base_url=args.base_url), args.output, args.indent, stdout)
    return 0


def _check(args: argparse.Namespace, stdout: TextIO) -> int:
    from fastapi_enterprise.settings import EnterpriseSettings, SettingsValidationError

    settings_class: Any = EnterpriseSettings
    if args.settings:
        settings_class = load_attribute(args.settings, app_dir=args.app_dir)
    try:
        settings = settings_class()
    except SettingsValidationError as exc:
        raise CLIError(str(exc)) from None
    findings = settings.deploy_check()
    errors = [finding for finding in findings if finding.level == "error"]
    for finding in findings:
        stdout.write(f"{finding}\n")
    stdout.write(
        f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s) "
        f"(environment: {settings.environment.value})\n"
    )
    return 1 if errors else 0


def load_attribute(
    path: str,
    *,
    app_dir: str | None = None,
    what: str = "--settings",
    example: str = "package.module:Settings",
) -> Any:
    """Import ``package.module:attribute`` (dotted attributes allowed) and return it.

    Raises:
        CLIError: The path is malformed, the module does not import, or it has no such
            attribute.
    """
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise CLIError(f"{what} must look like '{example}', not {path!r}")
    directory = app_dir if app_dir is not None else os.getcwd()
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        # Standard output carries the exported document: whatever the module prints or
        # logs while it loads (an app that calls configure_logging() at import logs to
        # the stdout of that moment) goes to standard error instead.
        with contextlib.redirect_stdout(sys.stderr):
            module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is reported the same way
        reason = DEFAULT_REDACTOR.text(str(exc))
        raise CLIError(
            f"could not import module {module_name!r}: {type(exc).__name__}: {reason}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CLIError(f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastapi-enterprise", description="Tools for apps built with fastapi-enterprise."
    )
    parser.add_argument("--app-dir", default=None, help="Directory to import the app from.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("openapi", "Write the app's OpenAPI schema as JSON."),
        ("postman", "Write a Postman Collection v2.1 of the app's API."),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("app", help="The app, as package.module:app.")
        command.add_argument(
            "--factory",
            action="store_true",
            help="APP is a function returning the app (called with no arguments).",
        )
        command.add_argument(
            "-o", "--output", default=None, help="File to write (default: stdout)."
        )
        command.add_argument("--indent", type=int, default=2, help="JSON indentation (0: compact).")
        if name == "postman":
            command.add_argument(
                "--base-url", default="http://127.0.0.1:8000", help="Initial {{baseUrl}} value."
            )
    check = commands.add_parser("check", help="Run the settings deploy check.")
    check.add_argument("--settings", default=None, help="Settings class, as module:Class.")
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    out = stdout or sys.stdout
    args = _parser().parse_args(argv)
    handlers = {"openapi": _openapi, "postman": _postman, "check": _check}
    try:
        return handlers[args.command](args, out)
    except CLIError as exc:
        sys.stderr.write(f"fastapi-enterprise: error: {exc}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

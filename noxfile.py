"""Task runner: `nox -l` lists the sessions; `nox -s tests` runs the suite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "tests_minimal", "lint", "typecheck", "docs", "build"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
TECNOCURSOS = ROOT / "examples" / "tecnocursos"


def group(name: str) -> list[str]:
    """The requirements of one dependency group of pyproject.toml."""
    return list(nox.project.dependency_groups(PYPROJECT, name))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole suite with every extra installed, measuring coverage of src/."""
    session.install(".[all]", *group("test"))
    session.run(
        "pytest",
        "--cov",
        "--cov-report=term-missing:skip-covered",
        "--cov-fail-under=95",
        *session.posargs,
        env={"COVERAGE_FILE": str(ROOT / ".coverage")},
    )


@nox.session
def tests_minimal(session: nox.Session) -> None:
    """Run the suite with no extra installed: the core must import and work alone."""
    session.install(".", *group("test"))
    # Prove the extras are really absent before claiming the core works without them.
    check = (
        "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is not None)"
    )
    for module in ("redis", "prometheus_client", "sentry_sdk"):
        session.run("python", "-c", check, module, silent=True)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def tecnocursos_group(name: str) -> list[str]:
    """The requirements of one dependency group of the TecnoCursos example project."""
    project = nox.project.load_toml(TECNOCURSOS / "pyproject.toml")
    return list(nox.project.dependency_groups(project, name))


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over src, tests, examples, benchmarks and this file.

    The TecnoCursos example is its own project: its package is checked here too, and its
    tests with its own configuration (their ``tests.conftest`` would clash with ours).
    """
    session.install(
        "-e", ".[all]", "-e", str(TECNOCURSOS), *group("typecheck"), *tecnocursos_group("test")
    )
    session.run("mypy")
    session.chdir(TECNOCURSOS)
    session.run("mypy")


@nox.session
def example_tecnocursos(session: nox.Session) -> None:
    """Run the TecnoCursos example's tests against the library in this repository.

    PostgreSQL and MariaDB tests use ``TC_TEST_POSTGRES_URL`` and ``TC_TEST_MARIADB_URL``
    (default: the ``test`` databases on 127.0.0.1); with ``CI=true`` a missing server
    fails them instead of skipping.
    """
    session.install("-e", ".", "-e", str(TECNOCURSOS), *tecnocursos_group("test"))
    session.chdir(TECNOCURSOS)
    session.run("pytest", *session.posargs)


def _install_debian_tools(session: nox.Session, tools: dict[str, str]) -> None:
    """Install the Debian packages (values) of the commands (keys) missing from PATH."""
    missing = sorted({package for command, package in tools.items() if not shutil.which(command)})
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        session.error(f"missing commands: install the Debian packages {', '.join(missing)}")
    session.run("apt-get", "update", "-qq", external=True)
    session.run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        *missing,
        external=True,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


DEPLOY_TOOLS = {
    "nginx": "nginx",
    "openssl": "openssl",
    "redis-server": "redis-server",
    "prometheus": "prometheus",
    "espeak-ng": "espeak-ng",
    # deploy/scripts: backups and restores, webhooks and readiness checks, the lock.
    "pg_dump": "postgresql-client",
    "pg_restore": "postgresql-client",
    "mariadb-dump": "mariadb-client",
    "mariadb": "mariadb-client",
    "curl": "curl",
    "flock": "util-linux",
}
"""What the live deployment and its scripts run (command -> Debian package)."""


def _install_deploy_kit(session: nox.Session) -> None:
    """The library, TecnoCursos, its test and deploy groups; then work from the app."""
    session.install(
        "-e",
        ".",
        "-e",
        str(TECNOCURSOS),
        *tecnocursos_group("test"),
        *tecnocursos_group("deploy"),
    )
    session.chdir(TECNOCURSOS)


@nox.session
def deploy_proof(session: nox.Session) -> None:
    """Run the TecnoCursos deployment kit live, without Docker, and test it through nginx.

    nginx (TLS, rate zones), two gunicorn instances, the video worker, Prometheus and
    private Redis servers, on a fresh database of the PostgreSQL at 127.0.0.1:5432
    (``TC_DEPLOY_POSTGRES_URL``); ``examples/tecnocursos/deploy/local.py`` starts them.
    The scripts' tests (``test_scripts_*``) deploy and roll back on it, and back up and
    restore scratch databases of that PostgreSQL and of the MariaDB at 127.0.0.1:3306
    (``TC_TEST_POSTGRES_URL``, ``TC_TEST_MARIADB_URL``).
    """
    _install_debian_tools(session, DEPLOY_TOOLS)
    _install_deploy_kit(session)
    # The static checks are deploy_static's (they need other tools, no live deployment).
    session.run("pytest", "deploy/tests", "--ignore=deploy/tests/test_static.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; warnings are errors."""
    session.install(".", *group("docs"))
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(ROOT / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and wheel and check their metadata."""
    session.install("build", "twine")
    dist = ROOT / "dist"
    for old in dist.glob("*"):
        old.unlink()
    session.run("python", "-m", "build", "--outdir", str(dist))
    session.run("twine", "check", "--strict", *[str(path) for path in sorted(dist.glob("*"))])


def _install_wrk(session: nox.Session) -> None:
    if shutil.which("wrk") is None:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            session.error("wrk is not installed: install Debian's wrk package")
        session.run("apt-get", "update", "-qq", external=True)
        session.run(
            "apt-get",
            "install",
            "-y",
            "-qq",
            "wrk",
            external=True,
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark against bare FastAPI and the peer stack (``-- --smoke`` for CI)."""
    _install_wrk(session)
    session.install(".[all]", *group("bench"))
    session.run("python", "-m", "benchmarks.server", *session.posargs)


@nox.session
def bench_inprocess(session: nox.Session) -> None:
    """CPU per request without a server, paired and interleaved (``-- --smoke`` for CI)."""
    session.install(".[all]", *group("bench"))
    session.run("python", "-m", "benchmarks.inprocess", *session.posargs)


@nox.session
def bench_instructions(session: nox.Session) -> None:
    """Instructions per request of each stage, by valgrind (``-- --smoke`` for CI)."""
    if shutil.which("valgrind") is None:
        session.error("valgrind is not installed (Debian: apt-get install valgrind)")
    session.install(".[all]", *group("bench"))
    session.run("python", "-m", "benchmarks.instructions", *session.posargs)


@nox.session
def bench_telemetry(session: nox.Session) -> None:
    """What OpenTelemetry costs a request: off, on, collector stalled or dead (``-- --smoke``)."""
    session.install(".[all]", *group("bench"))
    session.run("python", "-m", "benchmarks.telemetry", *session.posargs)


@nox.session
def bench_database(session: nox.Session) -> None:
    """Benchmark the session layer on SQLite and PostgreSQL (``-- --smoke`` for CI).

    PostgreSQL is ``BENCH_POSTGRES_URL`` (default: the ``test`` database on
    127.0.0.1:5432, user postgres); ``-- --backends sqlite`` runs without it.
    """
    _install_wrk(session)
    session.install(".[all]", *group("bench"))
    session.run("python", "-m", "benchmarks.database", *session.posargs)


@nox.session
def bench_tecnocursos(session: nox.Session) -> None:
    """Benchmark the TecnoCursos app on SQLite and PostgreSQL + Redis (``-- --smoke`` for CI).

    PostgreSQL is ``BENCH_POSTGRES_URL`` (default: the server of the ``test`` database on
    127.0.0.1:5432, user postgres; the run creates and drops a database of its own), Redis
    ``BENCH_REDIS_URL`` (default: 127.0.0.1:6379, database 9; the run deletes its keys);
    ``-- --configurations sqlite`` runs without either.
    """
    _install_wrk(session)
    session.install("-e", ".[all]", "-e", str(TECNOCURSOS), *group("bench"))
    session.run("python", "-m", "benchmarks.tecnocursos", *session.posargs)


@nox.session
def bench_videos(session: nox.Session) -> None:
    """Benchmark TecnoCursos' video pipeline: render times, API latency while two render.

    The API and two ``tecnocursos.videos.worker`` processes on PostgreSQL
    (``BENCH_POSTGRES_URL``, as ``bench_tecnocursos``; ``-- --database sqlite`` runs without
    it) and Redis (``BENCH_REDIS_URL``; the run's dramatiq namespace is deleted at the end).
    The narration needs espeak-ng (Debian package); ``-- --smoke`` for CI (under a minute).
    """
    _install_wrk(session)
    session.install("-e", ".[all]", "-e", str(TECNOCURSOS), *group("bench"))
    session.run("python", "-m", "benchmarks.videos", *session.posargs)


@nox.session
def deploy_static(session: nox.Session) -> None:
    """Check the TecnoCursos deployment kit where it cannot run (no Docker engine here).

    The compose file against the compose specification and the apps' deploy check,
    ``nginx -t`` on the compose variant of the templates, ``promtool`` on Prometheus'
    configuration, the alert rules and their unit tests, hadolint, shellcheck, and the
    Grafana dashboards' queries against a live app's and worker's metrics. The PyPI tools
    come from the example's ``deploy`` group; nginx, promtool, shellcheck, openssl,
    unshare and redis-server from Debian.
    """
    _install_debian_tools(
        session,
        {
            "nginx": "nginx",
            "promtool": "prometheus",
            "shellcheck": "shellcheck",
            "openssl": "openssl",
            "unshare": "util-linux",
            "redis-server": "redis-server",
        },
    )
    _install_deploy_kit(session)
    session.run("pytest", "deploy/tests/test_static.py", *session.posargs)


@nox.session
def bench_deployment(session: nox.Session) -> None:
    """Benchmark TecnoCursos as the deployment kit runs it: through nginx, two instances.

    The kit's local runtime (``examples/tecnocursos/deploy/local.py``: nginx with TLS, two
    gunicorn instances, the worker, Prometheus, private Redis servers) on a database of
    the run's own on PostgreSQL (``BENCH_POSTGRES_URL``, as ``bench_tecnocursos``; created
    and dropped by the run); wrk over HTTPS through nginx. ``-- --smoke`` for CI (about
    15 seconds, correctness only).
    """
    _install_wrk(session)
    _install_debian_tools(session, DEPLOY_TOOLS)
    session.install(
        "-e",
        ".[all]",
        "-e",
        str(TECNOCURSOS),
        *group("bench"),
        *tecnocursos_group("deploy"),
    )
    session.run("python", "-m", "benchmarks.deployment", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Serve TecnoCursos, the reference app, on http://127.0.0.1:8000 with demo data.

    Embedded defaults, nothing to install: a SQLite file, media, a signing key and the
    demo password under ``.demo/`` (delete it to start over), the cache and the rate
    limits in memory, one JSON access line per request on the console, ``/docs`` served
    without a CDN. ``HOST`` and ``PORT`` change the address; ``TC_*`` variables any
    setting (``examples/tecnocursos/README.md``).
    """
    session.install("-e", ".[docs-offline]", "-e", str(TECNOCURSOS))
    session.run(
        "python",
        "-m",
        "tecnocursos.demo",
        "serve",
        "--dir",
        str(ROOT / ".demo"),
        "--host",
        os.environ.get("HOST", "127.0.0.1"),
        "--port",
        os.environ.get("PORT", "8000"),
        *session.posargs,
    )

"""The local runtime: the compose topology as processes on this machine, no Docker.

nginx (the same templates as compose, rendered here), two gunicorn instances, the video
worker, Prometheus, two private ``redis-server`` processes (queue: ``noeviction``; cache:
LRU) and a fresh database on the machine's PostgreSQL or MariaDB. Every process runs in
its own process group with its output in ``ROOT/logs``; ports and pids are kept in
``ROOT/state.json``, so each command may run in a new process.

It implements the runtime contract the deploy scripts use (``TC_RUNTIME``)::

    python deploy/local.py --root ROOT up | down
    python deploy/local.py --root ROOT start SERVICE RELEASE_DIR   # app1 | app2 | worker
    python deploy/local.py --root ROOT stop | kill | url | drain | undrain SERVICE
    python deploy/local.py --root ROOT migrate RELEASE_DIR
    python deploy/local.py --root ROOT exec RELEASE_DIR CMD [ARGS...]
    python deploy/local.py --root ROOT nginx-test

``up`` starts every service from ``ROOT/current`` (a release directory holding
``release.env``). A service's environment is this process's, then the runtime's own
(database, Redis, trusted proxy, shared media directory), then the release's
``release.env``, then the service's address.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# deploy/ is not a package: its helper modules are found beside this file, whether it
# runs as a script or is loaded by path (the deploy tests).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_files import (
    RuntimeFailureError,
    create_database,
    drop_database,
    make_certificates,
    nginx_main_conf,
    prometheus_config,
    read_env_file,
    render_template,
)
from _local_processes import (
    alive,
    children_of,
    free_port,
    http_ok,
    port_open,
    spawn,
    terminate,
    wait_until,
)

__all__ = [
    "APP_DIR",
    "CLIENT_ADDRESS",
    "PROXY_ADDRESS",
    "SERVICES",
    "LocalRuntime",
    "RuntimeFailureError",
    "main",
    "read_env_file",
    "render_template",
]

APP_DIR = Path(__file__).resolve().parent.parent
"""``examples/tecnocursos``: where the app's processes run (alembic.ini is there)."""

DEPLOY_DIR = APP_DIR / "deploy"
NGINX_DIR = DEPLOY_DIR / "nginx"
MONITORING_DIR = APP_DIR / "monitoring"

SERVICES = ("app1", "app2", "worker")
"""Services started from a release (``start``/``stop``/``kill``)."""

APPS = ("app1", "app2")

CLIENT_ADDRESS = "127.0.0.2"
"""Source address the proof's clients use (distinct from nginx's, to tell them apart)."""

PROXY_ADDRESS = "127.0.0.3"
"""Source address of nginx's upstream connections: the only proxy the apps trust."""

POSTGRES_ADMIN_URL = os.environ.get(
    "TC_DEPLOY_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
MARIADB_ADMIN_URL = os.environ.get("TC_DEPLOY_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/")

_STOP_TIMEOUT = 30.0


class LocalRuntime:
    """The local deployment under ``root``; every method reads and writes ``state.json``.

    Args:
        root: The deployment root (``TC_DEPLOY_ROOT``): releases, ``current``, state, logs.
        python: The interpreter that runs gunicorn, the worker and alembic.
    """

    def __init__(self, root: Path, *, python: str = sys.executable) -> None:
        self.root = root.resolve()
        self.python = python

    # --- state --------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        """``ROOT/state.json``."""
        return self.root / "state.json"

    def state(self) -> dict[str, Any]:
        """The saved state (empty before ``up``)."""
        if not self.state_file.exists():
            return {}
        loaded: dict[str, Any] = json.loads(self.state_file.read_text())
        return loaded

    def _save(self, state: dict[str, Any]) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
        temporary.replace(self.state_file)

    def _require(self) -> dict[str, Any]:
        state = self.state()
        if not state.get("up"):
            raise RuntimeFailureError(f"no local deployment is up in {self.root}")
        return state

    # --- paths ----------------------------------------------------------------------
    @property
    def ca_file(self) -> Path:
        """The generated CA's certificate, for clients verifying nginx."""
        return self.root / "tls" / "ca.crt"

    @property
    def access_log(self) -> Path:
        """The nginx JSON access log."""
        return self.root / "nginx" / "logs" / "access.log"

    def log_file(self, name: str) -> Path:
        """Output of process ``name`` (app1, app2, worker, nginx, prometheus...)."""
        return self.root / "logs" / f"{name}.log"

    def https_url(self) -> str:
        """The nginx HTTPS base URL."""
        return f"https://127.0.0.1:{self._require()['ports']['https']}"

    def http_url(self) -> str:
        """The nginx plain-HTTP base URL (it only redirects)."""
        return f"http://127.0.0.1:{self._require()['ports']['http']}"

    def prometheus_url(self) -> str:
        """Prometheus' base URL."""
        return f"http://127.0.0.1:{self._require()['ports']['prometheus']}"

    def url(self, service: str) -> str:
        """The base URL of ``service``, bypassing nginx (the worker's: its ``/metrics``)."""
        ports = self._require()["ports"]
        if service not in ports:
            raise RuntimeFailureError(f"unknown service {service!r}")
        if service in ("http", "https"):
            return self.http_url() if service == "http" else self.https_url()
        return f"http://127.0.0.1:{ports[service]}"

    # --- environment ----------------------------------------------------------------
    def release_env(self, release_dir: Path) -> dict[str, str]:
        """This process's environment, the runtime's, then ``release_dir/release.env``."""
        env_file = Path(release_dir) / "release.env"
        if not env_file.is_file():
            raise RuntimeFailureError(f"{env_file} does not exist")
        env = dict(os.environ)
        env.update(self.state().get("env", {}))
        env.update(read_env_file(env_file))
        return env

    def _service_env(self, service: str, release_dir: Path) -> dict[str, str]:
        state = self._require()
        env = self.release_env(release_dir)
        port = state["ports"][service]
        if service in APPS:
            metrics_dir = self.root / "metrics" / service
            env.update(
                GUNICORN_BIND=f"127.0.0.1:{port}",
                GUNICORN_WORKERS=env.get("GUNICORN_WORKERS", str(state["app_workers"])),
                PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            )
        else:
            env.update(
                TC_VIDEO__WORKER_METRICS_PORT=str(port), TC_VIDEO__WORKER_METRICS_HOST="127.0.0.1"
            )
        return env

    # --- processes ------------------------------------------------------------------
    def _spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        return spawn(argv, log=self.log_file(name), cwd=APP_DIR, env=env)

    def _set_pid(self, name: str, pid: int | None) -> None:
        state = self.state()
        if pid is None:
            state.setdefault("pids", {}).pop(name, None)
        else:
            state.setdefault("pids", {})[name] = pid
        self._save(state)

    def pid(self, name: str) -> int | None:
        """The pid of process ``name`` when it runs."""
        pid: int | None = self.state().get("pids", {}).get(name)
        return pid if pid is not None and alive(pid) else None

    def start(self, service: str, release_dir: Path) -> int:
        """Start ``service`` from ``release_dir`` (stopping it first if it runs)."""
        if service not in SERVICES:
            raise RuntimeFailureError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        release_dir = Path(release_dir).resolve()
        env = self._service_env(service, release_dir)
        if self.pid(service) is not None:
            self.stop(service)
        if service in APPS:
            argv = [
                self.python,
                "-m",
                "gunicorn",
                "-c",
                str(DEPLOY_DIR / "gunicorn.conf.py"),
                "tecnocursos.core.app:create_app()",
            ]
        else:
            argv = [self.python, "-m", "tecnocursos.videos.worker"]
        pid = self._spawn(service, argv, env)
        state = self.state()
        state.setdefault("pids", {})[service] = pid
        state.setdefault("releases", {})[service] = str(release_dir)
        self._save(state)
        return pid

    def stop(self, service: str, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM ``service`` and wait until it exited (SIGKILL after ``timeout``)."""
        pid = self.state().get("pids", {}).get(service)
        if pid is not None:
            terminate(pid, timeout)
        self._set_pid(service, None)

    def kill(self, service: str) -> None:
        """SIGKILL ``service`` (the whole process group)."""
        pid = self.state().get("pids", {}).get(service)
        if pid is not None:
            terminate(pid, 5, signal.SIGKILL)
        self._set_pid(service, None)

    def wait_ready(self, service: str, timeout: float = 60.0) -> None:
        """Wait until ``service`` answers (apps: ``/health/ready``; worker: ``/metrics``)."""
        path = "/metrics" if service == "worker" else "/health/ready"
        self._wait_http(service, self.url(service) + path, timeout)

    # --- nginx ----------------------------------------------------------------------
    def _nginx_argv(self, *extra: str) -> list[str]:
        prefix = self.root / "nginx"
        return [
            "nginx",
            "-p",
            f"{prefix}/",
            "-c",
            str(prefix / "nginx.conf"),
            "-e",
            str(prefix / "logs" / "error.log"),
            *extra,
        ]

    def _nginx_values(self, state: Mapping[str, Any]) -> dict[str, str]:
        ports, drained = state["ports"], set(state.get("drained", []))
        values = read_env_file(NGINX_DIR / "defaults.env")
        values.update(
            NGINX_LISTEN_HTTP=f"127.0.0.1:{ports['http']}",
            NGINX_LISTEN_HTTPS=f"127.0.0.1:{ports['https']}",
            NGINX_HTTPS_PORT_SUFFIX=f":{ports['https']}",
            NGINX_SERVER_NAME="localhost 127.0.0.1",
            NGINX_TLS_CERT=str(self.root / "tls" / "server.crt"),
            NGINX_TLS_KEY=str(self.root / "tls" / "server.key"),
            NGINX_ACCESS_LOG=str(self.access_log),
            NGINX_APP1=f"127.0.0.1:{ports['app1']}",
            NGINX_APP2=f"127.0.0.1:{ports['app2']}",
            NGINX_APP1_STATE=" down" if "app1" in drained else "",
            NGINX_APP2_STATE=" down" if "app2" in drained else "",
            NGINX_PROXY_BIND=PROXY_ADDRESS,
        )
        values.update(state.get("nginx_overrides", {}))
        return values

    def render_nginx(self, state: Mapping[str, Any]) -> None:
        """Write ``ROOT/nginx``: the main file and the templates rendered into conf.d."""
        prefix = self.root / "nginx"
        for directory in ("conf.d", "logs", "temp"):
            (prefix / directory).mkdir(parents=True, exist_ok=True)
        (prefix / "nginx.conf").write_text(nginx_main_conf(prefix))
        values = self._nginx_values(state)
        for template in sorted((NGINX_DIR / "templates").glob("*.template")):
            target = prefix / "conf.d" / template.name.removesuffix(".template")
            target.write_text(render_template(template.read_text(), values))

    def nginx_test(self) -> int:
        """``nginx -t`` on the running configuration; its exit status."""
        self._require()
        return subprocess.run(self._nginx_argv("-t", "-q"), check=False).returncode  # noqa: S603

    def _reload_nginx(self) -> None:
        pid = self.pid("nginx")
        if pid is None:
            raise RuntimeFailureError("nginx is not running")
        if self.nginx_test() != 0:
            raise RuntimeFailureError("nginx -t failed; configuration not reloaded")
        old = children_of(pid)
        os.kill(pid, signal.SIGHUP)
        # Returns once new workers run (they alone accept new connections) and the old
        # ones have finished their requests and exited, bounded.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            current = children_of(pid)
            if current - old and not current & old:
                return
            time.sleep(0.05)
        if not children_of(pid) - old:
            raise RuntimeFailureError("nginx started no new workers after reload")

    def _set_drained(self, service: str, drained: bool) -> None:
        if service not in APPS:
            raise RuntimeFailureError(f"only {', '.join(APPS)} can be drained")
        state = self._require()
        names = set(state.get("drained", []))
        names = names | {service} if drained else names - {service}
        state["drained"] = sorted(names)
        self._save(state)
        self.render_nginx(state)
        self._reload_nginx()

    def drain(self, service: str) -> None:
        """Take ``service`` out of nginx's upstream (in-flight requests finish)."""
        self._set_drained(service, True)

    def undrain(self, service: str) -> None:
        """Put ``service`` back into nginx's upstream."""
        self._set_drained(service, False)

    # --- release commands -----------------------------------------------------------
    def exec(self, release_dir: Path, argv: Sequence[str]) -> int:
        """Run ``argv`` with the release's environment; its exit status."""
        env = self.release_env(Path(release_dir))
        return subprocess.run(list(argv), env=env, check=False).returncode  # noqa: S603

    def migrate(self, release_dir: Path) -> int:
        """``alembic upgrade head`` with the release's environment; its exit status."""
        env = self.release_env(Path(release_dir))
        argv = [self.python, "-m", "alembic", "upgrade", "head"]
        return subprocess.run(argv, env=env, cwd=APP_DIR, check=False).returncode  # noqa: S603

    # --- the whole deployment -------------------------------------------------------
    def up(
        self,
        *,
        database: str = "postgresql",
        database_url: str | None = None,
        nginx_overrides: Mapping[str, str] | None = None,
        app_workers: int = 1,
        timeout: float = 90.0,
    ) -> None:
        """Start everything from ``ROOT/current``; on any failure, stop what started."""
        current = self.root / "current"
        if not (current / "release.env").is_file():
            raise RuntimeFailureError(f"{current}/release.env missing: create a release first")
        for tool in ("nginx", "openssl", "redis-server", "prometheus"):
            if shutil.which(tool) is None:
                raise RuntimeFailureError(f"{tool} not found on PATH (apt-get install it)")
        if self.state().get("up"):
            raise RuntimeFailureError(f"a deployment is already up in {self.root}; run down first")
        suffix = secrets.token_hex(4)
        names = ("http", "https", "app1", "app2", "worker", "prometheus")
        state: dict[str, Any] = {
            "up": True,
            "suffix": suffix,
            "ports": {name: free_port() for name in (*names, "redis-queue", "redis-cache")},
            "pids": {},
            "drained": [],
            "app_workers": app_workers,
            "nginx_overrides": dict(nginx_overrides or {}),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self._save(state)
        try:
            self._up(state, database, database_url, timeout)
        except BaseException:
            self.down()
            raise

    def _up(
        self, state: dict[str, Any], database: str, database_url: str | None, timeout: float
    ) -> None:
        ports = state["ports"]
        make_certificates(self.root / "tls")
        for name, options in (
            ("redis-queue", ["--maxmemory-policy", "noeviction", "--appendonly", "yes"]),
            ("redis-cache", ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]),
        ):
            directory = self.root / name
            directory.mkdir(exist_ok=True)
            argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(ports[name])]
            argv += ["--dir", str(directory), "--save", "", *options]
            self._set_pid(name, self._spawn(name, argv))
        state = self.state()
        state["database"] = self._create_database(state["suffix"], database, database_url)
        state["env"] = {
            "TC_DATABASE__URL": state["database"]["url"],
            "TC_REDIS__URL": f"redis://127.0.0.1:{ports['redis-queue']}/0",
            "TC_RATE_LIMIT__STORAGE_URL": f"redis://127.0.0.1:{ports['redis-cache']}/0",
            "TC_CACHE__BACKEND": "redis",
            "TC_VIDEO__QUEUE": "redis",
            "TC_VIDEO__NAMESPACE": f"tc-deploy-{state['suffix']}",
            "TC_SECURITY__TRUSTED_PROXIES": PROXY_ADDRESS,
            "TC_STORAGE__LOCAL_DIR": str(self.root / "media"),
            "TC_SECURITY__SECRET_KEY": secrets.token_urlsafe(48),
        }
        self._save(state)
        for name in ("redis-queue", "redis-cache"):
            self._wait_port(name, ports[name], timeout)
        current = self.root / "current"
        if self.migrate(current) != 0:
            raise RuntimeFailureError("alembic upgrade head failed")
        for service in SERVICES:
            self.start(service, current)
        self.render_nginx(state)
        self._set_pid("nginx", self._spawn("nginx", self._nginx_argv()))
        (self.root / "prometheus").mkdir(parents=True, exist_ok=True)
        (self.root / "prometheus" / "prometheus.yml").write_text(
            prometheus_config(ports, MONITORING_DIR)
        )
        self._set_pid("prometheus", self._spawn("prometheus", self._prometheus_argv(state)))
        for service in SERVICES:
            self.wait_ready(service, timeout)
        self._wait_port("nginx", ports["https"], timeout)
        self._wait_http("prometheus", f"{self.prometheus_url()}/-/ready", timeout)

    def down(self) -> None:
        """Stop every process (bounded) and drop the database the runtime created."""
        state = self.state()
        if not state:
            return
        for name in ("nginx", "prometheus", *SERVICES, "redis-queue", "redis-cache"):
            pid = state.get("pids", {}).get(name)
            if pid is not None:
                terminate(pid, _STOP_TIMEOUT if name in SERVICES else 10)
        database = state.get("database")
        # Down first: a database server that went away must not leave a state that
        # claims the stopped processes run.
        state.update(up=False, pids={}, database=None)
        self._save(state)
        if database and database.get("created"):
            drop_database(database["admin_url"], database["name"])

    # --- helpers of up --------------------------------------------------------------
    def _wait_port(self, name: str, port: int, timeout: float) -> None:
        if not wait_until(lambda: port_open(port), lambda: self.pid(name) is not None, timeout):
            raise RuntimeFailureError(f"{name} not listening; see {self.log_file(name)}")

    def _wait_http(self, name: str, url: str, timeout: float) -> None:
        if not wait_until(lambda: http_ok(url), lambda: self.pid(name) is not None, timeout):
            raise RuntimeFailureError(f"{name} not ready or exited; see {self.log_file(name)}")

    def _create_database(self, suffix: str, kind: str, url: str | None) -> dict[str, Any]:
        if url is not None:
            return {"url": url, "created": False}
        if kind not in ("postgresql", "mariadb"):
            raise RuntimeFailureError(f"unknown database {kind!r}: postgresql or mariadb")
        admin_url = POSTGRES_ADMIN_URL if kind == "postgresql" else MARIADB_ADMIN_URL
        name = f"tc_deploy_{suffix}"
        return {
            "url": create_database(admin_url, name),
            "created": True,
            "name": name,
            "admin_url": admin_url,
        }

    def _prometheus_argv(self, state: Mapping[str, Any]) -> list[str]:
        directory = self.root / "prometheus"
        return [
            "prometheus",
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{state['ports']['prometheus']}",
            "--log.level=warn",
        ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="local.py", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=os.environ.get("TC_DEPLOY_ROOT"))
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the whole deployment from ROOT/current")
    up.add_argument("--database", choices=("postgresql", "mariadb"), default="postgresql")
    up.add_argument("--database-url", help="use this database instead of creating one")
    up.add_argument("--nginx-var", action="append", default=[], metavar="NGINX_NAME=VALUE")
    up.add_argument("--app-workers", type=int, default=1)
    commands.add_parser("down", help="stop everything, drop the created database")
    start = commands.add_parser("start", help="start SERVICE from RELEASE_DIR")
    start.add_argument("service", choices=SERVICES)
    start.add_argument("release_dir", type=Path)
    for name in ("stop", "kill", "url", "wait"):
        sub = commands.add_parser(name)
        sub.add_argument("service")
    for name in ("drain", "undrain"):
        commands.add_parser(name).add_argument("service", choices=APPS)
    commands.add_parser("migrate").add_argument("release_dir", type=Path)
    run = commands.add_parser("exec", help="run CMD with RELEASE_DIR's environment")
    run.add_argument("release_dir", type=Path)
    run.add_argument("argv", nargs=argparse.REMAINDER)
    commands.add_parser("nginx-test", help="nginx -t on the running configuration")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.root is None:
        print("local.py: --root or TC_DEPLOY_ROOT is required", file=sys.stderr)
        return 2
    runtime = LocalRuntime(args.root)
    try:
        command: str = args.command
        if command == "up":
            overrides = dict(item.split("=", 1) for item in args.nginx_var)
            runtime.up(
                database=args.database,
                database_url=args.database_url,
                nginx_overrides=overrides,
                app_workers=args.app_workers,
            )
        elif command == "down":
            runtime.down()
        elif command == "start":
            runtime.start(args.service, args.release_dir)
        elif command in ("stop", "kill", "wait", "drain", "undrain"):
            name = "wait_ready" if command == "wait" else command
            getattr(runtime, name)(args.service)
        elif command == "url":
            print(runtime.url(args.service))
        elif command == "migrate":
            return runtime.migrate(args.release_dir)
        elif command == "exec":
            if not args.argv:
                print("local.py exec: CMD missing", file=sys.stderr)
                return 2
            return runtime.exec(args.release_dir, args.argv)
        elif command == "nginx-test":
            return runtime.nginx_test()
    except RuntimeFailureError as exc:
        print(f"local.py {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

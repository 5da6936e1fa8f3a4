"""Static checks of the deployment kit: what cannot run here (no Docker engine) is checked.

The compose file against the compose specification, the apps' deploy check on the
settings compose gives them, ``nginx -t`` on the configuration the official nginx image
renders, ``promtool`` on Prometheus' configuration, the alert rules and their unit tests,
hadolint on the Dockerfile, shellcheck on the scripts, and the Grafana dashboards'
queries against the metric names a live app and a live worker expose. A missing tool
skips its test, and fails it under ``CI=true`` (``nox -s deploy_static`` installs them).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tecnocursos.core.settings import TecnoCursosSettings

KIT = Path(__file__).resolve().parents[1]
PROJECT = KIT.parent
REPOSITORY = PROJECT.parents[1]
COMPOSE = KIT / "compose.yaml"
DOCKERFILE = KIT / "Dockerfile"
MONITORING = PROJECT / "monitoring"
DASHBOARDS = KIT / "grafana" / "dashboards"
APP_SERVICES = ("app1", "app2", "worker", "migrate")
STARTUP_SECONDS = 60.0
APP_DASHBOARD_SERIES = {
    "tecnocursos_video_jobs",
    "tecnocursos_video_queue_depth",
    "tecnocursos_video_queue_oldest_age_seconds",
    "tecnocursos_video_render_seconds_bucket",
    "tecnocursos_video_attempts_total",
    "cache_requests_total",
}
"""What the app's dashboard must show: jobs by state, the queue, render times, failures
and retries, the cache hit rate."""

# --- helpers -------------------------------------------------------------------------


def tool(name: str) -> str:
    """The path of ``name`` (PATH, then beside this Python); skip, or fail under CI."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        message = f"{name} is not installed (nox -s deploy_static installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*command: str | Path, cwd: Path = KIT) -> subprocess.CompletedProcess[str]:
    """Run a checker; its output is the assertion message when it fails."""
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, check=False
    )


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return compose


def interpolate(value: str) -> str:
    """Compose's ``${NAME:-default}`` with an empty environment: the defaults."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as compose builds it: env files, then ``environment``."""
    values: dict[str, str] = {}
    for path in service.get("env_file", []):
        values.update(env_file(KIT / path))
    values.update({k: interpolate(str(v)) for k, v in service.get("environment", {}).items()})
    return values


def image_environment() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile's runtime stage (every app container has it)."""
    runtime = DOCKERFILE.read_text().split(" AS runtime", 1)[1]
    return dict(re.findall(r"\b([A-Z][A-Z0-9_]+)=(\S+)", runtime.split("\nRUN", 1)[0]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def in_mount_namespace(
    command: list[str], *, binds: list[tuple[Path, str]], tmpfs: tuple[str, ...] = ()
) -> list[str]:
    """``command`` in a private mount namespace shaped like a container.

    ``tmpfs`` directories get an empty file system, in which the ``binds`` targets are
    made (source, target); /run and /var/log/nginx are always emptied. The containers'
    paths (/etc/nginx, /etc/prometheus/rules, /run/secrets, /etc/hosts) exist there and
    only there: nothing on this machine changes. Needs ``unshare`` (util-linux) and, for
    a user other than root, unprivileged user namespaces.
    """
    emptied = ("/run", "/var/log/nginx", *tmpfs)
    script = ["set -e"]
    script += [f"if [ -d {d} ]; then mount -t tmpfs tmpfs {d}; fi" for d in emptied[:2]]
    # Never made here: a missing directory would be made on this machine, not in the tmpfs.
    script += [f"mount -t tmpfs tmpfs {d}" for d in tmpfs]
    for source, target in binds:
        if any(target.startswith(d + "/") for d in emptied):
            make = "mkdir -p" if source.is_dir() else "touch"
            script.append(f"{make} '{target}'")
        script.append(f"mount --bind '{source}' '{target}'")
    script.append('exec "$@"')
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    unshare = [tool("unshare"), *user, "--mount"]
    probe = run(*unshare, "true")
    if probe.returncode != 0:
        message = f"no private mount namespace for this user: {probe.stderr.strip()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return [*unshare, "sh", "-c", "\n".join(script), "sh", *command]


# --- compose -------------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    """check-jsonschema's vendored compose-spec schema accepts it, and refuses a typo."""
    checker = tool("check-jsonschema")
    result = run(checker, "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    refused = run(checker, "--builtin-schema", "vendor.compose-spec", broken)
    assert refused.returncode == 1, refused.stdout
    assert "stop_grace_periods" in refused.stdout


def test_every_file_the_compose_file_names_exists() -> None:
    """Build files, env files and bind mounts exist; secrets live in git-ignored secrets/."""
    compose = load_compose()
    named: list[str] = []
    for service in compose["services"].values():
        build = service.get("build")
        if build:
            named += [build["context"], str(Path(build["context"]) / build["dockerfile"])]
        named += service.get("env_file", [])
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                named.append(source)
    assert len(named) >= 8, named
    missing = [path for path in named if not (KIT / path).exists()]
    assert not missing, f"compose.yaml names files that do not exist: {missing}"
    for name, secret in compose["secrets"].items():
        path = (KIT / secret["file"]).resolve()
        assert path.is_relative_to(KIT / "secrets"), (name, path)
    assert (KIT / "secrets" / ".gitignore").read_text().splitlines()[1] == "*"
    ignored = run("git", "check-ignore", "-q", KIT / "secrets" / "secret_key")
    assert ignored.returncode == 0, "deploy/secrets/* must be ignored by git"


def test_the_apps_pass_the_deploy_check_with_the_compose_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """app1, app2, worker and migrate: production settings with no deploy-check finding.

    The environment is the image's plus the service's, the secrets are files named like
    their compose targets in a secrets directory, made as
    examples/tecnocursos/deploy/secrets/README.md makes them.
    """
    compose = load_compose()
    secret_values = {name: secrets.token_urlsafe(48) for name in compose["secrets"]}
    for name, service in ((n, compose["services"][n]) for n in APP_SERVICES):
        secret_dir = tmp_path / name
        secret_dir.mkdir()
        for entry in service["secrets"]:
            (secret_dir / entry["target"]).write_text(secret_values[entry["source"]])
        for variable in list(os.environ):
            if variable.startswith("TC_"):
                monkeypatch.delenv(variable)
        for variable, value in {**image_environment(), **service_environment(service)}.items():
            monkeypatch.setenv(variable, value)
        settings = TecnoCursosSettings(_secrets_dir=secret_dir)
        assert settings.is_production, name
        assert settings.security.secret_key is not None
        assert settings.security.secret_key.get_secret_value() == secret_values["secret_key"]
        assert settings.auth.jwt_secret is not None
        assert settings.auth.jwt_secret.get_secret_value() == secret_values["jwt_secret"]
        assert settings.database.password is not None
        assert settings.database.password.get_secret_value() == secret_values["db_password"]
        findings = [(f.id, f.level) for f in settings.deploy_check()]
        assert findings == [], (name, findings)


def test_the_compose_topology_matches_the_settings() -> None:
    """Queue and cache Redis as the issue wants them; the apps trust exactly nginx."""
    compose = load_compose()
    services = compose["services"]
    queue = " ".join(services["redis-queue"]["command"])
    cache = " ".join(services["redis-cache"]["command"])
    assert "--maxmemory-policy noeviction" in queue
    assert "--appendonly yes" in queue
    assert "--maxmemory-policy allkeys-lru" in cache
    assert "--maxmemory 256mb" in cache
    nginx_address = services["nginx"]["networks"]["backend"]["ipv4_address"]
    prometheus_address = services["prometheus"]["networks"]["backend"]["ipv4_address"]
    for name in APP_SERVICES:
        environment = service_environment(services[name])
        assert environment["TC_SECURITY__TRUSTED_PROXIES"] == nginx_address
        assert environment["TC_METRICS__ALLOW_IPS"] == prometheus_address
        assert environment["TC_VIDEO__BROKER_URL"].startswith("redis://redis-queue:")
        assert environment["TC_REDIS__URL"].startswith("redis://redis-cache:")
        assert environment["TC_RATE_LIMIT__STORAGE_URL"].startswith("redis://redis-cache:")
        depends = services[name]["depends_on"]
        if name != "migrate":
            assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["cap_drop"] == ["ALL"]
        assert services[name]["security_opt"] == ["no-new-privileges:true"]
    assert services["worker"]["command"] == ["python", "-m", "tecnocursos.videos.worker"]
    # deploy.sh's backup gate runs in the database's image (mariadb-dump), on the apps'
    # database URL and password secret, and never as part of `up`.
    backup = services["backup"]
    assert backup["image"] == services["mariadb"]["image"]
    assert backup["profiles"] == ["tools"]
    assert (
        service_environment(backup)["TC_DATABASE__URL"]
        == (service_environment(services["app1"])["TC_DATABASE__URL"])
    )
    assert {"source": "db_password", "target": "tc_database__password"} in backup["secrets"]
    # Renders yield to the API across containers too (cgroup weight; Docker's default 1024).
    assert services["worker"]["cpu_shares"] < services["app1"].get("cpu_shares", 1024)
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["mariadb"]["healthcheck"]["test"][0] == "CMD"


# --- nginx ---------------------------------------------------------------------------

# The official image's /etc/nginx/nginx.conf and conf.d/default.conf (nginx:1.27), which
# the rendered templates join. Only `user nginx;` is left out: that user exists in the
# image, not on this machine, and nginx -t looks it up.
OFFICIAL_NGINX_CONF = """\
worker_processes  auto;
error_log  /var/log/nginx/error.log notice;
pid        /run/nginx.pid;
events {
    worker_connections  1024;
}
http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;
    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';
    access_log  /var/log/nginx/access.log  main;
    sendfile        on;
    keepalive_timeout  65;
    include /etc/nginx/conf.d/*.conf;
}
"""
OFFICIAL_DEFAULT_CONF = """\
server {
    listen       80;
    listen  [::]:80;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
}
"""


def render_like_the_image(template: str, environment: dict[str, str]) -> str:
    """The image's 20-envsubst-on-templates.sh: ``${NAME}`` of defined variables only."""
    return re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
        lambda match: environment.get(match[1], match[0]),
        template,
    )


def nginx_test(tmp_path: Path, hosts: list[str]) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on the compose variant, inside a namespace shaped like the container.

    nginx resolves upstream host names when it loads a configuration: ``hosts`` (the
    compose services Docker's DNS would answer) resolve to 127.0.0.1 through a stand-in
    /etc/hosts, so the configuration is tested unchanged.
    """
    nginx = tool("nginx")
    openssl = tool("openssl")
    compose = load_compose()
    service = compose["services"]["nginx"]
    environment = service_environment(service)
    etc = tmp_path / "etc-nginx"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "nginx.conf").write_text(OFFICIAL_NGINX_CONF)
    if "/etc/nginx/conf.d" not in service.get("tmpfs", []):
        (etc / "conf.d" / "default.conf").write_text(OFFICIAL_DEFAULT_CONF)
    shutil.copy("/etc/nginx/mime.types", etc)  # the image has its own; same content
    templates = sorted((KIT / "nginx" / "templates").glob("*.template"))
    assert templates, "deploy/nginx/templates/*.template: nothing to test"
    for template in templates:
        rendered = render_like_the_image(template.read_text(), environment)
        (etc / "conf.d" / template.name.removesuffix(".template")).write_text(rendered)
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    made = run(
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=tecnocursos.example.com",
        "-keyout", secret_dir / "tls_certificate_key", "-out", secret_dir / "tls_certificate",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert {s if isinstance(s, str) else s["source"] for s in service["secrets"]} == {
        "tls_certificate",
        "tls_certificate_key",
    }
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("127.0.0.1 localhost " + " ".join(hosts) + "\n")
    binds = [(etc, "/etc/nginx"), (secret_dir, "/run/secrets"), (hosts_file, "/etc/hosts")]
    command = [nginx, "-t", "-c", "/etc/nginx/nginx.conf", "-e", "/var/log/nginx/error.log"]
    return run(*in_mount_namespace(command, binds=binds), cwd=tmp_path)


def test_nginx_accepts_the_configuration_the_image_renders(tmp_path: Path) -> None:
    """The templates, rendered with compose's values beside the image's own files."""
    result = nginx_test(tmp_path, hosts=list(load_compose()["services"]))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "warn" not in result.stderr, result.stderr


def test_nginx_test_resolves_the_upstream_instances(tmp_path: Path) -> None:
    """Without app2 in the stand-in DNS, nginx -t fails: it really loads the upstreams."""
    hosts = [name for name in load_compose()["services"] if name != "app2"]
    result = nginx_test(tmp_path, hosts=hosts)
    assert result.returncode != 0
    assert 'host not found in upstream "app2' in result.stderr, result.stderr


# --- Prometheus ----------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_configuration_with_its_rules() -> None:
    """prometheus.yml as compose mounts it, with monitoring/ at /etc/prometheus/rules."""
    promtool = tool("promtool")
    config = KIT / "prometheus" / "prometheus.yml"
    command = [promtool, "check", "config", str(config)]
    binds = [(MONITORING, "/etc/prometheus/rules")]
    result = run(*in_mount_namespace(command, binds=binds, tmpfs=("/etc/prometheus",)))
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = sorted(MONITORING.glob("*.yml"))
    for path in rule_files:
        assert f"/etc/prometheus/rules/{path.name}" in result.stdout, result.stdout


def test_prometheus_scrapes_the_compose_services() -> None:
    """Each scrape target is a compose service on the port it serves its metrics on."""
    config = yaml.safe_load((KIT / "prometheus" / "prometheus.yml").read_text())
    services = load_compose()["services"]
    targets = {
        job["job_name"]: sorted(t for c in job["static_configs"] for t in c["targets"])
        for job in config["scrape_configs"]
    }
    assert targets["tecnocursos-app"] == ["app1:8000", "app2:8000"], targets
    assert targets["tecnocursos-video-worker"] == ["worker:9191"], targets
    worker = service_environment(services["worker"])
    assert worker["TC_VIDEO__WORKER_METRICS_PORT"] == "9191"
    assert worker["TC_VIDEO__WORKER_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - in its container
    assert "/etc/prometheus/rules/*.yml" in config["rule_files"]


@pytest.mark.parametrize("rules", sorted(MONITORING.glob("*.yml")), ids=lambda p: p.name)
def test_promtool_checks_each_rule_file(rules: Path) -> None:
    result = run(tool("promtool"), "check", "rules", rules)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def firing_in(test: dict[str, Any]) -> set[str]:
    """The alerts one promtool test case expects to fire at some evaluation."""
    names = {
        case["alertname"] for case in test.get("alert_rule_test", []) if case.get("exp_alerts")
    }
    for case in test.get("promql_expr_test", []):
        if case.get("exp_samples"):
            names |= set(re.findall(r'alertname="(\w+)"', case["expr"]))
    return names


def test_every_alert_has_promtool_unit_tests_that_pass() -> None:
    """Each monitoring/*.yml is under test, each of its alerts fires in some case."""
    promtool = tool("promtool")
    tests = sorted((KIT / "prometheus" / "tests").glob("*.test.yml"))
    covered: set[Path] = set()
    fired: set[str] = set()
    for path in tests:
        document = yaml.safe_load(path.read_text())
        covered |= {(path.parent / name).resolve() for name in document["rule_files"]}
        fired |= {name for case in document["tests"] for name in firing_in(case)}
        result = run(promtool, "test", "rules", path)
        assert result.returncode == 0, result.stdout + result.stderr
    rule_files = sorted(MONITORING.glob("*.yml"))
    assert {p.resolve() for p in rule_files} <= covered, covered
    alerts = {
        rule["alert"]
        for path in rule_files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert len(alerts) >= 13, alerts
    assert alerts <= fired, f"alerts no unit test fires: {sorted(alerts - fired)}"


# --- Dockerfile and scripts ----------------------------------------------------------


def test_hadolint_accepts_the_dockerfile() -> None:
    result = run(tool("hadolint"), DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_gunicorn_as_a_user_with_a_readiness_healthcheck() -> None:
    """Exec-form CMD, a numeric non-root USER, the health check on /health/ready."""
    text = DOCKERFILE.read_text()
    command = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)[-1]
    assert json.loads(command) == [
        "gunicorn", "-c", "deploy/gunicorn.conf.py", "tecnocursos.core.app:create_app()",
    ]  # fmt: skip
    assert re.findall(r"^USER (\d+):(\d+)$", text, flags=re.MULTILINE) == [("10001", "10001")]
    assert "/health/ready" in text.split("HEALTHCHECK", 1)[1]
    assert "curl" not in text.split("FROM", 1)[1].split("HEALTHCHECK", 1)[1].lower()
    assert image_environment()["PROMETHEUS_MULTIPROC_DIR"].startswith("/run/tecnocursos/")
    assert "/run/tecnocursos" in load_compose()["services"]["app1"]["tmpfs"]


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    """.dockerignore lets through each COPY source and nothing of secrets/ or tests/."""
    ignore = (PROJECT / ".dockerignore").read_text().splitlines()
    assert ignore[[line.startswith("#") for line in ignore].index(False)] == "**"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE)
    sources = {source for line in copied for source in line.split()}
    assert sources == allowed, (sources, allowed)
    assert all((PROJECT / source).exists() for source in sources), sources


def shell_scripts() -> list[Path]:
    return sorted(KIT.glob("**/*.sh"))


def test_the_deploy_scripts_pass_shellcheck() -> None:
    """Every deploy/**/*.sh: shellcheck-clean, bash with ``set -euo pipefail``."""
    scripts = shell_scripts()
    assert scripts, "no deploy/**/*.sh found"
    result = run(tool("shellcheck"), "--external-sources", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr
    for script in scripts:
        lines = script.read_text().splitlines()
        assert lines[0] == "#!/usr/bin/env bash", script
        assert "set -euo pipefail" in lines, script


# --- Grafana -------------------------------------------------------------------------


def test_the_library_dashboard_is_an_identical_copy() -> None:
    vendored = DASHBOARDS / "fastapi-enterprise.json"
    original = REPOSITORY / "docs" / "metrics" / "grafana-dashboard.json"
    assert vendored.read_bytes() == original.read_bytes()


def test_grafana_provisioning_points_at_the_mounted_files() -> None:
    """The provider reads where compose mounts dashboards; the data source is Prometheus."""
    grafana = load_compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
    provisioning = KIT / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "tecnocursos.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    dashboards = [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]
    assert len({d["uid"] for d in dashboards}) == len(dashboards) == 2
    for dashboard in dashboards:
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
PROMQL_WORDS |= {"and", "or", "unless", "offset", "inf", "nan"}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads.

    Strings, label matchers, ranges, grouping clauses and Grafana variables go first;
    what is left of the identifiers, minus functions (followed by a parenthesis) and
    keywords, names series.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        if not match[2] and match[1].lower() not in PROMQL_WORDS:
            names.add(match[1])
    return names


def test_metric_names_finds_the_series_of_an_expression() -> None:
    expression = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{x="y(z)"}[5m])))'
        " / on (route) group_left clamp_min(sum without (le) (b_total offset 5m), 1e-9)"
        ' > bool 2 and c:recorded unless absent(up{job="j"} == 1)'
    )
    assert metric_names(expression) == {"a_bucket", "b_total", "c:recorded", "up"}


def exposed_names(text: str) -> set[str]:
    """Every series name an exposition offers, families without samples included."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


class Processes:
    """Child processes, each in a group of its own, all stopped by :meth:`stop`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with (self.directory / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=PROJECT, start_new_session=True,
            )  # fmt: skip
        self.started.append((name, process))

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n" + (self.directory / f"{name}.log").read_text()[-4000:]
            for name, _ in self.started
        )

    def wait_for(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not check():
            for name, process in self.started:
                assert process.poll() is None, f"{name} exited\n{self.logs()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{self.logs()}"
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to every group, then SIGKILL to those still there after 20 s."""
        for _, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process in reversed(self.started):
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def answers(url: str) -> bool:
    try:
        return httpx2.get(url, timeout=2).status_code == 200
    except httpx2.TransportError:
        return False


def test_the_dashboards_query_only_series_the_app_and_worker_expose(
    tmp_path: Path, processes: Processes
) -> None:
    """Every series a panel reads is on a live app's or worker's /metrics, or a rule's.

    The app (uvicorn, the factory) serves a few requests first, cache reads included;
    the worker runs on a private Redis. ``up`` is Prometheus' own series per target.
    """
    redis_server = tool("redis-server")
    redis_port, app_port, worker_port = free_port(), free_port(), free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TC_")},
        "TC_ENVIRONMENT": "test",
        "TC_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'tecnocursos.db'}",
        "TC_STORAGE__LOCAL_DIR": str(tmp_path / "media"),
        "TC_VIDEO__QUEUE": "redis",
        "TC_VIDEO__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TC_VIDEO__WORKER_METRICS_PORT": str(worker_port),
        "TC_SECURITY__SECRET_KEY": secrets.token_urlsafe(48),
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=PROJECT, env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    redis_command = [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1"]
    processes.start("redis", [*redis_command, "--save", "", "--appendonly", "no"], environment)
    processes.start("worker", [sys.executable, "-m", "tecnocursos.videos.worker"], environment)
    server = [sys.executable, "-m", "uvicorn", "--factory", "tecnocursos.core.app:create_app"]
    processes.start("app", [*server, "--port", str(app_port)], environment)
    app = f"http://127.0.0.1:{app_port}"
    processes.wait_for(lambda: answers(f"{app}/health/ready"), "the app")
    processes.wait_for(lambda: answers(f"http://127.0.0.1:{worker_port}/metrics"), "the worker")

    account = {"email": "viewer@example.com", "password": secrets.token_urlsafe(16)}
    assert httpx2.post(f"{app}/auth/register", json=account).status_code == 201
    login = {"username": account["email"], "password": account["password"]}
    token = httpx2.post(f"{app}/auth/token", data=login).json()["access_token"]
    for _ in range(2):  # a miss, then a hit
        projects = httpx2.get(f"{app}/projects", headers={"Authorization": f"Bearer {token}"})
        assert projects.status_code == 200, projects.text
    app_scrape = httpx2.get(f"{app}/metrics").text
    worker_scrape = httpx2.get(f"http://127.0.0.1:{worker_port}/metrics").text
    assert 'cache_requests_total{cache="project_list",result="hit"} 1.0' in app_scrape
    exposed = exposed_names(app_scrape) | exposed_names(worker_scrape) | {"up"}
    for rules in MONITORING.glob("*.yml"):
        for group in yaml.safe_load(rules.read_text())["groups"]:
            exposed |= {rule["record"] for rule in group["rules"] if "record" in rule}

    queried: dict[str, set[str]] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                names = metric_names(target["expr"])
                assert names, (path.name, panel["title"], target["expr"])
                unknown = names - exposed
                assert not unknown, f"{path.name} / {panel['title']}: {sorted(unknown)}"
                queried.setdefault(path.name, set()).update(names)
    missing = APP_DASHBOARD_SERIES - queried["tecnocursos.json"]
    assert not missing, f"the app's dashboard shows nothing of {sorted(missing)}"

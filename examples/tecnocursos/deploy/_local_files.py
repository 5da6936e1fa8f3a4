"""Files of the local runtime: env files, rendered configuration, certificates, database."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RuntimeFailureError",
    "create_database",
    "drop_database",
    "make_certificates",
    "nginx_main_conf",
    "prometheus_config",
    "read_env_file",
    "render_template",
]

_TEMPLATE_VAR = re.compile(r"\$\{(NGINX_[A-Z0-9_]+)\}")


class RuntimeFailureError(RuntimeError):
    """A runtime command could not do what it was asked (the message says why)."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of ``path`` (``#`` comments, blank lines, optional quotes)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise RuntimeFailureError(f"{path}:{number}: not a KEY=VALUE line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Replace the ``${NGINX_*}`` names of ``text`` like the nginx image's envsubst.

    Raises:
        RuntimeFailureError: a name the template uses has no value.
    """
    missing = sorted({name for name in _TEMPLATE_VAR.findall(text) if name not in values})
    if missing:
        raise RuntimeFailureError(f"no value for template variable(s): {', '.join(missing)}")
    return _TEMPLATE_VAR.sub(lambda match: values[match.group(1)], text)


def nginx_main_conf(prefix: Path) -> str:
    """What the official image's own nginx.conf does, with every path under ``prefix``."""
    temp = prefix / "temp"
    return (
        # Supervised: the runtime holds the master's pid and process group.
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'logs' / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    default_type application/octet-stream;\n"
        f"    client_body_temp_path {temp / 'body'};\n"
        f"    proxy_temp_path {temp / 'proxy'};\n"
        f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
        f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
        f"    scgi_temp_path {temp / 'scgi'};\n"
        "    include conf.d/*.conf;\n"
        "}\n"
    )


def prometheus_config(ports: Mapping[str, int], rules: Path) -> str:
    """The compose file's jobs and rules with local targets (JSON, which is valid YAML)."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "tecnocursos-app",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{ports['app1']}", f"127.0.0.1:{ports['app2']}"]}
                ],
            },
            {
                "job_name": "tecnocursos-video-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{ports['worker']}"]}],
            },
        ],
    }
    return json.dumps(config, indent=2)


def make_certificates(tls: Path) -> None:
    """A CA and a server certificate it signs, for 127.0.0.1 and localhost (openssl)."""
    tls.mkdir(parents=True, exist_ok=True)
    (tls / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca = ["-subj", "/CN=TecnoCursos local CA", "-days", "2"]
    ca += ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    csr = ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]
    sign = ["-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"]
    sign += ["-days", "2", "-out", "server.crt", "-extfile", "server.ext"]
    commands = [
        ["openssl", "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", *ca],
        ["openssl", "req", *key, *csr],
        ["openssl", "x509", "-req", *sign],
    ]
    for argv in commands:
        result = subprocess.run(argv, cwd=tls, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise RuntimeFailureError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()}")


async def _statement(admin_url: str, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    # AUTOCOMMIT: PostgreSQL refuses CREATE/DROP DATABASE inside a transaction.
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_url``; its URL."""
    from sqlalchemy import make_url

    asyncio.run(_statement(admin_url, f"CREATE DATABASE {name}"))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` (PostgreSQL: its open connections too)."""
    statement = f"DROP DATABASE IF EXISTS {name}"
    if admin_url.startswith("postgresql"):
        statement += " WITH (FORCE)"
    asyncio.run(_statement(admin_url, statement))

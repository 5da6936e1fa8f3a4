"""backup.sh and restore.sh on real PostgreSQL and MariaDB servers.

Each test gets a database user of its own whose password needs URL encoding and option-file
quoting, two scratch databases owned by it (the source, with the app's schema from
``alembic upgrade head`` and rows in it, and the restore target), and a directory of
wrappers that record the command lines of the dump and restore tools before running the
real ones: the password must reach them through PGPASSWORD or an option file, never argv.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import inspect, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

PROJECT = Path(__file__).resolve().parents[2]
SCRIPTS = PROJECT / "deploy" / "scripts"
SERVERS = {
    "postgresql": os.environ.get(
        "TC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("TC_TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test"),
}
PASSWORD = "b@ck:up/p%ss \"q\" #'x' \\z"
"""Every character that URL encoding, SQL quoting or a MariaDB option file treats specially."""

TOOLS = ("pg_dump", "pg_restore", "mariadb-dump", "mysqldump", "mariadb", "mysql")


@dataclass
class Scratch:
    """Two scratch databases of one server and the user that owns them."""

    backend: str
    source_url: str
    target_url: str
    env: dict[str, str]
    argv_log: Path
    backup_dir: Path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run a script of deploy/scripts with the scratch environment (and ``env``)."""
        return subprocess.run(
            ["bash", str(SCRIPTS / args[0]), *args[1:]],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _quote_sql(value: str, backend: str) -> str:
    if backend == "mariadb":
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


async def _admin(server_url: str, statements: list[str]) -> None:
    # AUTOCOMMIT: PostgreSQL refuses CREATE/DROP DATABASE inside a transaction.
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _create_statements(backend: str, user: str, databases: list[str]) -> list[str]:
    password = _quote_sql(PASSWORD, backend)
    if backend == "postgresql":
        return [f"CREATE ROLE {user} LOGIN PASSWORD {password}"] + [
            f"CREATE DATABASE {name} OWNER {user}" for name in databases
        ]
    return [f"CREATE USER '{user}'@'%' IDENTIFIED BY {password}"] + [
        statement
        for name in databases
        for statement in (
            f"CREATE DATABASE {name} CHARACTER SET utf8mb4",
            f"GRANT ALL PRIVILEGES ON {name}.* TO '{user}'@'%'",
        )
    ]


def _drop_statements(backend: str, user: str, databases: list[str]) -> list[str]:
    force = " WITH (FORCE)" if backend == "postgresql" else ""
    drops = [f"DROP DATABASE IF EXISTS {name}{force}" for name in databases]
    if backend == "postgresql":
        return [*drops, f"DROP ROLE IF EXISTS {user}"]
    return [*drops, f"DROP USER IF EXISTS '{user}'@'%'"]


def _spy_tools(directory: Path, log: Path) -> None:
    """Wrappers named like the dump tools: record the command line, run the real tool."""
    directory.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        if real is None:
            continue
        wrapper = directory / tool
        wrapper.write_text(
            f'#!/bin/sh\nprintf "%s\\n" "{tool} $*" >> "{log}"\nexec "{real}" "$@"\n'
        )
        wrapper.chmod(0o755)


@pytest.fixture(params=["postgresql", "mariadb"])
def scratch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scratch]:
    """A user with an awkward password and two empty databases it owns; dropped after."""
    backend: str = request.param
    needed = ("pg_dump", "pg_restore") if backend == "postgresql" else ("mariadb-dump", "mariadb")
    missing = [tool for tool in needed if shutil.which(tool) is None]
    server_url = SERVERS[backend]
    suffix = uuid.uuid4().hex[:10]
    user, databases = f"tc_bk_{suffix}", [f"tc_bk_src_{suffix}", f"tc_bk_dst_{suffix}"]
    problem = f"missing tools: {', '.join(missing)}" if missing else None
    if problem is None:
        try:
            asyncio.run(_admin(server_url, _create_statements(backend, user, databases)))
        except Exception as exc:  # noqa: BLE001 - any failure to reach the server
            problem = f"{backend} server not available ({type(exc).__name__})"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    try:
        server = make_url(server_url)
        base = f"{server.drivername}://{user}:{quote(PASSWORD, safe='')}@{server.host}"
        base += f":{server.port}" if server.port else ""
        argv_log = tmp_path / "argv.log"
        _spy_tools(tmp_path / "bin", argv_log)
        env = {
            **os.environ,
            "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "TC_BACKUP_DIR": str(tmp_path / "backups"),
            # Not the machine's /run/secrets: a test's own directory (empty until it writes).
            "TC_SECRETS_DIR": str(tmp_path / "secrets"),
        }
        env.pop("TC_BACKUP_KEEP", None)
        yield Scratch(
            backend=backend,
            source_url=f"{base}/{databases[0]}",
            target_url=f"{base}/{databases[1]}",
            env=env,
            argv_log=argv_log,
            backup_dir=tmp_path / "backups",
        )
    finally:
        asyncio.run(_admin(server_url, _drop_statements(backend, user, databases)))


def _migrate(url: str) -> None:
    """The app's schema, as a deployment builds it: alembic upgrade head."""
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=PROJECT,
        env={**os.environ, "TC_DATABASE__URL": url, "TC_ENVIRONMENT": "test"},
        check=True,
        capture_output=True,
        timeout=120,
    )


async def _seed(url: str) -> None:
    """Users, projects and scenes, with text that a careless dump would mangle."""
    engine = create_async_engine(url)
    now = datetime(2026, 11, 30, 12, 34, 56)
    try:
        async with engine.begin() as connection:
            for number in range(1, 4):
                await connection.execute(
                    text(
                        "INSERT INTO users (email, password_hash, role, failed_logins, "
                        "created_at) VALUES (:email, :hash, :role, :failed, :now)"
                    ),
                    {
                        "email": f"user{number}@tecnocursos.example.com",
                        "hash": f"$argon2id$v=19$m=65536,t=3,p=4$salt{number}$hash",
                        "role": ("admin", "instructor", "student")[number - 1],
                        "failed": number,
                        "now": now,
                    },
                )
            for number in range(1, 3):
                await connection.execute(
                    text(
                        "INSERT INTO projects (owner_id, title, description, visibility, "
                        "version, created_at, updated_at) "
                        "VALUES (2, :title, :description, :visibility, 1, :now, :now)"
                    ),
                    {
                        "title": f"Python do zero {number}: ação \"aspas\" e 'apóstrofos'",
                        "description": "linha 1\nlinha 2\ttab \\ barra; DROP TABLE users; --",
                        "visibility": "public" if number == 1 else "private",
                        "now": now,
                    },
                )
            for position in range(5):
                await connection.execute(
                    text(
                        "INSERT INTO scenes (project_id, position, title, script, "
                        "duration_seconds, version, created_at, updated_at) "
                        "VALUES (1, :position, :title, :script, :seconds, 1, :now, :now)"
                    ),
                    {
                        "position": position,
                        "title": f"Cena {position} 🎬",
                        "script": "print('olá, mundo')\n" * (position + 1),
                        "seconds": 10 + position,
                        "now": now,
                    },
                )
    finally:
        await engine.dispose()


async def _snapshot(url: str) -> dict[str, tuple[int, str]]:
    """Each table's row count and the sha256 of its rows in a canonical order."""
    engine = create_async_engine(url)
    result: dict[str, tuple[int, str]] = {}
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            for name in sorted(names):
                rows = (await connection.execute(text(f"SELECT * FROM {name}"))).all()  # noqa: S608 - reflected table names
                canonical = sorted(repr(tuple(row)) for row in rows)
                digest = hashlib.sha256("\n".join(canonical).encode()).hexdigest()
                result[name] = (len(rows), digest)
    finally:
        await engine.dispose()
    return result


def _secrets() -> tuple[str, str]:
    return PASSWORD, quote(PASSWORD, safe="")


def _assert_no_password(*texts: str) -> None:
    for secret in _secrets():
        for output in texts:
            assert secret not in output


def test_backup_restores_every_table_and_row(scratch: Scratch) -> None:
    """A backup of the migrated, populated database restores into another one intact."""
    _migrate(scratch.source_url)
    asyncio.run(_seed(scratch.source_url))

    backup = scratch.run("backup.sh", TC_DATABASE__URL=scratch.source_url)
    assert backup.returncode == 0, backup.stderr
    path = Path(backup.stdout.strip())
    assert path.parent == scratch.backup_dir
    assert path.name.endswith(".pgdump" if scratch.backend == "postgresql" else ".sql.gz")
    checksum = Path(f"{path}.sha256").read_text().split()
    assert checksum == [hashlib.sha256(path.read_bytes()).hexdigest(), path.name]
    # Backups hold password hashes and personal data: their owner's only.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    restore = scratch.run("restore.sh", str(path), scratch.target_url)
    assert restore.returncode == 0, restore.stderr

    source = asyncio.run(_snapshot(scratch.source_url))
    target = asyncio.run(_snapshot(scratch.target_url))
    assert source == target
    assert {"users", "projects", "scenes", "alembic_version"} <= source.keys()
    assert (source["users"][0], source["projects"][0], source["scenes"][0]) == (3, 2, 5)

    argv = scratch.argv_log.read_text()
    dump_tool, restore_tool = (
        ("pg_dump", "pg_restore")
        if scratch.backend == "postgresql"
        else ("mariadb-dump", "mariadb")
    )
    assert f"{dump_tool} " in argv
    assert f"{restore_tool} " in argv
    _assert_no_password(backup.stdout, backup.stderr, restore.stdout, restore.stderr, argv)


def test_restore_refuses_a_tampered_or_unchecked_backup(scratch: Scratch) -> None:
    """restore.sh verifies the checksum (and the backend) before the restore tool runs."""
    _migrate(scratch.source_url)
    backup = scratch.run("backup.sh", TC_DATABASE__URL=scratch.source_url)
    assert backup.returncode == 0, backup.stderr
    path = Path(backup.stdout.strip())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = path.with_name(f"tampered-{path.name}")
    tampered.write_bytes(bytes(data))
    shutil.copy(f"{path}.sha256", f"{tampered}.sha256")
    unchecked = path.with_name(f"unchecked-{path.name}")
    shutil.copy(path, unchecked)
    scratch.argv_log.unlink()

    refused = scratch.run("restore.sh", str(tampered), scratch.target_url)
    assert refused.returncode == 1
    assert "does not match" in refused.stderr
    missing = scratch.run("restore.sh", str(unchecked), scratch.target_url)
    assert missing.returncode == 1
    assert "checksum file" in missing.stderr
    other = (
        "mysql://nobody@127.0.0.1/none"
        if scratch.backend == "postgresql"
        else "postgresql://nobody@127.0.0.1/none"
    )
    mismatched = scratch.run("restore.sh", str(path), other)
    assert mismatched.returncode == 1
    assert "backup cannot go into a" in mismatched.stderr
    assert not scratch.argv_log.exists()  # no restore tool ran
    assert asyncio.run(_snapshot(scratch.target_url)) == {}
    _assert_no_password(refused.stderr, missing.stderr)


def test_retention_keeps_the_newest_backups(scratch: Scratch) -> None:
    """With TC_BACKUP_KEEP=2, a third backup removes the oldest and its checksum."""
    made = []
    # The password as the settings' database.password: from TC_DATABASE__PASSWORD, then
    # from the secrets directory; the URL has none (MariaDB checks it; PostgreSQL here
    # trusts local connections).
    url = make_url(scratch.source_url).set(password=None).render_as_string(hide_password=False)
    secrets = Path(scratch.env["TC_SECRETS_DIR"])
    for attempt in range(3):
        if attempt < 2:
            password = {"TC_DATABASE__PASSWORD": PASSWORD}
        else:
            secrets.mkdir()
            (secrets / "tc_database__password").write_text(PASSWORD + "\n")
            password = {}
        backup = scratch.run("backup.sh", TC_DATABASE__URL=url, TC_BACKUP_KEEP="2", **password)
        assert backup.returncode == 0, backup.stderr
        made.append(Path(backup.stdout.strip()))
        _assert_no_password(backup.stdout, backup.stderr)
    kept = sorted(path.name for path in scratch.backup_dir.iterdir())
    assert kept == sorted(name for path in made[1:] for name in (path.name, f"{path.name}.sha256"))
    assert "retention: removed" in backup.stderr

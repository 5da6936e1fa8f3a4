"""Database faults through HTTP: a server that dies, hangs or drops idle connections.

The shared servers keep running: the app's URL points at a :class:`TcpProxy` in front of
them, and the test breaks the proxy. Every answer is a problem (503 with ``Retry-After``,
or 504), never a 500 and never a hang; no message, log line or Sentry event carries the
URL's password.
"""

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.database import Database, DatabaseConfigError, DatabaseUnavailableError
from fastapi_enterprise.settings import DatabaseSettings
from tests.conftest import GunicornProcess, LiveServer, free_port
from tests.database.conftest import Backend
from tests.database.tcp_proxy import TcpProxy

SERVERS = [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
SECRET = "pw-S3CRET-x"
# Small settings so that a fault is answered quickly; the bound below is not a benchmark,
# it tells an answer within the configured timeouts from a hang.
FAST = {"connect_timeout": 1.0, "pool_timeout": 2.0, "pool_size": 2, "max_overflow": 0}
SLACK = 3.0
BOUND = FAST["pool_timeout"] + FAST["connect_timeout"] + SLACK
CLIENT_TIMEOUT = 30.0  # a hang fails the test instead of blocking it


class Gate:
    """Holds a request between its two queries until the test has broken the server."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.proceed = threading.Event()

    async def wait(self) -> None:
        self.reached.set()
        deadline = time.monotonic() + CLIENT_TIMEOUT
        # A threading.Event, set by the test's thread: polled, not awaited.
        while not self.proceed.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def fault_app(url: str, table: Table, **options: Any) -> tuple[FastAPI, Database, Gate]:
    """An app on ``url`` with a one-query route and a two-query route held by a gate."""
    database = Database(DatabaseSettings(url=url, **options))
    Session = Annotated[AsyncSession, database.session()]  # noqa: N806 - as the docs name it
    gate = Gate()
    app = FastAPI()
    install(app, EnterpriseSettings(rate_limit={"enabled": False}))
    database.install(app)

    @app.get("/count")
    async def count(session: Session) -> int:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())

    @app.get("/two-queries")
    async def two_queries(session: Session) -> int:
        await session.execute(select(func.count()).select_from(table))
        await gate.wait()
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())

    return app, database, gate


def proxied(url: str, proxy: TcpProxy, password: str | None = None) -> str:
    """``url`` with the proxy's port (and ``password``, if given)."""
    target = make_url(url).set(port=proxy.port)
    if password is not None:
        target = target.set(password=password)
    return target.render_as_string(hide_password=False)


@pytest.fixture
def proxy(backend: Backend) -> Iterator[TcpProxy]:
    """A proxy in front of the backend's server, closed after the test."""
    port = make_url(backend.url).port
    assert port is not None
    with TcpProxy("127.0.0.1", port) as running:
        yield running


def assert_unavailable(response: httpx2.Response, elapsed: float, bound: float = BOUND) -> None:
    """A 503 problem with ``Retry-After``, answered within ``bound`` seconds."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    assert response.json()["detail"] == "The database is unavailable; try again later."
    assert elapsed < bound, f"answered after {elapsed:.1f} s, more than {bound} s"


def timed_get(client: httpx2.Client, path: str) -> tuple[httpx2.Response, float]:
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def checked_out(database: Database) -> int:
    return int(database.engine.pool.checkedout())  # type: ignore[attr-defined]


# -- 1. the server goes down, mid-request, and comes back -------------------------------


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_server_down_then_up_the_next_request_works(backend: Backend, proxy: TcpProxy) -> None:
    """While the server is down: 503s in time; once it is back, the next request works.

    Pre-ping replaces the pooled connection the server's death left dead.
    """
    app, database, _ = fault_app(proxied(backend.url, proxy), backend.table, **FAST)
    with (
        LiveServer(app) as server,
        httpx2.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
    ):
        assert client.get("/count").json() == 0
        assert proxy.open_connections == 1  # one pooled connection, now to be killed

        proxy.down()
        for _ in range(3):
            assert_unavailable(*timed_get(client, "/count"))
        assert checked_out(database) == 0

        proxy.up()
        assert client.get("/count").status_code == 200
        assert checked_out(database) == 0


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_a_pooled_connection_the_server_dropped_is_replaced_by_pre_ping(
    backend: Backend, proxy: TcpProxy
) -> None:
    """A restart between two requests is invisible: the dead pooled connection is replaced."""
    app, database, _ = fault_app(proxied(backend.url, proxy), backend.table, **FAST)
    with (
        LiveServer(app) as server,
        httpx2.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
    ):
        assert client.get("/count").status_code == 200
        accepted = proxy.accepted
        proxy.down()
        proxy.up()
        assert client.get("/count").status_code == 200
        assert proxy.accepted == accepted + 1  # a new connection replaced the dead one
        assert checked_out(database) == 0


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_server_down_in_the_middle_of_a_request_is_a_503(backend: Backend, proxy: TcpProxy) -> None:
    """The first query worked; the server dies; the second query fails: a 503 problem."""
    app, database, gate = fault_app(proxied(backend.url, proxy), backend.table, **FAST)
    with (
        LiveServer(app) as server,
        httpx2.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        pending = pool.submit(timed_get, client, "/two-queries")
        assert gate.reached.wait(CLIENT_TIMEOUT)
        proxy.down()
        gate.proceed.set()
        assert_unavailable(*pending.result(timeout=CLIENT_TIMEOUT))
        assert checked_out(database) == 0

        proxy.up()
        assert client.get("/count").status_code == 200


# -- 2. the server hangs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "driver"),
    [
        pytest.param("postgres", "asyncpg", marks=pytest.mark.postgres),
        pytest.param("mariadb", "asyncmy", marks=pytest.mark.mariadb),
    ],
    indirect=["backend"],
)
def test_a_hung_server_costs_at_most_the_read_timeout(
    backend: Backend, driver: str, proxy: TcpProxy
) -> None:
    """A hung server never gets the statement: its statement timeout cannot help.

    ``read_timeout`` bounds every wait for an answer, on the client: a 503 in time.
    """
    url = make_url(proxied(backend.url, proxy)).set(
        drivername=f"{make_url(backend.url).get_backend_name()}+{driver}"
    )
    app, database, gate = fault_app(
        url.render_as_string(hide_password=False),
        backend.table,
        statement_timeout=0.5,
        read_timeout=1.0,
        **FAST,
    )
    # The ping times out (read_timeout), then a new connection does (connect_timeout).
    bound = BOUND + 1.0
    with (
        LiveServer(app) as server,
        httpx2.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        assert client.get("/count").status_code == 200
        proxy.hang()
        assert_unavailable(*timed_get(client, "/count"), bound=bound)

        # Hung in the middle of a request: the second query never gets its answer.
        proxy.up()
        pending = pool.submit(timed_get, client, "/two-queries")
        assert gate.reached.wait(CLIENT_TIMEOUT)
        proxy.hang()
        gate.proceed.set()
        assert_unavailable(*pending.result(timeout=CLIENT_TIMEOUT), bound=bound)

        proxy.up()
        assert client.get("/count").status_code == 200
        assert checked_out(database) == 0


@pytest.mark.parametrize("url", ["mysql+aiomysql://u@h/d", "postgresql+psycopg://u@h/d"])
def test_read_timeout_with_a_driver_that_cannot_honour_it_is_refused(url: str) -> None:
    """The aiomysql and psycopg drivers have no read timeout: saying so beats a hang."""
    with pytest.raises(DatabaseConfigError, match="read_timeout"):
        Database(DatabaseSettings(url=url, read_timeout=1.0))


# -- 3. MariaDB drops idle connections (wait_timeout) ----------------------------------


@pytest.mark.mariadb
@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
@pytest.mark.parametrize("pre_ping", [True, False])
def test_idle_connections_dropped_by_wait_timeout(backend: Backend, pre_ping: bool) -> None:
    """With pre-ping the next request works; without, it is a 503 problem, not a 500."""
    app, database, _ = fault_app(
        backend.url,
        backend.table,
        connect_args={"init_command": "SET SESSION wait_timeout=1"},
        pool_pre_ping=pre_ping,
        **FAST,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/count").status_code == 200
        time.sleep(2.5)  # the server closes the idle pooled connection meanwhile
        response = client.get("/count")
        if pre_ping:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code != 500
            assert response.status_code == 503, response.text
            # The dead connection was discarded: the one after works.
            assert client.get("/count").status_code == 200
        assert checked_out(database) == 0


# -- 4 and 5. a bad URL, an unreachable server: clear messages, no password --------------

UNREACHABLE = ["postgresql+asyncpg", "mysql+aiomysql"]


def unreachable_url(driver: str) -> str:
    return f"{driver}://app:{SECRET}@127.0.0.1:{free_port()}/test"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+asyncpg://app:{SECRET}@db:not-a-port/test",
        f"postgresql+nosuchdriver://app:{SECRET}@db/test",
        f"postgresql+psycopg2://app:{SECRET}@db/test",
    ],
)
def test_a_malformed_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises((DatabaseConfigError, ValueError)) as raised:
        Database(DatabaseSettings(url=url))
    assert SECRET not in str(raised.value)
    assert SECRET not in repr(raised.value)


@pytest.mark.parametrize("driver", UNREACHABLE)
def test_unreachable_at_startup_with_fail_refuses_to_start(driver: str) -> None:
    app, _, _ = fault_app(unreachable_url(driver), _no_table(), startup_check="fail", **FAST)
    with pytest.raises(DatabaseUnavailableError) as raised, TestClient(app):
        pass  # pragma: no cover - the startup fails
    message = str(raised.value)
    assert "does not answer" in message
    assert "app:***@127.0.0.1" in message
    assert SECRET not in message


def _no_table() -> Table:
    from sqlalchemy import Column, Integer, MetaData

    return Table("never_created", MetaData(), Column("id", Integer, primary_key=True))


class SentryCapture:
    """An in-process Sentry transport: envelopes kept in memory, nothing sent."""

    def __init__(self) -> None:
        from sentry_sdk.transport import Transport

        self.envelopes: list[Any] = []
        envelopes = self.envelopes

        class Capture(Transport):
            def capture_envelope(self, envelope: Any) -> None:
                envelopes.append(envelope)

        self.transport = Capture()

    def text(self) -> str:
        """Everything Sentry would have sent, as text."""
        return repr([item.payload.json for envelope in self.envelopes for item in envelope.items])


@pytest.fixture
def sentry() -> Iterator[SentryCapture]:
    sentry_sdk = pytest.importorskip("sentry_sdk")
    capture = SentryCapture()
    yield capture
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    # Breadcrumbs live on the scopes, not the client: the next test starts without them.
    for scope in (sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
        scope.clear()


@pytest.mark.parametrize("driver", UNREACHABLE)
def test_unreachable_at_startup_with_warn_starts_and_never_shows_the_password(
    driver: str, capture_logs: Any, sentry: SentryCapture
) -> None:
    """Logs, readiness, problems and Sentry events all name the failure, masked."""
    import sentry_sdk

    from fastapi_enterprise.sentry import init_sentry

    settings = EnterpriseSettings(
        rate_limit={"enabled": False},
        sentry={"dsn": "https://publickey@o0.ingest.example.invalid/1"},
    )
    logs = capture_logs(settings)
    init_sentry(settings, transport=sentry.transport, auto_enabling_integrations=False)
    database = Database(DatabaseSettings(url=unreachable_url(driver), startup_check="warn", **FAST))
    Session = Annotated[AsyncSession, database.session()]  # noqa: N806
    app = FastAPI()
    install(
        app,
        settings.model_copy(update={"sentry": settings.sentry.model_copy(update={"dsn": None})}),
    )
    database.install(app)

    @app.get("/count")
    async def count(session: Session) -> int:
        return int((await session.execute(text("SELECT 1"))).scalar_one())

    @app.get("/crash")
    async def crash_route() -> None:
        try:
            await database.ping()
        except Exception as exc:  # an app bug on top: one Sentry event, breadcrumbs and all
            raise RuntimeError("could not report") from exc

    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        response = client.get("/count")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        crash = client.get("/crash")
        assert crash.status_code == 500
        bodies = ready.text + response.text + crash.text

    sentry_sdk.flush()
    log_text = logs.text()
    assert "does not answer at startup" in log_text
    assert "@127.0.0.1:" in log_text  # the URL is there, its password masked
    envelopes = sentry.text()
    assert "does not answer at startup" in envelopes  # the warning went to Sentry too
    for text_seen in (bodies, log_text, envelopes):
        assert SECRET not in text_seen


# -- 6. gunicorn --preload: a module-level Database, an engine per worker --------------

APP_MODULE = """
import os
from typing import Annotated

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.database import Database
from fastapi_enterprise.settings import DatabaseSettings

db = Database(DatabaseSettings(url=os.environ["APP_DATABASE_URL"], pool_size=2))
Session = Annotated[AsyncSession, db.session()]

app = FastAPI()
install(app, EnterpriseSettings(rate_limit={"enabled": False}))
db.install(app)


@app.get("/whoami")
async def whoami(session: Session) -> dict[str, object]:
    query = os.environ["APP_CONNECTION_QUERY"]
    connection = (await session.execute(text(query))).scalar_one()
    return {"pid": os.getpid(), "connection": connection}
"""
CONNECTION_QUERY = {"postgres": "SELECT pg_backend_pid()", "mariadb": "SELECT CONNECTION_ID()"}


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_gunicorn_preload_two_workers_each_serve_the_database(
    backend: Backend, tmp_path: Path
) -> None:
    """A Database created at import, in gunicorn's master: each worker serves it.

    With ``--preload`` the module runs before the fork; each worker creates its own
    engine after it (in the lifespan), so no connection is shared.
    """
    (tmp_path / "dbapp.py").write_text(APP_MODULE)
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(src)]),
        "APP_DATABASE_URL": backend.url,
        "APP_CONNECTION_QUERY": CONNECTION_QUERY[backend.name],
    }
    with GunicornProcess(
        "dbapp:app", env=env, cwd=tmp_path, workers=2, preload=True, capture_stderr=True
    ) as server:
        first = server.wait_until_serving("/whoami")
        assert first.status_code == 200, first.text
        seen: dict[int, set[int]] = {}
        for _ in range(200):
            # A new TCP connection each time, so that both workers get some.
            with httpx2.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
                response = client.get("/whoami")
            assert response.status_code == 200, response.text
            body = response.json()
            seen.setdefault(body["pid"], set()).add(body["connection"])
            if len(seen) == 2:
                break
    assert len(seen) == 2, f"only worker(s) {sorted(seen)} answered"
    first_pid, second_pid = seen.values()
    assert not first_pid & second_pid  # no database connection shared between workers
    assert b"Traceback" not in server.stderr, server.stderr.decode(errors="replace")

"""The apps the server benchmark compares; each is a factory for ``uvicorn --factory``.

Every app serves the same three endpoints: ``/small`` (~200 bytes of JSON), ``/large``
(~20 KB of JSON) and ``/realistic/{id}``: one row of a 1000-row SQLite table read with
aiosqlite (one connection per process) and returned through a 20-field response model.

- ``bare``: FastAPI alone (the reference); ``starlette``: raw Starlette (the floor);
- ``ours``: the full default stack via ``install()`` (request ID, access log to a file,
  security headers, rate limit on memory that never trips, metrics, gzip, errors);
- ``ours_no_access_log``: the same without the access line; ``ours_sampled``: the same
  logging one in ten successful requests; ``ours_core``: ``install()``
  with access log, rate limit, metrics and compression off;
- ``ours_<component>``: bare FastAPI plus one of our layers;
- ``peers``: asgi-correlation-id + a structlog access-log middleware written as
  structlog's docs show (``@app.middleware("http")``) + ``secure`` as its docs show +
  slowapi with a never-tripping limit + prometheus-fastapi-instrumentator + Starlette's
  GZip;
- ``tutorial``: the same concerns as ``@app.middleware("http")`` functions, as tutorials
  teach.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

SMALL = {"id": 1, "title": "FastAPI in production", "tags": ["asgi", "json", "fast"], "price": 1999}
LARGE = [
    {"id": n, "title": f"Course {n}", "summary": "lorem ipsum dolor sit amet " * 3}
    for n in range(180)
]
NEVER = "100000000/minute"
_Call = Callable[[Request], Awaitable[Response]]
LOG_FILE = os.environ.get("BENCH_LOG_FILE", "/tmp/fe-bench-access.log")
REALISTIC_DB = os.environ.get("BENCH_REALISTIC_DB", "/tmp/fe-bench-realistic.db")
REALISTIC_ROWS = 1000
REALISTIC_PATH = "realistic/7"


class Course(BaseModel):
    """The realistic endpoint's response model: 20 fields of the usual kinds."""

    id: int
    title: str
    slug: str
    summary: str
    language: str
    level: str
    price_cents: int
    currency: str
    published: bool
    rating: float
    reviews: int
    students: int
    duration_minutes: int
    lessons: int
    instructor: str
    category: str
    tags: list[str]
    thumbnail_url: str
    created_at: str
    updated_at: str


COURSE_FIELDS = tuple(Course.model_fields)


def course_row(course_id: int) -> tuple[Any, ...]:
    """The stored row of course ``course_id`` (tags as a comma-separated string)."""
    return (
        course_id,
        f"Course {course_id}: FastAPI in production",
        f"course-{course_id}",
        "Deploying, observing and scaling an API, one step at a time. " * 2,
        "en",
        ("beginner", "intermediate", "advanced")[course_id % 3],
        1999 + course_id,
        "EUR",
        course_id % 5 != 0,
        round(3.5 + (course_id % 15) / 10, 1),
        course_id * 7 % 1000,
        course_id * 31 % 10000,
        60 + course_id % 240,
        5 + course_id % 40,
        f"Instructor {course_id % 50}",
        ("backend", "devops", "data")[course_id % 3],
        "asgi,fastapi,production",
        f"https://cdn.example.com/courses/{course_id}/thumbnail.webp",
        "2026-01-15T09:30:00Z",
        "2026-11-01T17:45:00Z",
    )


def expected_course(course_id: int) -> dict[str, Any]:
    """The JSON the realistic endpoint answers for ``course_id``."""
    row = dict(zip(COURSE_FIELDS, course_row(course_id), strict=True))
    row["tags"] = row["tags"].split(",")
    return row


def prepare_realistic_database(path: str = REALISTIC_DB) -> None:
    """Create and fill the realistic endpoint's table, once (before the apps start)."""
    with sqlite3.connect(path) as connection:
        columns = ", ".join(COURSE_FIELDS)
        connection.execute(f"CREATE TABLE IF NOT EXISTS courses ({columns})")
        (count,) = connection.execute("SELECT count(*) FROM courses").fetchone()
        if count != REALISTIC_ROWS:
            connection.execute("DELETE FROM courses")
            marks = ", ".join("?" * len(COURSE_FIELDS))
            connection.executemany(
                f"INSERT INTO courses VALUES ({marks})",
                [course_row(number) for number in range(1, REALISTIC_ROWS + 1)],
            )


_QUERY = f"SELECT {', '.join(COURSE_FIELDS)} FROM courses WHERE id = ?"
_connection: Any = None
_connecting = asyncio.Lock()


async def fetch_course(course_id: int) -> dict[str, Any] | None:
    """One row through the process's aiosqlite connection (opened at first use)."""
    global _connection  # noqa: PLW0603 - one connection per server process
    import aiosqlite

    if _connection is None:
        async with _connecting:
            if _connection is None:
                _connection = await aiosqlite.connect(REALISTIC_DB)
    async with _connection.execute(_QUERY, (course_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    found = dict(zip(COURSE_FIELDS, row, strict=True))
    found["tags"] = found["tags"].split(",")
    return found


def _fastapi(middleware: list[Middleware] | None = None) -> FastAPI:
    app = FastAPI(middleware=middleware or [], docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/small")
    async def small() -> dict[str, Any]:
        return SMALL

    @app.get("/large")
    async def large() -> list[dict[str, Any]]:
        return LARGE

    @app.get("/realistic/{course_id}", response_model=Course)
    async def realistic(course_id: int) -> dict[str, Any]:
        course = await fetch_course(course_id)
        if course is None:
            raise HTTPException(404, "no such course")
        return course

    return app


def bare() -> FastAPI:
    """FastAPI with no middleware."""
    return _fastapi()


def starlette() -> Starlette:
    """Raw Starlette: the framework floor."""

    async def small(request: Any) -> JSONResponse:
        return JSONResponse(SMALL)

    async def large(request: Any) -> JSONResponse:
        return JSONResponse(LARGE)

    async def realistic(request: Any) -> JSONResponse:
        course = await fetch_course(int(request.path_params["course_id"]))
        return JSONResponse(course, status_code=200 if course else 404)

    return Starlette(
        routes=[
            Route("/small", small),
            Route("/large", large),
            Route("/realistic/{course_id}", realistic),
        ]
    )


def _settings(**overrides: Any) -> Any:
    from fastapi_enterprise import EnterpriseSettings

    # One log output, a file, as a service has one (stdout, or a file): a second output
    # renders nothing again but queues and writes every line twice.
    values: dict[str, Any] = {
        "environment": "test",
        "logging": {"file_path": LOG_FILE, "stdout": False},
        "rate_limit": {"default": NEVER},
    }
    values.update(overrides)
    return EnterpriseSettings(**values)


def _installed(**overrides: Any) -> FastAPI:
    from fastapi_enterprise import configure_logging, install

    settings = _settings(**overrides)
    configure_logging(settings, stream=open(os.devnull, "w"))  # noqa: SIM115 - process lifetime
    app = _fastapi()
    install(app, settings)
    return app


def ours() -> FastAPI:
    """The full default stack, access lines written to a file."""
    return _installed()


def ours_no_access_log() -> FastAPI:
    """The full default stack without the access line."""
    return _installed(logging={"file_path": LOG_FILE, "stdout": False, "access_log": False})


def ours_sampled() -> FastAPI:
    """The full default stack logging one in ten successful, fast requests.

    ``FE_LOGGING__ACCESS_SAMPLE_RATE=0.1``: errors, 4xx and slow requests are always
    logged; what sampling the access line buys.
    """
    return _installed(logging={"file_path": LOG_FILE, "stdout": False, "access_sample_rate": 0.1})


def ours_compress_1k() -> FastAPI:
    """The full default stack, compressing bodies from 1 KB instead of 500 bytes.

    ``FE_COMPRESSION__MINIMUM_SIZE=1024``: the realistic endpoint's 638-byte answer then
    goes out as it is, as bare FastAPI sends it; what the threshold costs there.
    """
    return _installed(compression={"minimum_size": 1024})


def ours_core() -> FastAPI:
    """install() with access log, rate limit, metrics and compression off.

    What is left: request ID, security headers, body limit, proxy headers, the error
    shield and problem+json errors.
    """
    return _installed(
        logging={"file_path": LOG_FILE, "stdout": False, "access_log": False},
        rate_limit={"enabled": False},
        metrics={"enabled": False},
        compression={"enabled": False},
    )


def _one(component: str) -> FastAPI:
    from fastapi_enterprise import (
        AccessLogMiddleware,
        BodyLimitMiddleware,
        CompressionMiddleware,
        RateLimitMiddleware,
        RequestIDMiddleware,
        SecurityHeadersMiddleware,
        configure_logging,
    )

    if component == "access_log":
        configure_logging(_settings(), stream=open(os.devnull, "w"))  # noqa: SIM115
    layers: dict[str, Middleware] = {
        "request_id": Middleware(RequestIDMiddleware),
        "security_headers": Middleware(SecurityHeadersMiddleware),
        "access_log": Middleware(AccessLogMiddleware),
        "body_limit": Middleware(BodyLimitMiddleware),
        "rate_limit": Middleware(RateLimitMiddleware, default=NEVER),
        "compression": Middleware(CompressionMiddleware),
    }
    if component == "metrics":
        from prometheus_client import CollectorRegistry

        from fastapi_enterprise.metrics import PrometheusMiddleware

        return _fastapi([Middleware(PrometheusMiddleware, registry=CollectorRegistry())])
    return _fastapi([layers[component]])


def ours_request_id() -> FastAPI:
    """Bare + RequestIDMiddleware."""
    return _one("request_id")


def ours_security_headers() -> FastAPI:
    """Bare + SecurityHeadersMiddleware."""
    return _one("security_headers")


def ours_access_log() -> FastAPI:
    """Bare + AccessLogMiddleware writing JSON lines."""
    return _one("access_log")


def ours_body_limit() -> FastAPI:
    """Bare + BodyLimitMiddleware."""
    return _one("body_limit")


def ours_rate_limit() -> FastAPI:
    """Bare + RateLimitMiddleware on memory."""
    return _one("rate_limit")


def ours_metrics() -> FastAPI:
    """Bare + PrometheusMiddleware."""
    return _one("metrics")


def ours_compression() -> FastAPI:
    """Bare + CompressionMiddleware."""
    return _one("compression")


def peers() -> FastAPI:
    """The stack users glue together today, each piece as its docs show."""
    import secure
    import structlog
    from asgi_correlation_id import CorrelationIdMiddleware
    from prometheus_fastapi_instrumentator import Instrumentator
    from secure.middleware import SecureASGIMiddleware
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIMiddleware
    from slowapi.util import get_remote_address
    from starlette.middleware.gzip import GZipMiddleware

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=open(LOG_FILE, "a")),  # noqa: SIM115
    )
    access = structlog.get_logger("api.access")
    limiter = Limiter(key_func=get_remote_address, default_limits=[NEVER])
    app = _fastapi()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.middleware("http")
    async def logging_middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            path=request.url.path,
            method=request.method,
            client=request.client.host if request.client else None,
        )
        start = time.perf_counter_ns()
        response = await call_next(request)
        access.info(
            "request",
            status=response.status_code,
            duration_ms=(time.perf_counter_ns() - start) / 1e6,
        )
        return response

    app.add_middleware(SlowAPIMiddleware)
    app.add_middleware(SecureASGIMiddleware, secure=secure.Secure.with_default_headers())
    app.add_middleware(GZipMiddleware)
    app.add_middleware(CorrelationIdMiddleware)
    Instrumentator().instrument(app)
    return app


def tutorial() -> FastAPI:
    """The same concerns as ``@app.middleware("http")`` functions."""
    logger = logging.getLogger("tutorial.access")
    handler = logging.FileHandler(LOG_FILE)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    hits: dict[str, int] = {}
    app = _fastapi()

    @app.middleware("http")
    async def rate_limit(request: Request, call_next: _Call) -> Response:
        key = request.client.host if request.client else "?"
        hits[key] = hits.get(key, 0) + 1
        return await call_next(request)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: _Call) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "default-src 'none'"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.middleware("http")
    async def access_log(request: Request, call_next: _Call) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        logger.info(
            '{"method": "%s", "path": "%s", "status": %d, "ms": %.3f}',
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - start) * 1000,
        )
        return response

    @app.middleware("http")
    async def request_id(request: Request, call_next: _Call) -> Response:
        value = request.headers.get("x-request-id") or str(uuid.uuid4())
        response = await call_next(request)
        response.headers["X-Request-ID"] = value
        return response

    from starlette.middleware.gzip import GZipMiddleware

    app.add_middleware(GZipMiddleware)
    return app


APPS: dict[str, Callable[[], Any]] = {
    "bare": bare,
    "starlette": starlette,
    "ours": ours,
    "ours_no_access_log": ours_no_access_log,
    "ours_sampled": ours_sampled,
    "ours_core": ours_core,
    "ours_compress_1k": ours_compress_1k,
    "ours_request_id": ours_request_id,
    "ours_security_headers": ours_security_headers,
    "ours_access_log": ours_access_log,
    "ours_body_limit": ours_body_limit,
    "ours_rate_limit": ours_rate_limit,
    "ours_metrics": ours_metrics,
    "ours_compression": ours_compression,
    "peers": peers,
    "tutorial": tutorial,
}
"""Name to factory, in report order."""

DEFAULT_APPS = (
    "bare",
    "starlette",
    "ours",
    "ours_no_access_log",
    "ours_sampled",
    "ours_core",
    "peers",
)
"""What ``nox -s bench`` compares unless ``--apps`` names others (any of :data:`APPS`)."""

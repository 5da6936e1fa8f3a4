"""Response envelopes and pagination through HTTP."""

from __future__ import annotations

import asyncio
import gc
import os
import weakref
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict
from typing_extensions import assert_type

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.pagination import Page, PageParams, page_params, paginate
from fastapi_enterprise.responses import PaginatedResponse, StandardResponse

sqlalchemy = pytest.importorskip("sqlalchemy")
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

from fastapi_enterprise.pagination import paginate_select  # noqa: E402


class Course(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str


class Base(DeclarativeBase):
    pass


class CourseRow(Base):
    __tablename__ = "fe_test_courses"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]


COURSES = [Course(id=n, title=f"Course {n}") for n in range(1, 46)]
SmallPage = Annotated[PageParams, Depends(page_params(default_size=5, max_size=10))]


def make_app(engine: Any = None) -> FastAPI:
    app = FastAPI()

    @app.get("/courses")
    async def courses(page: Page, request: Request) -> PaginatedResponse[Course]:
        return paginate(COURSES, page, request)

    @app.get("/small")
    async def small(page: SmallPage, request: Request) -> PaginatedResponse[Course]:
        return paginate(COURSES, page, request)

    @app.get("/one")
    async def one() -> StandardResponse[Course]:
        return StandardResponse.of(COURSES[0])

    if engine is not None:

        def session() -> Iterator[Session]:
            with Session(engine) as db:
                yield db

        @app.get("/db/courses")
        def db_courses(
            page: Page,
            request: Request,
            db: Session = Depends(session),  # noqa: B008 - a local dependency needs a default
        ) -> PaginatedResponse[Course]:
            statement = sqlalchemy.select(CourseRow).order_by(CourseRow.id)
            result = paginate_select(db, statement, page, request)
            return PaginatedResponse[Course](
                **{
                    **result.model_dump(),
                    "items": [Course(id=r.id, title=r.title) for r in result.items],
                }
            )

        @app.get("/db/mapped")
        def db_mapped(
            page: Page,
            request: Request,
            db: Session = Depends(session),  # noqa: B008 - a local dependency needs a default
        ) -> PaginatedResponse[Course]:
            statement = sqlalchemy.select(CourseRow).order_by(CourseRow.id)
            return paginate_select(db, statement, page, request, transform=Course.model_validate)

    install(app, EnterpriseSettings(environment="test"))
    return app


def test_pages_with_links_that_keep_other_parameters() -> None:
    client = TestClient(make_app())
    body = client.get("/courses", params={"page": 2, "size": 20, "q": "py"}).json()
    assert [item["id"] for item in body["items"]] == list(range(21, 41))
    assert (body["total"], body["page"], body["size"], body["pages"]) == (45, 2, 20, 3)
    links = body["links"]
    assert links["prev"] == "/courses?q=py&page=1&size=20"
    assert links["next"] == "/courses?q=py&page=3&size=20"
    assert links["first"].endswith("?q=py&page=1&size=20")
    assert links["last"].endswith("?q=py&page=3&size=20")
    last = client.get("/courses", params={"page": 3, "size": 20}).json()
    assert len(last["items"]) == 5
    assert last["links"]["next"] is None
    beyond = client.get("/courses", params={"page": 99}).json()
    assert beyond["items"] == []
    assert beyond["links"]["prev"].endswith("page=3&size=20")


def test_links_are_relative_so_no_host_header_reaches_the_body() -> None:
    """A client's Host (or a cache poisoner's) never appears in the links it is served."""
    client = TestClient(make_app())
    response = client.get("/courses", params={"page": 2}, headers={"Host": "evil.example:8443"})
    links = response.json()["links"]
    assert links == {
        "first": "/courses?page=1&size=20",
        "prev": "/courses?page=1&size=20",
        "next": "/courses?page=3&size=20",
        "last": "/courses?page=3&size=20",
    }
    assert "evil" not in response.text


def test_links_keep_the_proxy_prefix() -> None:
    client = TestClient(make_app(), root_path="/api")
    links = client.get("/api/courses", params={"page": 2}).json()["links"]
    assert links["next"] == "/api/courses?page=3&size=20"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": -5}, "size"),
        ({"size": 10_000}, "size"),
        ({"size": "ten"}, "size"),
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": "x"}, "page"),
        ({"page": 10**12}, "page"),
    ],
)
def test_bad_page_parameters_are_422_problems(params: dict[str, Any], field: str) -> None:
    response = TestClient(make_app()).get("/courses", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["query", field]


def test_custom_bounds() -> None:
    client = TestClient(make_app())
    assert client.get("/small").json()["size"] == 5
    assert client.get("/small", params={"size": 11}).status_code == 422
    with pytest.raises(ValueError, match="default_size"):
        page_params(default_size=50, max_size=10)


def test_standard_envelope_carries_the_request_id() -> None:
    response = TestClient(make_app()).get("/one", headers={"X-Request-ID": "envelope-0001"})
    assert response.json() == {
        "data": {"id": 1, "title": "Course 1"},
        "meta": {"request_id": "envelope-0001"},
    }


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_sqlalchemy_select_pagination(database: str, tmp_path: Any) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path}/courses.db"
    else:
        pytest.importorskip("psycopg")
        url = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    engine = sqlalchemy.create_engine(url)
    try:
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
    except sqlalchemy.exc.OperationalError:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(f"{database} not reachable")
    try:
        with Session(engine) as db:
            db.add_all(CourseRow(id=c.id, title=c.title) for c in COURSES)
            db.commit()
        client = TestClient(make_app(engine))
        for path in ("/db/courses", "/db/mapped"):
            body = client.get(path, params={"page": 3}).json()
            assert [item["id"] for item in body["items"]] == list(range(41, 46)), path
            assert body["items"][0]["title"] == "Course 41"
            assert (body["total"], body["pages"]) == (45, 3)
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


def bare_request(query: bytes) -> Request:
    """A GET ``/c`` request with ``query``, for calling the helpers directly."""
    return Request(
        {"type": "http", "method": "GET", "path": "/c", "query_string": query, "headers": []}
    )


def test_paginate_transforms_only_the_items_of_the_page() -> None:
    seen: list[int] = []

    def to_title(course: Course) -> str:
        seen.append(course.id)
        return course.title

    request = Request(
        {"type": "http", "method": "GET", "path": "/c", "query_string": b"", "headers": []}
    )
    page = paginate(COURSES, PageParams(page=2, size=3), request, transform=to_title)
    assert_type(page, PaginatedResponse[str])
    assert page.items == ["Course 4", "Course 5", "Course 6"]
    assert seen == [4, 5, 6]
    assert (page.total, page.pages) == (45, 15)


def test_pages_reuse_one_model_class_across_requests() -> None:
    """The page class is built once, not rebuilt after the garbage collector ran.

    pydantic caches parametrized generics weakly: a class parametrized per call dies
    with its last page, and building it again costs milliseconds per request.
    """
    page = paginate(COURSES, PageParams(page=1, size=3), bare_request(b""))
    page_class = weakref.ref(type(page))
    del page
    gc.collect()
    again = paginate(COURSES, PageParams(page=2, size=3), bare_request(b""))
    assert page_class() is type(again)


def test_paginate_select_async_maps_rows_to_the_response_model(tmp_path: Any) -> None:
    pytest.importorskip("aiosqlite")
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from fastapi_enterprise.pagination import paginate_select_async

    async def scenario() -> tuple[PaginatedResponse[Course], PaginatedResponse[Any]]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/courses.db")
        try:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
            async with AsyncSession(engine) as db:
                db.add_all(CourseRow(id=c.id, title=c.title) for c in COURSES[:7])
                await db.commit()
                statement = sqlalchemy.select(CourseRow).order_by(CourseRow.id.desc())
                request = Request(
                    {
                        "type": "http",
                        "method": "GET",
                        "path": "/c",
                        "query_string": b"q=1",
                        "headers": [],
                    }
                )
                params = PageParams(page=1, size=5)
                mapped = await paginate_select_async(
                    db, statement, params, request, transform=Course.model_validate
                )
                rows = await paginate_select_async(db, statement, params, request)
                return mapped, rows
        finally:
            await engine.dispose()

    mapped, rows = asyncio.run(scenario())
    assert_type(mapped, PaginatedResponse[Course])
    assert mapped.items == [Course(id=n, title=f"Course {n}") for n in range(7, 2, -1)]
    assert all(isinstance(row, CourseRow) for row in rows.items)  # unchanged without transform
    assert (mapped.total, mapped.pages, mapped.links.next) == (7, 2, "/c?q=1&page=2&size=5")

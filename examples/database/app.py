"""Courses on a database: the session dependency, read-only reads, problems for conflicts.

Run: ``FE_DATABASE__URL=sqlite:///./courses.db uvicorn examples.database.app:app``
(or ``postgresql://user@host/db`` with asyncpg installed, ``mysql://...`` with aiomysql).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_enterprise import EnterpriseSettings, configure_logging, install
from fastapi_enterprise.database import Database


class Base(DeclarativeBase):
    """The models' base."""


class Course(Base):
    """A course row."""

    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))


class CourseIn(BaseModel):
    """A course as clients send it."""

    slug: str
    title: str


class CourseOut(CourseIn):
    """A course as clients get it."""

    id: int


settings = EnterpriseSettings()
configure_logging(settings)
db = Database(settings.database)  # no engine yet: it is created at startup, per worker

# The dependencies: a session committed before the response, and one that never commits.
Session = Annotated[AsyncSession, db.session()]
ReadSession = Annotated[AsyncSession, db.session(read_only=True)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await create_tables()  # the database is started before the app's own lifespan
    yield


app = FastAPI(lifespan=lifespan, **settings.fastapi_kwargs())
install(app, settings)
db.install(app)  # after install(): lifespan, /health/ready, metrics, error problems


@app.post("/courses", status_code=201)
async def create_course(course: CourseIn, session: Session) -> CourseOut:
    row = Course(slug=course.slug, title=course.title)
    session.add(row)
    await session.flush()  # sends the INSERT: the id is known, a duplicate slug is a 409
    return CourseOut(id=row.id, slug=row.slug, title=row.title)


@app.get("/courses/{slug}")
async def read_course(slug: str, session: ReadSession) -> CourseOut:
    row = await session.scalar(select(Course).where(Course.slug == slug))
    if row is None:
        raise HTTPException(404, "No such course.")
    return CourseOut(id=row.id, slug=row.slug, title=row.title)


async def create_tables() -> None:
    """Create the tables (a real app runs migrations: Alembic)."""
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)


async def rename_course(slug: str, title: str) -> None:
    """A worker's or a script's unit of work: committed at the end, or rolled back."""
    async with db.transaction() as session:
        row = await session.scalar(select(Course).where(Course.slug == slug))
        if row is None:
            raise LookupError(slug)
        row.title = title

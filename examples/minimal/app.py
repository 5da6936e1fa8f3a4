"""A small notes API on SQLite: the library in one file, without the reference app.

``uvicorn examples.minimal.app:app`` serves it (``nox -s demo`` serves TecnoCursos, the
reference app in ``examples/tecnocursos``).

Runs on embedded defaults: SQLite from ``FE_DATABASE__URL`` (``sqlite:///./app.db``), no
server to install. Every response carries an ``X-Request-ID``; every error is
``application/problem+json``; the console shows one access line per request (readable
in development, JSON with ``FE_LOGGING__FORMAT=json``) and the traceback of any error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from fastapi_enterprise import (
    EnterpriseSettings,
    configure_logging,
    get_request_id,
    install,
    problem_responses,
)

settings = EnterpriseSettings(app={"name": "fastapi-enterprise demo"})
configure_logging(settings)


def sqlite_path(url: str) -> str:
    """Turn ``sqlite:///./app.db`` into ``./app.db`` and ``sqlite://`` into ``:memory:``."""
    if not url.startswith("sqlite://"):
        raise ValueError("the demo app only speaks SQLite: set FE_DATABASE__URL=sqlite:///...")
    return url.removeprefix("sqlite://").removeprefix("/") or ":memory:"


DATABASE = sqlite_path(settings.database.url.get_secret_value())


def connect() -> Iterator[sqlite3.Connection]:
    """One connection per request (sync dependency: runs in the threadpool)."""
    connection = sqlite3.connect(DATABASE)
    connection.row_factory = sqlite3.Row
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()


Database = Annotated[sqlite3.Connection, Depends(connect)]
# SQLite integers are 64-bit: a larger ID is a 422 here, not an OverflowError (a 500) there.
NoteID = Annotated[int, Path(ge=1, le=2**63 - 1)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the table on startup."""
    with sqlite3.connect(DATABASE) as connection:
        connection.execute(
            "create table if not exists notes (id integer primary key, title text not null, "
            "body text not null)"
        )
    yield


app = FastAPI(lifespan=lifespan, **settings.fastapi_kwargs())


class NoteIn(BaseModel):
    """A note to create."""

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=10_000)


class Note(NoteIn):
    """A stored note."""

    id: int


@app.get("/")
def index() -> dict[str, object]:
    """Say hello and show this request's ID."""
    return {"app": settings.app.name, "docs": "/docs", "request_id": get_request_id()}


@app.get("/notes")
def list_notes(db: Database) -> list[Note]:
    """List every note."""
    rows = db.execute("select id, title, body from notes order by id").fetchall()
    return [Note(**dict(row)) for row in rows]


@app.post("/notes", status_code=status.HTTP_201_CREATED)
def create_note(note: NoteIn, db: Database) -> Note:
    """Create a note."""
    cursor = db.execute(
        "insert into notes (title, body) values (?, ?) returning id", (note.title, note.body)
    )
    (note_id,) = cursor.fetchone()
    return Note(id=note_id, **note.model_dump())


@app.get("/notes/{note_id}", responses=problem_responses(404))
def read_note(note_id: NoteID, db: Database) -> Note:
    """Read one note."""
    row = db.execute("select id, title, body from notes where id = ?", (note_id,)).fetchone()
    if row is None:
        raise HTTPException(404, detail=f"No note with ID {note_id}.")
    return Note(**dict(row))


@app.delete("/notes/{note_id}", status_code=204, responses=problem_responses(404))
def delete_note(note_id: NoteID, db: Database) -> Response:
    """Delete one note."""
    if db.execute("delete from notes where id = ?", (note_id,)).rowcount == 0:
        raise HTTPException(404, detail=f"No note with ID {note_id}.")
    return Response(status_code=204)


install(app, settings)

"""``lock_for_update()``: ``SELECT ... FOR UPDATE`` that also serialises writers on SQLite."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, delete, false
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Join, TableClause

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["lock_for_update"]

S = TypeVar("S", bound="Select[Unpack[tuple[Any, ...]]]")  # any number of columns


async def lock_for_update(session: AsyncSession, statement: S) -> S:
    """Make ``statement`` lock what it reads until ``session``'s transaction ends.

    For a read-modify-write (next position, a quota, a counter) that two requests must
    not interleave. Execute what it returns as usual
    (``await session.scalar(await lock_for_update(session, select(...)))``).

    - PostgreSQL, MariaDB, MySQL: returns ``statement.with_for_update()``; the rows it
      reads are locked, and a concurrent transaction locking them waits.
    - SQLite has no row locks, and Python's driver begins a transaction only at the first
      write, so two requests could both read, then both write (a duplicate position, a
      quota passed twice). Here the database's write lock is taken now, by a statement
      that writes nothing (``DELETE FROM <the statement's first table> WHERE 0``): the
      read and every write after it run alone among writers, until the commit. Another
      writer waits for it up to the busy timeout (``database.connect_timeout``), then
      gets a 503 problem. Readers are not blocked.

    Args:
        session: The session whose transaction holds the lock (not a read-only one:
            taking the write lock is a write, refused with ``ReadOnlyError``).
        statement: A ``SELECT`` from a table.

    Raises:
        ValueError: On SQLite, the statement reads from no table.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(delete(_first_table(statement)).where(false()))
    return statement.with_for_update()


def _first_table(statement: Select[Any]) -> TableClause:
    for source in statement.get_final_froms():
        while isinstance(source, Join):
            source = source.left
        if isinstance(source, TableClause):
            return source
    raise ValueError("lock_for_update() needs a SELECT that reads from a table")

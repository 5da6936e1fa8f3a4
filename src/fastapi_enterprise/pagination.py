"""Pagination: a bounded page dependency and helpers for sequences and SQLAlchemy selects.

```python
from fastapi_enterprise.pagination import Page, paginate_select


@app.get("/courses")
def list_courses(page: Page, request: Request, db: Session) -> PaginatedResponse[Course]:
    return paginate_select(db, select(CourseRow).order_by(CourseRow.id), page, request)
```

Page numbers start at 1; the page size is bounded (``max_size``), so a client cannot ask
for a million rows; ``size=0``, negative, huge or non-numeric values get a 422 problem.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, overload

from fastapi import Depends, Query
from starlette.requests import Request

from fastapi_enterprise.responses import PageLinks, PaginatedResponse

__all__ = [
    "MAX_PAGE",
    "Page",
    "PageParams",
    "page_params",
    "paginate",
    "paginate_select",
    "paginate_select_async",
]

T = TypeVar("T")
U = TypeVar("U")
MAX_PAGE = 1_000_000
"""Highest page number accepted (bounds the OFFSET a client can ask the database for)."""


@dataclass(frozen=True)
class PageParams:
    """A validated page request."""

    page: int
    size: int

    @property
    def offset(self) -> int:
        """Rows to skip."""
        return (self.page - 1) * self.size


def page_params(default_size: int = 20, max_size: int = 100) -> Callable[..., PageParams]:
    """Build a dependency reading ``?page=&size=`` with the given bounds."""
    if not 1 <= default_size <= max_size:
        raise ValueError("default_size must be between 1 and max_size")

    def dependency(page: int = 1, size: int = default_size) -> PageParams:
        return PageParams(page=page, size=size)

    # The bounds are local values: give FastAPI real annotation objects (this module's
    # postponed annotations would be strings it cannot resolve).
    page_query = Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")
    size_query = Query(ge=1, le=max_size, description=f"Items per page, 1 to {max_size}.")
    keyword = inspect.Parameter.KEYWORD_ONLY
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("page", keyword, default=1, annotation=Annotated[int, page_query]),
            inspect.Parameter(
                "size", keyword, default=default_size, annotation=Annotated[int, size_query]
            ),
        ],
        return_annotation=PageParams,
    )
    return dependency


Page = Annotated[PageParams, Depends(page_params())]
"""The default page dependency: 20 items per page, at most 100."""


def _links(request: Request, params: PageParams, pages: int) -> PageLinks:
    # Relative references (RFC 3986 section 4.2): the path and query the client asked for,
    # never scheme and host, which would come from the client's own Host header and carry
    # whatever it says into the body (and into any cache in front of the API).
    def url(page: int) -> str:
        target = request.url.include_query_params(page=page, size=params.size)
        return f"{target.path}?{target.query}"

    last = max(pages, 1)
    return PageLinks(
        first=url(1),
        prev=url(min(params.page - 1, last)) if params.page > 1 else None,
        next=url(params.page + 1) if params.page < pages else None,
        last=url(last),
    )


# Parametrized once and held here: pydantic keeps its parametrized generics in a weak
# cache, so `PaginatedResponse[Any]` written in _page() was collected by the garbage
# collector and rebuilt by a later page (a new class, its docstrings read back from the
# source): 1.3 ms of CPU for such a page instead of 0.2 ms, on about a third of the pages
# built in the deployment benchmark.
_ANY_PAGE = PaginatedResponse[Any]


def _page(items: list[T], total: int, params: PageParams, request: Request) -> PaginatedResponse[T]:
    pages = math.ceil(total / params.size) if total else 0
    return _ANY_PAGE(
        items=items,
        total=total,
        page=params.page,
        size=params.size,
        pages=pages,
        links=_links(request, params, pages),
    )


@overload
def paginate(items: Sequence[T], params: PageParams, request: Request) -> PaginatedResponse[T]: ...
@overload
def paginate(
    items: Sequence[Any], params: PageParams, request: Request, *, transform: Callable[[Any], U]
) -> PaginatedResponse[U]: ...
def paginate(
    items: Sequence[Any],
    params: PageParams,
    request: Request,
    *,
    transform: Callable[[Any], Any] | None = None,
) -> PaginatedResponse[Any]:
    """Return one page of an in-memory sequence.

    Args:
        items: Every item, in order.
        params: The page asked for.
        request: The request, whose URL the links are built from.
        transform: Applied to each item of the page only (``CourseOut.model_validate``).
    """
    window = list(items[params.offset : params.offset + params.size])
    return _page(_map(window, transform), len(items), params, request)


@overload
def paginate_select(
    session: Any, statement: Any, params: PageParams, request: Request
) -> PaginatedResponse[Any]: ...
@overload
def paginate_select(
    session: Any,
    statement: Any,
    params: PageParams,
    request: Request,
    *,
    transform: Callable[[Any], U],
) -> PaginatedResponse[U]: ...
def paginate_select(
    session: Any,
    statement: Any,
    params: PageParams,
    request: Request,
    *,
    transform: Callable[[Any], Any] | None = None,
) -> PaginatedResponse[Any]:
    """Return one page of a SQLAlchemy ``select`` run on a sync ``Session``.

    The total comes from ``SELECT count(*)`` over the statement as a subquery; the page
    from ``LIMIT``/``OFFSET``. Give the statement an ``ORDER BY`` for stable pages.

    Args:
        session: A SQLAlchemy ``Session``.
        statement: The ``select()``, with its ``ORDER BY``.
        params: The page asked for.
        request: The request, whose URL the links are built from.
        transform: Turns each row of the page into the response item, typically
            ``CourseOut.model_validate``; the result is then a
            ``PaginatedResponse[CourseOut]`` for type checkers too.
    """
    from sqlalchemy import func, select

    total = session.execute(select(func.count()).select_from(statement.subquery())).scalar_one()
    rows = session.execute(statement.limit(params.size).offset(params.offset)).scalars().all()
    return _page(_map(rows, transform), int(total), params, request)


@overload
async def paginate_select_async(
    session: Any, statement: Any, params: PageParams, request: Request
) -> PaginatedResponse[Any]: ...
@overload
async def paginate_select_async(
    session: Any,
    statement: Any,
    params: PageParams,
    request: Request,
    *,
    transform: Callable[[Any], U],
) -> PaginatedResponse[U]: ...
async def paginate_select_async(
    session: Any,
    statement: Any,
    params: PageParams,
    request: Request,
    *,
    transform: Callable[[Any], Any] | None = None,
) -> PaginatedResponse[Any]:
    """Return one page of a SQLAlchemy ``select`` run on an ``AsyncSession``.

    Args:
        session: A SQLAlchemy ``AsyncSession``.
        statement: The ``select()``, with its ``ORDER BY``.
        params: The page asked for.
        request: The request, whose URL the links are built from.
        transform: As for :func:`paginate_select`.
    """
    from sqlalchemy import func, select

    count = await session.execute(select(func.count()).select_from(statement.subquery()))
    result = await session.execute(statement.limit(params.size).offset(params.offset))
    return _page(_map(result.scalars().all(), transform), int(count.scalar_one()), params, request)


def _map(rows: Sequence[Any], transform: Callable[[Any], Any] | None) -> list[Any]:
    return list(rows) if transform is None else [transform(row) for row in rows]

"""``/users``: ``/users/me`` for everyone signed in, the list for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from sqlalchemy import select
from starlette.requests import Request

from fastapi_enterprise import Page, PaginatedResponse, problem_responses
from fastapi_enterprise.pagination import paginate_select_async
from tecnocursos.auth.dependencies import CurrentUser, require_role
from tecnocursos.auth.models import Role, User
from tecnocursos.core.database import Session
from tecnocursos.users.schemas import UserOut

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", responses=problem_responses(401))
async def read_me(user: CurrentUser) -> UserOut:
    """The caller's account."""
    return UserOut.model_validate(user)


@router.get("", responses=problem_responses(401, 403, 422))
async def list_users(
    admin: Annotated[User, require_role(Role.ADMIN)],
    page: Page,
    request: Request,
    session: Session,
) -> PaginatedResponse[UserOut]:
    """Every account, oldest first (admins only)."""
    return await paginate_select_async(
        session, select(User).order_by(User.id), page, request, transform=UserOut.model_validate
    )

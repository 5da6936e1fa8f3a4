"""Who is calling: ``CurrentUser`` and ``require_role(...)``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import Request

from tecnocursos.auth.models import Role, User
from tecnocursos.auth.passwords import Passwords
from tecnocursos.auth.tokens import InvalidTokenError, TokenService
from tecnocursos.core.database import Session

__all__ = [
    "CurrentUser",
    "get_current_user",
    "get_passwords",
    "get_token_service",
    "oauth2_scheme",
    "require_role",
]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
"""The bearer token, documented in OpenAPI as the password flow at ``/auth/token``."""


async def get_passwords(request: Request) -> Passwords:
    """The app's password hasher (set by ``create_app``)."""
    passwords: Passwords = request.app.state.passwords
    return passwords


async def get_token_service(request: Request) -> TokenService:
    """The app's access-token service (set by ``create_app``).

    ``async def``, like every accessor used as a dependency here: FastAPI runs a plain
    ``def`` dependency in its thread pool, a thread hop on every request.
    """
    tokens: TokenService = request.app.state.tokens
    return tokens


def _unauthorized(error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(
        401, "Missing or invalid access token.", headers={"WWW-Authenticate": challenge}
    )


async def get_current_user(
    session: Session,
    tokens: Annotated[TokenService, Depends(get_token_service)],
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The user named by a valid access token (401 problem otherwise)."""
    if token is None:
        raise _unauthorized()
    try:
        claims = tokens.decode_access_token(token)
    except InvalidTokenError:
        raise _unauthorized("invalid_token") from None
    user = await session.get(User, claims.user_id)
    if user is None:  # deleted since the token was issued
        raise _unauthorized("invalid_token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
"""The authenticated user: ``async def route(user: CurrentUser)``."""


def require_role(*roles: Role) -> Any:
    """A dependency admitting only users with one of ``roles`` (403 problem otherwise).

    Example:
        ```python
        @router.get("/users")
        async def list_users(admin: Annotated[User, require_role(Role.ADMIN)]): ...
        ```
    """
    if not roles:
        raise ValueError("require_role() needs at least one role")
    allowed = frozenset(roles)

    async def check_role(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise HTTPException(403, "Your role does not allow this.")
        return user

    return Depends(check_role)

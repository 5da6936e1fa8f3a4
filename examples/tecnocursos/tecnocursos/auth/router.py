"""``/auth``: register, log in (OAuth2 password flow), refresh, log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from starlette.requests import Request

from fastapi_enterprise import problem_response, problem_responses
from tecnocursos.auth import service
from tecnocursos.auth.dependencies import get_passwords, get_token_service
from tecnocursos.auth.models import Role, User, utcnow
from tecnocursos.auth.passwords import Passwords
from tecnocursos.auth.schemas import MAX_PASSWORD_LENGTH, RefreshIn, RegisterIn, TokenOut
from tecnocursos.auth.tokens import TokenService
from tecnocursos.core.database import Session
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.users.schemas import UserOut

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])

Passwords_ = Annotated[Passwords, Depends(get_passwords)]
Tokens = Annotated[TokenService, Depends(get_token_service)]

_NO_STORE = {"Cache-Control": "no-store"}  # RFC 6749 section 5.1: tokens are never cached


async def _settings(request: Request) -> TecnoCursosSettings:
    settings: TecnoCursosSettings = request.app.state.settings
    return settings


Settings = Annotated[TecnoCursosSettings, Depends(_settings)]


def _check_password_policy(body: RegisterIn, settings: TecnoCursosSettings) -> None:
    """Length and not the email; NIST SP 800-63B asks for nothing more (no class rules)."""
    problem: tuple[str, str] | None = None
    if len(body.password) < settings.auth.password_min_length:
        problem = (
            "string_too_short",
            f"Password should have at least {settings.auth.password_min_length} characters",
        )
    elif body.password.strip().lower() in {body.email.lower(), body.email.split("@")[0].lower()}:
        problem = ("password_is_email", "Password must not be the email address")
    if problem is not None:
        # The library's validation handler shows location, message and type, never input.
        raise RequestValidationError(
            [{"type": problem[0], "loc": ("body", "password"), "msg": problem[1]}]
        )


@router.post(
    "/register",
    status_code=201,
    responses=problem_responses(409, 422),
    summary="Create a student account",
)
async def register(
    body: RegisterIn, session: Session, passwords: Passwords_, settings: Settings
) -> UserOut:
    """Create an account with the ``student`` role."""
    _check_password_policy(body, settings)
    email = body.email.lower()
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        # The detail names the conflict, never the submitted value.
        raise HTTPException(409, "An account with this email already exists.")
    user = User(email=email, password_hash=await passwords.hash(body.password), role=Role.STUDENT)
    session.add(user)
    await session.flush()  # a concurrent duplicate fails here: the library's 409 problem
    return UserOut.model_validate(user)


# --8<-- [start:login]
@router.post(
    "/token",
    response_model=TokenOut,
    responses=problem_responses(401, 422, 429),
    summary="Log in (OAuth2 password flow)",
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    response: Response,
    session: Session,
    passwords: Passwords_,
    tokens: Tokens,
    settings: Settings,
) -> TokenOut | Response:
    """Exchange email (``username``) and password for an access and a refresh token.

    Failed attempts are counted and committed (the failure answer is returned, not
    raised, so the session commits it); the ``max_failed_logins``-th locks the account:
    429 with ``Retry-After`` until the lock ends.
    """
    if len(form.password) > MAX_PASSWORD_LENGTH or "\x00" in form.username:
        # No account has a NUL in its email (PostgreSQL could not even compare one).
        return _login_failed()
    now = utcnow()
    try:
        user = await service.authenticate(
            session, passwords, settings.auth, form.username, form.password, now=now
        )
    except service.AccountLockedError as exc:
        return problem_response(
            429,
            detail="Too many failed logins: the account is locked for a while.",
            headers={"Retry-After": str(exc.retry_after)},
        )
    if user is None:
        return _login_failed()
    body, _ = await service.issue_tokens(session, tokens, settings.auth, user.id, now=now)
    response.headers.update(_NO_STORE)
    return body


def _login_failed() -> Response:
    return problem_response(
        401,
        detail="Incorrect email or password.",
        headers={"WWW-Authenticate": "Bearer", **_NO_STORE},
    )


# --8<-- [end:login]


@router.post(
    "/refresh",
    response_model=TokenOut,
    responses=problem_responses(401, 422),
    summary="Rotate a refresh token",
)
async def refresh(
    body: RefreshIn, response: Response, session: Session, tokens: Tokens, settings: Settings
) -> TokenOut | Response:
    """Exchange a refresh token for new tokens; the one presented stops working.

    Presenting a token that was already used revokes every token of its login (its
    family) and answers 401: the refresh token has leaked, or the client is broken.
    """
    try:
        new = await service.rotate_refresh_token(
            session, tokens, settings.auth, body.refresh_token, now=utcnow()
        )
    except service.RefreshRefusedError:
        # Returned, not raised: a reuse's revocation of the family must be committed.
        return problem_response(
            401,
            detail="Invalid or expired refresh token.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"', **_NO_STORE},
        )
    response.headers.update(_NO_STORE)
    return new


@router.post("/logout", status_code=204, responses=problem_responses(422), summary="Revoke a login")
async def logout(body: RefreshIn, session: Session) -> None:
    """Revoke the refresh token and every token rotated from the same login."""
    await service.logout(session, body.refresh_token, now=utcnow())

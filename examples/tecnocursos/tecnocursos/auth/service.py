"""The account rules: login with lockout, token issue, refresh rotation and revocation."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise import security_event
from tecnocursos.auth.models import RefreshToken, User
from tecnocursos.auth.passwords import Passwords
from tecnocursos.auth.schemas import TokenOut
from tecnocursos.auth.tokens import TokenService, hash_refresh_token, new_refresh_token
from tecnocursos.core.metrics import measured
from tecnocursos.core.settings import AuthSettings

__all__ = [
    "AccountLockedError",
    "RefreshRefusedError",
    "authenticate",
    "issue_tokens",
    "logout",
    "revoke_family",
    "rotate_refresh_token",
]


class AccountLockedError(Exception):
    """Too many failed logins: the account refuses logins for ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"account locked for {retry_after} s")
        self.retry_after = retry_after


class RefreshRefusedError(Exception):
    """The refresh token is unknown, expired, or was already used (``reuse``)."""

    def __init__(self, *, reuse: bool = False) -> None:
        super().__init__("refresh token reused" if reuse else "refresh token refused")
        self.reuse = reuse


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


@measured("login")
async def authenticate(
    session: AsyncSession,
    passwords: Passwords,
    settings: AuthSettings,
    email: str,
    password: str,
    *,
    now: datetime,
) -> User | None:
    """Return the user whose credentials these are, or ``None``.

    An unknown email costs one hash verification like a known one. A wrong password
    counts a failure (atomically, so parallel guesses all count); the
    ``max_failed_logins``-th failure within ``failure_window`` locks the account for
    ``lockout_duration``. A correct password upgrades an outdated hash and clears the
    failures.

    Raises:
        AccountLockedError: The account is locked, or this failure locked it.
    """
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        await passwords.burn(password)
        security_event("auth.login_failed", reason="unknown_user")
        return None
    if user.locked_until is not None and user.locked_until > now:
        security_event("auth.login_refused_locked", user_id=user.id)
        raise AccountLockedError(_seconds_until(user.locked_until, now))
    valid, new_hash = await passwords.verify_and_update(password, user.password_hash)
    if not valid:
        await _count_failure(session, user, settings, now=now)
        return None
    if new_hash is not None:
        user.password_hash = new_hash
    user.failed_logins = 0
    user.last_failed_login_at = None
    user.locked_until = None
    return user


# --8<-- [start:security-events]
async def _count_failure(
    session: AsyncSession, user: User, settings: AuthSettings, *, now: datetime
) -> None:
    window_start = now - settings.failure_window
    stale = User.last_failed_login_at.is_(None) | (User.last_failed_login_at < window_start)
    await session.execute(
        update(User)
        .where(User.id == user.id)
        .values(
            failed_logins=case((stale, 1), else_=User.failed_logins + 1),
            last_failed_login_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await session.refresh(user, ["failed_logins", "last_failed_login_at"])
    security_event(
        "auth.login_failed", reason="bad_password", user_id=user.id, failures=user.failed_logins
    )
    if user.failed_logins >= settings.max_failed_logins:
        user.locked_until = now + settings.lockout_duration
        user.failed_logins = 0
        security_event(
            "auth.account_locked",
            user_id=user.id,
            seconds=int(settings.lockout_duration.total_seconds()),
        )
        raise AccountLockedError(_seconds_until(user.locked_until, now))


# --8<-- [end:security-events]


async def issue_tokens(
    session: AsyncSession,
    tokens: TokenService,
    settings: AuthSettings,
    user_id: int,
    *,
    now: datetime,
    family_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[TokenOut, RefreshToken]:
    """Issue an access token and a refresh token (a new family unless ``family_id``)."""
    refresh = new_refresh_token()
    row = RefreshToken(
        user_id=user_id,
        family_id=family_id or uuid.uuid4().hex,
        token_hash=hash_refresh_token(refresh),
        expires_at=expires_at or now + settings.refresh_token_ttl,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    body = TokenOut(
        access_token=tokens.create_access_token(user_id, now=now),
        expires_in=int(settings.access_token_ttl.total_seconds()),
        refresh_token=refresh,
    )
    return body, row


@measured("token_refresh")
async def rotate_refresh_token(
    session: AsyncSession,
    tokens: TokenService,
    settings: AuthSettings,
    presented: str,
    *,
    now: datetime,
) -> TokenOut:
    """Exchange a refresh token for new tokens; the one presented is revoked.

    The successor keeps the family's expiry: rotation never extends a login. A token
    that was already rotated or revoked is a sign of theft (RFC 9700 section 4.14.2):
    the whole family is revoked, the legitimate holder included.

    Raises:
        RefreshRefusedError: Unknown, expired or reused token (``reuse=True``).
    """
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(presented))
    )
    if row is None:
        raise RefreshRefusedError
    if row.revoked_at is None and row.expires_at <= now:
        raise RefreshRefusedError
    claimed = cast(
        "CursorResult[Any]",
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    if claimed.rowcount != 1:  # revoked before, or by a concurrent refresh just now
        await revoke_family(session, row.family_id, now=now)
        security_event("auth.refresh_reuse", user_id=row.user_id, family_id=row.family_id)
        raise RefreshRefusedError(reuse=True)
    body, successor = await issue_tokens(
        session,
        tokens,
        settings,
        row.user_id,
        now=now,
        family_id=row.family_id,
        expires_at=row.expires_at,
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id)
        .values(replaced_by=successor.id)
        .execution_options(synchronize_session=False)
    )
    return body


async def revoke_family(session: AsyncSession, family_id: str, *, now: datetime) -> None:
    """Revoke every token of a family that is not revoked yet."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


async def logout(session: AsyncSession, presented: str, *, now: datetime) -> None:
    """Revoke the family of ``presented``; unknown tokens are ignored (idempotent)."""
    family = await session.scalar(
        select(RefreshToken.family_id).where(
            RefreshToken.token_hash == hash_refresh_token(presented)
        )
    )
    if family is not None:
        await revoke_family(session, family, now=now)

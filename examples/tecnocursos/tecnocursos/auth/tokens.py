"""Access tokens (PyJWT, HS256 pinned) and opaque refresh tokens (stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt

from tecnocursos.core.settings import AuthSettings

__all__ = [
    "ACCESS_TOKEN_CLAIMS",
    "AccessClaims",
    "InvalidTokenError",
    "TokenService",
    "hash_refresh_token",
    "new_refresh_token",
]

ACCESS_TOKEN_CLAIMS = ("exp", "iat", "sub", "type", "jti", "iss")
"""Claims an access token must carry; a token without one is refused."""


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired, of the wrong type or algorithm."""


@dataclass(frozen=True)
class AccessClaims:
    """What a valid access token says."""

    user_id: int
    jti: str
    expires_at: datetime


class TokenService:
    """Issues and checks access tokens.

    Args:
        key: The HMAC key.
        settings: The ``auth`` section (algorithm, issuer, lifetime).
    """

    def __init__(self, key: str, settings: AuthSettings) -> None:
        self._key = key
        self._settings = settings

    def create_access_token(self, user_id: int, *, now: datetime | None = None) -> str:
        """Return a signed access token for ``user_id`` (``now`` for tests of expiry)."""
        issued = now or datetime.now(timezone.utc)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "type": "access",
            "iss": self._settings.issuer,
            "iat": issued,
            "exp": issued + self._settings.access_token_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=self._settings.algorithm)

    def decode_access_token(self, token: str) -> AccessClaims:
        """Verify ``token`` and return its claims.

        Only ``auth.algorithm`` is accepted (``none``, RS256 and every other algorithm are
        refused before the signature is looked at), every claim of
        :data:`ACCESS_TOKEN_CLAIMS` is required, and ``type`` must be ``access``.

        Raises:
            InvalidTokenError: For any of those reasons; the message says which, without
                the token.
        """
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._settings.algorithm],
                issuer=self._settings.issuer,
                options={"require": list(ACCESS_TOKEN_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(type(exc).__name__) from None
        subject = claims["sub"]
        if claims["type"] != "access" or not isinstance(subject, str) or not subject.isdigit():
            raise InvalidTokenError("not an access token")
        return AccessClaims(
            user_id=int(subject),
            jti=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(claims["exp"], timezone.utc),
        )


def new_refresh_token() -> str:
    """A fresh refresh token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """The SHA-256 (hex) stored for ``token``.

    A fast hash is enough: the token is 256 random bits, not a guessable password.
    """
    return hashlib.sha256(token.encode()).hexdigest()

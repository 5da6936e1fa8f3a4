"""What clients send to and get from the auth routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

__all__ = ["RefreshIn", "RegisterIn", "TokenOut"]

MAX_PASSWORD_LENGTH = 128
"""Longest password accepted: bounds the hashing work one request can ask for."""


class RegisterIn(BaseModel):
    """A registration."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254, examples=["ana@example.com"])
    password: str = Field(
        min_length=8,
        max_length=MAX_PASSWORD_LENGTH,
        # What the docs and the Postman collection offer must pass the length policy
        # (auth.password_min_length, 12 by default), not just the schema's floor of 8.
        examples=["correct horse battery staple"],
    )


class RefreshIn(BaseModel):
    """A refresh token presented for rotation or logout."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=128)


class TokenOut(BaseModel):
    """The OAuth2 token response (RFC 6749 section 5.1), plus the refresh token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int
    """Seconds until the access token expires."""
    refresh_token: str

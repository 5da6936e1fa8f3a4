"""Password hashing: Argon2id through pwdlib, with verify-and-upgrade.

A hash made with older parameters (or an older algorithm) still verifies; on a
successful login it is replaced by one with the current parameters.
"""

from __future__ import annotations

import secrets

import anyio.to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from tecnocursos.core.metrics import measured
from tecnocursos.core.settings import AuthSettings

__all__ = ["Passwords"]


class Passwords:
    """Hashes and verifies passwords off the event loop (Argon2 is CPU- and memory-bound).

    Args:
        settings: The ``auth`` section (Argon2 time and memory cost).
    """

    def __init__(self, settings: AuthSettings) -> None:
        if settings.argon2_time_cost is None or settings.argon2_memory_cost is None:
            raise ValueError("auth.argon2_time_cost and argon2_memory_cost must be set")
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.argon2_time_cost,
                    memory_cost=settings.argon2_memory_cost,
                ),
            )
        )
        # Unknown emails are verified against this, so they cost as much as known ones.
        self._dummy = self._hash.hash(secrets.token_urlsafe(16))

    @measured("password_hash")
    async def hash(self, password: str) -> str:
        """Hash ``password`` with the current parameters."""
        return await anyio.to_thread.run_sync(self._hash.hash, password)

    @measured("password_verify")
    async def verify_and_update(self, password: str, stored: str) -> tuple[bool, str | None]:
        """Check ``password`` against ``stored``.

        Returns:
            Whether it matches, and a new hash to store when the stored one used older
            parameters (``None`` otherwise).
        """
        return await anyio.to_thread.run_sync(self._hash.verify_and_update, password, stored)

    @measured("password_verify")
    async def burn(self, password: str) -> None:
        """Verify against a dummy hash: the cost of a login for an unknown email."""
        await anyio.to_thread.run_sync(self._hash.verify, password, self._dummy)

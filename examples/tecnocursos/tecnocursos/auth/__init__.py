"""Accounts: registration, login, JWT access tokens, rotating refresh tokens, roles."""

__all__: list[str] = []

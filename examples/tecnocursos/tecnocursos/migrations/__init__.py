"""Alembic migrations (async): ``alembic upgrade head`` beside ``alembic.ini``."""

__all__: list[str] = []

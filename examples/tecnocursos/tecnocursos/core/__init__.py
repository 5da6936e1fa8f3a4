"""What every domain shares: settings, the database and the app factory."""

__all__: list[str] = []

"""Users: the caller's own account, and the admin's list of accounts."""

__all__: list[str] = []

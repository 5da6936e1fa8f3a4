"""The error raised when a module needs an optional extra that is not installed."""

from __future__ import annotations

__all__ = ["MissingExtraError"]


class MissingExtraError(ImportError):
    """An optional dependency of fastapi-enterprise is not installed.

    The message names the exact ``pip install`` command that fixes it.
    """

    def __init__(self, extra: str, *, module: str, missing: str) -> None:
        self.extra = extra
        super().__init__(
            f"{module} needs the '{missing}' package, which is not installed. "
            f"Install it with: pip install 'fastapi-enterprise[{extra}]'",
            name=missing,
        )

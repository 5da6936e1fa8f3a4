"""Users as clients see them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from tecnocursos.auth.models import Role

__all__ = ["UserOut"]


class UserOut(BaseModel):
    """An account, without its password hash or lockout state."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    role: Role
    created_at: datetime

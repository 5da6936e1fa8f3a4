"""Load the demo data: run the migrations, then add whatever is missing.

Everything goes through the app's own code: the ``Database`` that ``create_app`` builds,
``Passwords`` (Argon2 with the environment's parameters), ``create_project`` and
``create_scene`` (versions, timestamps, positions ``0 .. n-1``). Nothing that exists is
changed: running it twice changes nothing, and a partial earlier run (or deleted demo
rows) is completed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import tecnocursos.migrations
from fastapi_enterprise import Environment
from tecnocursos.auth.models import User
from tecnocursos.auth.passwords import Passwords
from tecnocursos.core.database import create_database
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.demo.data import ACCOUNTS, COURSE, COURSE_OWNER, SCENES, DemoAccount
from tecnocursos.projects.models import Project
from tecnocursos.projects.service import create_project, writable_project
from tecnocursos.scenes.models import Scene
from tecnocursos.scenes.service import create_scene

__all__ = [
    "AccountResult",
    "DemoRefusedError",
    "DemoReport",
    "check_environment",
    "load_demo_data",
    "migrate",
]

REFUSED_ENVIRONMENTS = (Environment.STAGING, Environment.PRODUCTION)
"""Where demo accounts never belong: their passwords are known to whoever ran the demo."""


class DemoRefusedError(RuntimeError):
    """The settings are a staging or production environment's: no demo data there."""


@dataclass(frozen=True)
class AccountResult:
    """One demo account after the load."""

    email: str
    role: str
    created: bool
    """Created by this run (with the password given); otherwise it was there already."""
    password_works: bool
    """Whether the password given logs this account in (always for a new account)."""


@dataclass(frozen=True)
class DemoReport:
    """What the load found and added."""

    accounts: list[AccountResult]
    project_id: int
    project_created: bool
    scenes_created: int
    scene_count: int

    @property
    def changed(self) -> bool:
        """Whether this run added anything."""
        return (
            self.project_created
            or self.scenes_created > 0
            or any(account.created for account in self.accounts)
        )


def check_environment(settings: TecnoCursosSettings) -> None:
    """Refuse staging and production settings.

    Raises:
        DemoRefusedError: ``settings.environment`` is staging or production.
    """
    if settings.environment in REFUSED_ENVIRONMENTS:
        raise DemoRefusedError(
            f"refusing to load demo accounts in {settings.environment.value}: "
            "they are for development and test databases only"
        )


def migrate(settings: TecnoCursosSettings) -> None:
    """``alembic upgrade head`` on the database of ``settings``.

    The migrations are found inside the package (so this also works from a wheel) and run
    through ``tecnocursos/migrations/env.py`` with these settings, as the tests do. Call it
    outside an event loop: the environment runs its own.
    """
    config = Config()
    config.set_main_option("script_location", str(Path(tecnocursos.migrations.__file__).parent))
    config.attributes["settings"] = settings
    command.upgrade(config, "head")


async def load_demo_data(settings: TecnoCursosSettings, password: str) -> DemoReport:
    """Add the demo accounts, the sample course and its scenes, where missing.

    Args:
        settings: The app's settings (their database must be migrated: :func:`migrate`).
        password: The password of every account this run creates. Accounts that exist
            keep theirs; the report says whether this one works for them.

    Raises:
        DemoRefusedError: The settings are staging or production ones.
    """
    check_environment(settings)
    passwords = Passwords(settings.auth)
    database = create_database(settings)
    async with database, database.transaction() as session:
        users: dict[str, User] = {}
        accounts: list[AccountResult] = []
        for account in ACCOUNTS:
            users[account.email], result = await _ensure_account(
                session, passwords, account, password
            )
            accounts.append(result)
        owner = users[COURSE_OWNER]
        project = await session.scalar(
            select(Project)
            .where(Project.owner_id == owner.id, Project.title == COURSE.title)
            .order_by(Project.id)
            .limit(1)
        )
        project_created = project is None
        if project is None:
            project = await create_project(session, owner, COURSE)
        scenes_created = await _ensure_scenes(session, owner, project.id)
        scene_count = await session.scalar(
            select(func.count()).select_from(Scene).where(Scene.project_id == project.id)
        )
        return DemoReport(
            accounts=accounts,
            project_id=project.id,
            project_created=project_created,
            scenes_created=scenes_created,
            scene_count=scene_count or 0,
        )


async def _ensure_account(
    session: AsyncSession, passwords: Passwords, account: DemoAccount, password: str
) -> tuple[User, AccountResult]:
    user = await session.scalar(select(User).where(User.email == account.email))
    if user is None:
        hashed = await passwords.hash(password)
        user = User(email=account.email, password_hash=hashed, role=account.role)
        session.add(user)
        await session.flush()
        return user, AccountResult(account.email, account.role.value, True, True)
    # Only reported, never changed: an outdated hash is upgraded at the account's next login.
    works, _ = await passwords.verify_and_update(password, user.password_hash)
    return user, AccountResult(account.email, user.role.value, False, works)


# --8<-- [start:ensure-scenes]
async def _ensure_scenes(session: AsyncSession, owner: User, project_id: int) -> int:
    """Append the sample scenes the project lacks (by title); how many were added."""
    await writable_project(session, owner, project_id)  # locks the row, as the API does
    existing = set(await session.scalars(select(Scene.title).where(Scene.project_id == project_id)))
    missing = [scene for scene in SCENES if scene.title not in existing]
    for scene in missing:
        await create_scene(session, project_id, scene)
    return len(missing)


# --8<-- [end:ensure-scenes]

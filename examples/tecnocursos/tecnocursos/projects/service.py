"""Who may see and change a project, and the queries behind ``/projects``.

Reading: the owner, admins, and, for a public project, every signed-in user. Anyone
else is told the project does not exist (404, never 403): an id that answers 403 would
confirm that someone's private project is there.

Writing: the owner and admins. A public project someone else owns is visible, so refusing
a write on it is a plain 403.
"""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise.database import lock_for_update
from tecnocursos.auth.models import Role, User, utcnow
from tecnocursos.core.database import apply_patch
from tecnocursos.projects.models import Project, Visibility
from tecnocursos.projects.schemas import ProjectIn, ProjectPatch

__all__ = [
    "can_read",
    "can_write",
    "create_project",
    "readable_project",
    "update_project",
    "visible_projects",
    "writable_project",
]


def can_read(user: User, project: Project) -> bool:
    """Whether ``user`` may see ``project``."""
    return (
        user.role is Role.ADMIN
        or project.owner_id == user.id
        or project.visibility is Visibility.PUBLIC
    )


def can_write(user: User, project: Project) -> bool:
    """Whether ``user`` may change ``project`` (and its scenes)."""
    return user.role is Role.ADMIN or project.owner_id == user.id


async def readable_project(
    session: AsyncSession, user: User, project_id: int, *, lock: bool = False
) -> Project:
    """The project, if ``user`` may see it.

    Args:
        session: The request's session.
        user: The caller.
        project_id: The project asked for.
        lock: Lock the row until the transaction ends (``SELECT ... FOR UPDATE``; on
            SQLite the database's write lock), so writes to the project and its scenes'
            positions happen one at a time.

    Raises:
        HTTPException: 404 when it does not exist or the caller may not see it.
    """
    # --8<-- [start:lock]
    statement = select(Project).where(Project.id == project_id)
    if lock:
        statement = await lock_for_update(session, statement)
        statement = statement.execution_options(populate_existing=True)
    project = await session.scalar(statement)
    # --8<-- [end:lock]
    if project is None or not can_read(user, project):
        raise HTTPException(404, "Project not found.")
    return project


async def writable_project(session: AsyncSession, user: User, project_id: int) -> Project:
    """The project, locked, if ``user`` may change it.

    Raises:
        HTTPException: 404 when the caller may not see it, 403 when they may see it but
            not change it.
    """
    project = await readable_project(session, user, project_id, lock=True)
    if not can_write(user, project):
        raise HTTPException(403, "Only the project's owner or an admin may change it.")
    return project


def visible_projects(user: User) -> Select[Project]:
    """The projects ``user`` may list, oldest first: their own and public ones (admin: all)."""
    statement = select(Project).order_by(Project.id)
    if user.role is not Role.ADMIN:
        statement = statement.where(
            or_(Project.owner_id == user.id, Project.visibility == Visibility.PUBLIC)
        )
    return statement


async def create_project(session: AsyncSession, owner: User, body: ProjectIn) -> Project:
    """Add a project owned by ``owner``."""
    now = utcnow()
    project = Project(
        owner_id=owner.id,
        title=body.title,
        description=body.description,
        visibility=body.visibility,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(project)
    await session.flush()
    return project


def update_project(project: Project, body: ProjectPatch) -> None:
    """Apply the fields ``body`` sets; a change bumps the version (and so the ETag)."""
    apply_patch(project, body, now=utcnow())

"""``/projects``: course videos; instructors and admins create them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from sqlalchemy import delete
from starlette.requests import Request

from fastapi_enterprise import (
    Page,
    PaginatedResponse,
    check_if_match,
    entity_tag,
    not_modified,
    problem_responses,
    set_etag,
)
from fastapi_enterprise.pagination import paginate_select_async
from tecnocursos.auth.dependencies import CurrentUser, require_role
from tecnocursos.auth.models import Role, User
from tecnocursos.core.database import Session
from tecnocursos.projects import service
from tecnocursos.projects.models import Project
from tecnocursos.projects.schemas import ProjectIn, ProjectOut, ProjectPatch
from tecnocursos.scenes.models import Scene

__all__ = ["project_etag", "router"]

router = APIRouter(prefix="/projects", tags=["projects"])

_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (``If-None-Match``)"}
}

Author = Annotated[User, require_role(Role.INSTRUCTOR, Role.ADMIN)]


def project_etag(project: Project) -> str:
    """The ETag of ``project``'s representation."""
    return entity_tag("project", project.id, f"v{project.version}")


@router.post("", status_code=201, responses=problem_responses(401, 403, 422))
async def create_project(
    body: ProjectIn, user: Author, session: Session, response: Response
) -> ProjectOut:
    """Create a project owned by the caller (instructors and admins)."""
    project = await service.create_project(session, user, body)
    set_etag(response, project_etag(project))
    response.headers["Location"] = f"/projects/{project.id}"
    return ProjectOut.model_validate(project)


@router.get("", responses=problem_responses(401, 422))
async def list_projects(
    user: CurrentUser, page: Page, request: Request, session: Session
) -> PaginatedResponse[ProjectOut]:
    """The caller's projects and the public ones, oldest first (admins: every project)."""
    return await paginate_select_async(
        session, service.visible_projects(user), page, request, transform=ProjectOut.model_validate
    )


@router.get(
    "/{project_id}",
    response_model=ProjectOut,
    responses=_NOT_MODIFIED | problem_responses(401, 404),
)
async def read_project(
    project_id: int, user: CurrentUser, session: Session, request: Request, response: Response
) -> ProjectOut | Response:
    """One project; ``If-None-Match`` with its ETag answers 304."""
    project = await service.readable_project(session, user, project_id)
    etag = project_etag(project)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    set_etag(response, etag)
    return ProjectOut.model_validate(project)


@router.patch("/{project_id}", responses=problem_responses(401, 403, 404, 412, 422))
async def update_project(
    project_id: int,
    body: ProjectPatch,
    user: CurrentUser,
    session: Session,
    request: Request,
    response: Response,
) -> ProjectOut:
    """Change a project (owner or admin); a stale ``If-Match`` answers 412."""
    project = await service.writable_project(session, user, project_id)
    check_if_match(request, project_etag(project))
    service.update_project(project, body)
    await session.flush()
    set_etag(response, project_etag(project))
    return ProjectOut.model_validate(project)


@router.delete("/{project_id}", status_code=204, responses=problem_responses(401, 403, 404, 412))
async def delete_project(
    project_id: int, user: CurrentUser, session: Session, request: Request
) -> Response:
    """Delete a project and its scenes (owner or admin); a stale ``If-Match`` answers 412."""
    project = await service.writable_project(session, user, project_id)
    check_if_match(request, project_etag(project))
    # Explicitly: SQLite enforces ON DELETE CASCADE only with PRAGMA foreign_keys on.
    await session.execute(delete(Scene).where(Scene.project_id == project.id))
    await session.delete(project)
    await session.flush()
    return Response(status_code=204)

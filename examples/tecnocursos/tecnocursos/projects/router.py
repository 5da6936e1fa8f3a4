"""``/projects``: course videos; instructors and admins create them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import delete
from starlette.background import BackgroundTask
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
from tecnocursos.cache import get_cache
from tecnocursos.core.database import IdPath, Session
from tecnocursos.media.storage import Storage
from tecnocursos.projects import service
from tecnocursos.projects.models import Project, Visibility
from tecnocursos.projects.schemas import ProjectIn, ProjectOut, ProjectPatch
from tecnocursos.scenes.models import Scene
from tecnocursos.videos.service import delete_project_jobs

__all__ = ["PROJECTS_SCOPE", "project_etag", "project_scope", "router"]

router = APIRouter(prefix="/projects", tags=["projects"])

_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (``If-None-Match``)"}
}

Author = Annotated[User, require_role(Role.INSTRUCTOR, Role.ADMIN)]


PROJECTS_SCOPE = "projects"
"""Cache scope of every project list: any project write may change any viewer's list."""


def project_scope(project_id: int) -> str:
    """Cache scope of one project's detail and scene lists."""
    return f"project:{project_id}"


def project_etag(project: Project) -> str:
    """The ETag of ``project``'s representation."""
    return _etag(project.id, project.version)


def _etag(project_id: int, version: int) -> str:
    return entity_tag("project", project_id, f"v{version}")


def _viewer(user: User) -> str:
    # What a list's answer depends on: admins all see the same; everyone else their own.
    return "admin" if user.role is Role.ADMIN else f"user-{user.id}"


@router.post("", status_code=201, responses=problem_responses(401, 403, 422))
async def create_project(
    body: ProjectIn, user: Author, session: Session, request: Request, response: Response
) -> ProjectOut:
    """Create a project owned by the caller (instructors and admins)."""
    project = await service.create_project(session, user, body)
    out = ProjectOut.model_validate(project)
    set_etag(response, project_etag(project))
    await session.commit()  # committed before the cache forgets: no read refills it stale
    await get_cache(request).bump(PROJECTS_SCOPE)
    response.headers["Location"] = f"/projects/{project.id}"
    return out


# --8<-- [start:list-projects]
@router.get("", responses=problem_responses(401, 422))
async def list_projects(
    user: CurrentUser, page: Page, request: Request, session: Session
) -> PaginatedResponse[ProjectOut]:
    """The caller's projects and the public ones, oldest first (admins: every project)."""
    cache = get_cache(request)
    cacheable = page.page <= cache.settings.max_cached_page
    key = None
    if cacheable:
        key = await cache.key("project_list", (PROJECTS_SCOPE,), _viewer(user), request.url)
        cached = await cache.get("project_list", key)
        if cached is not None:
            return PaginatedResponse[ProjectOut].model_validate(cached)
    result = await paginate_select_async(
        session, service.visible_projects(user), page, request, transform=ProjectOut.model_validate
    )
    if cacheable:
        await cache.set(key, result.model_dump(mode="json"), cache.settings.project_list_ttl)
    return result


# --8<-- [end:list-projects]


# --8<-- [start:read-project]
@router.get(
    "/{project_id}",
    response_model=ProjectOut,
    responses=_NOT_MODIFIED | problem_responses(401, 404),
)
async def read_project(
    project_id: IdPath, user: CurrentUser, session: Session, request: Request, response: Response
) -> ProjectOut | Response:
    """One project; ``If-None-Match`` with its ETag answers 304."""
    cache = get_cache(request)
    key = await cache.key("project", (project_scope(project_id),), project_id)
    entry = await cache.get("project", key)
    if entry is None:
        project = await service.readable_project(session, user, project_id)
        entry = {
            "version": project.version,
            "body": ProjectOut.model_validate(project).model_dump(mode="json"),
        }
        await cache.set(key, entry, cache.settings.project_ttl)
    out = ProjectOut.model_validate(entry["body"])
    # The entry is the project's, not the viewer's: who may see it is checked on every hit.
    visible = (
        user.role is Role.ADMIN or out.owner_id == user.id or out.visibility is Visibility.PUBLIC
    )
    if not visible:
        raise HTTPException(404, "Project not found.")
    etag = _etag(project_id, entry["version"])
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    set_etag(response, etag)
    return out


# --8<-- [end:read-project]


@router.patch("/{project_id}", responses=problem_responses(401, 403, 404, 412, 422))
async def update_project(
    project_id: IdPath,
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
    out = ProjectOut.model_validate(project)
    set_etag(response, project_etag(project))
    await session.commit()
    await get_cache(request).bump(PROJECTS_SCOPE, project_scope(project_id))
    return out


@router.delete("/{project_id}", status_code=204, responses=problem_responses(401, 403, 404, 412))
async def delete_project(
    project_id: IdPath, user: CurrentUser, session: Session, request: Request
) -> Response:
    """Delete a project, its scenes and videos (owner or admin); a stale ``If-Match``: 412."""
    project = await service.writable_project(session, user, project_id)
    check_if_match(request, project_etag(project))
    # Explicitly: SQLite enforces ON DELETE CASCADE only with PRAGMA foreign_keys on.
    await session.execute(delete(Scene).where(Scene.project_id == project.id))
    videos = await delete_project_jobs(session, project.id)  # a running one stops
    await session.delete(project)
    await session.commit()
    await get_cache(request).bump(PROJECTS_SCOPE, project_scope(project_id))
    storage: Storage = request.app.state.storage
    return Response(status_code=204, background=BackgroundTask(_delete_files, storage, videos))


async def _delete_files(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        await storage.delete(key)

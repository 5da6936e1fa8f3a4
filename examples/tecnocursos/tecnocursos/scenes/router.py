"""``/projects/{project_id}/scenes``: a project's scenes, with its visibility and owners.

Whoever may not see the project gets 404 for its scenes too; whoever may see it but not
change it gets 403 on writes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession
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
from tecnocursos.auth.dependencies import CurrentUser
from tecnocursos.cache import get_cache
from tecnocursos.core.database import NO_NUL, IdPath, Session
from tecnocursos.projects.router import project_scope
from tecnocursos.projects.service import readable_project, writable_project
from tecnocursos.scenes import service
from tecnocursos.scenes.models import Scene
from tecnocursos.scenes.schemas import ReorderIn, SceneIn, SceneOut, ScenePatch, SceneSort

__all__ = ["router", "scene_etag"]

router = APIRouter(prefix="/projects/{project_id}/scenes", tags=["scenes"])

_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (``If-None-Match``)"}
}


async def _commit_and_forget(session: AsyncSession, request: Request, project_id: int) -> None:
    # Commit first: a read between the bump and a later commit would cache the old rows.
    await session.commit()
    await get_cache(request).bump(project_scope(project_id))


def scene_etag(scene: Scene) -> str:
    """The ETag of ``scene``'s representation."""
    return entity_tag("scene", scene.id, f"v{scene.version}")


@router.post("", status_code=201, responses=problem_responses(401, 403, 404, 422))
async def create_scene(
    project_id: IdPath,
    body: SceneIn,
    user: CurrentUser,
    session: Session,
    request: Request,
    response: Response,
) -> SceneOut:
    """Add a scene: last, or at ``position`` (the scenes from there on move down one)."""
    project = await writable_project(session, user, project_id)
    await service.check_image(session, project.owner_id, body.image_id)
    scene = await service.create_scene(session, project_id, body)
    out = SceneOut.model_validate(scene)
    set_etag(response, scene_etag(scene))
    await _commit_and_forget(session, request, project_id)
    response.headers["Location"] = f"/projects/{project_id}/scenes/{scene.id}"
    return out


@router.get("", responses=problem_responses(401, 404, 422))
async def list_scenes(
    project_id: IdPath,
    user: CurrentUser,
    page: Page,
    request: Request,
    session: Session,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="Text in the title or the script"),
    ] = None,
    sort: Annotated[SceneSort, Query(description="Order; ``-`` for descending")] = "position",
) -> PaginatedResponse[SceneOut]:
    """The project's scenes, optionally searched (any case, ``%`` and ``_`` literal)."""
    # Who may see the project is read from the database on every request, hit or not.
    await readable_project(session, user, project_id)
    cache = get_cache(request)
    cacheable = page.page <= cache.settings.max_cached_page
    key = None
    if cacheable:
        key = await cache.key("scene_list", (project_scope(project_id),), request.url)
        cached = await cache.get("scene_list", key)
        if cached is not None:
            return PaginatedResponse[SceneOut].model_validate(cached)
    statement = service.scene_query(project_id, q, sort)
    result = await paginate_select_async(
        session, statement, page, request, transform=SceneOut.model_validate
    )
    if cacheable:
        await cache.set(key, result.model_dump(mode="json"), cache.settings.scene_list_ttl)
    return result


@router.put("/order", responses=problem_responses(401, 403, 404, 409, 422))
async def reorder_scenes(
    project_id: IdPath, body: ReorderIn, user: CurrentUser, session: Session, request: Request
) -> list[SceneOut]:
    """Put the scenes in the order of ``scene_ids`` (every scene of the project, once)."""
    await writable_project(session, user, project_id)
    scenes = await service.reorder_scenes(session, project_id, body.scene_ids)
    out = [SceneOut.model_validate(scene) for scene in scenes]
    await _commit_and_forget(session, request, project_id)
    return out


@router.get(
    "/{scene_id}",
    response_model=SceneOut,
    responses=_NOT_MODIFIED | problem_responses(401, 404),
)
async def read_scene(
    project_id: IdPath,
    scene_id: IdPath,
    user: CurrentUser,
    session: Session,
    request: Request,
    response: Response,
) -> SceneOut | Response:
    """One scene; ``If-None-Match`` with its ETag answers 304."""
    await readable_project(session, user, project_id)
    scene = await service.find_scene(session, project_id, scene_id)
    etag = scene_etag(scene)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    set_etag(response, etag)
    return SceneOut.model_validate(scene)


@router.patch("/{scene_id}", responses=problem_responses(401, 403, 404, 412, 422))
async def update_scene(
    project_id: IdPath,
    scene_id: IdPath,
    body: ScenePatch,
    user: CurrentUser,
    session: Session,
    request: Request,
    response: Response,
) -> SceneOut:
    """Change a scene's title, script, duration or image; a stale ``If-Match`` answers 412."""
    project = await writable_project(session, user, project_id)
    scene = await service.find_scene(session, project_id, scene_id, lock=True)
    check_if_match(request, scene_etag(scene))
    await service.check_image(session, project.owner_id, body.image_id)
    service.update_scene(scene, body)
    await session.flush()
    out = SceneOut.model_validate(scene)
    set_etag(response, scene_etag(scene))
    await _commit_and_forget(session, request, project_id)
    return out


@router.delete("/{scene_id}", status_code=204, responses=problem_responses(401, 403, 404, 412))
async def delete_scene(
    project_id: IdPath, scene_id: IdPath, user: CurrentUser, session: Session, request: Request
) -> Response:
    """Delete a scene; the later ones move up one. A stale ``If-Match`` answers 412."""
    await writable_project(session, user, project_id)
    scene = await service.find_scene(session, project_id, scene_id, lock=True)
    check_if_match(request, scene_etag(scene))
    await service.delete_scene(session, scene)
    await _commit_and_forget(session, request, project_id)
    return Response(status_code=204)

"""Scene queries and the position bookkeeping.

Positions are always ``0 .. n-1``, unique per project. Every change to them (create,
delete, reorder) first locks the project row (``SELECT ... FOR UPDATE``), so they run one
at a time per project, then reads the scenes with a locking read too: on MariaDB's
REPEATABLE READ a plain read would see the snapshot taken before the lock was granted.

Neither MariaDB/MySQL nor a non-deferrable PostgreSQL constraint waits for the end of an
``UPDATE`` to check uniqueness: both check row by row, so ``position = position + 1``
can collide with the next row. Every move therefore goes in two steps: the affected rows
go to a range above every current position (``offset``), then to their final values,
which are all below it.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from sqlalchemy import Select, UnaryExpression, case, delete, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise.database import lock_for_update
from tecnocursos.auth.models import utcnow
from tecnocursos.core.database import UTCDateTime, apply_patch
from tecnocursos.core.metrics import measured
from tecnocursos.media.models import MediaFile, MediaKind
from tecnocursos.scenes.models import Scene
from tecnocursos.scenes.schemas import SceneIn, ScenePatch, SceneSort

__all__ = [
    "LIKE_ESCAPE",
    "create_scene",
    "delete_scene",
    "find_scene",
    "like_pattern",
    "reorder_scenes",
    "scene_query",
    "update_scene",
]

LIKE_ESCAPE = "!"
"""The LIKE escape character. Not a backslash: MySQL reads ``\\`` inside string literals
as an escape of its own, so ``ESCAPE '\\'`` means different things on different backends."""

_SORTS: dict[str, UnaryExpression[Any]] = {
    "position": Scene.position.asc(),
    "-position": Scene.position.desc(),
    "title": Scene.title.asc(),
    "-title": Scene.title.desc(),
    "created_at": Scene.created_at.asc(),
    "-created_at": Scene.created_at.desc(),
}


def like_pattern(text: str) -> str:
    """A ``LIKE`` pattern matching ``text`` anywhere, its ``%``, ``_`` and ``!`` literal."""
    escaped = (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", f"{LIKE_ESCAPE}%")
        .replace("_", f"{LIKE_ESCAPE}_")
    )
    return f"%{escaped}%"


def scene_query(project_id: int, q: str | None, sort: SceneSort) -> Select[Scene]:
    """The project's scenes, filtered by ``q`` (title or script, any case), in ``sort`` order."""
    statement = select(Scene).where(Scene.project_id == project_id)
    if q:
        pattern = like_pattern(q)
        statement = statement.where(
            or_(
                Scene.title.ilike(pattern, escape=LIKE_ESCAPE),
                Scene.script.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    return statement.order_by(_SORTS[sort], Scene.id)  # the id makes pages stable


async def find_scene(
    session: AsyncSession, project_id: int, scene_id: int, *, lock: bool = False
) -> Scene:
    """The scene ``scene_id`` of project ``project_id``.

    Raises:
        HTTPException: 404 when the project has no such scene.
    """
    statement = select(Scene).where(Scene.id == scene_id, Scene.project_id == project_id)
    if lock:
        statement = await lock_for_update(session, statement)
        statement = statement.execution_options(populate_existing=True)
    scene = await session.scalar(statement)
    if scene is None:
        raise HTTPException(404, "Scene not found.")
    return scene


async def _locked_positions(session: AsyncSession, project_id: int) -> dict[int, int]:
    """Scene id to position, read with a lock (the project row is already locked)."""
    rows = await session.execute(
        select(Scene.id, Scene.position).where(Scene.project_id == project_id).with_for_update()
    )
    return dict(rows.all())


async def _shift(
    session: AsyncSession, project_id: int, positions: dict[int, int], start: int, delta: int
) -> None:
    """Move the scenes at ``start`` and after by ``delta`` (+1 or -1), in two steps."""
    offset = max(positions.values(), default=0) + 2  # above every position, before and after
    scenes = update(Scene).where(Scene.project_id == project_id)
    scenes = scenes.execution_options(synchronize_session=False)
    await session.execute(
        scenes.where(Scene.position >= start).values(position=Scene.position + offset)
    )
    await session.execute(
        scenes.where(Scene.position >= offset).values(
            position=Scene.position - offset + delta,
            version=Scene.version + 1,
            updated_at=utcnow(),
        )
    )


async def check_image(session: AsyncSession, owner_id: int, image_id: int | None) -> None:
    """Refuse an ``image_id`` that is not an image the project's owner uploaded.

    Raises:
        HTTPException: 422 when there is no such image of the owner's (one of someone
            else's is refused the same way: its existence is not disclosed).
    """
    if image_id is None:
        return
    kind = await session.scalar(
        select(MediaFile.kind).where(MediaFile.id == image_id, MediaFile.owner_id == owner_id)
    )
    if kind is not MediaKind.IMAGE:
        raise HTTPException(422, "image_id is not an image uploaded by the project's owner.")


async def create_scene(session: AsyncSession, project_id: int, body: SceneIn) -> Scene:
    """Add a scene last, or at ``body.position`` moving the later ones down.

    The caller has locked the project row and checked ``body.image_id``.
    """
    positions = await _locked_positions(session, project_id)
    position = len(positions)
    if body.position is not None and body.position < position:
        position = body.position
        await _shift(session, project_id, positions, position, +1)
    now = utcnow()
    scene = Scene(
        project_id=project_id,
        position=position,
        title=body.title,
        script=body.script,
        duration_seconds=body.duration_seconds,
        image_id=body.image_id,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(scene)
    await session.flush()
    return scene


def update_scene(scene: Scene, body: ScenePatch) -> None:
    """Apply the fields ``body`` sets; a change bumps the version (and so the ETag)."""
    apply_patch(scene, body, now=utcnow())


async def delete_scene(session: AsyncSession, scene: Scene) -> None:
    """Delete ``scene`` and close the gap it leaves. The caller has locked the project row."""
    positions = await _locked_positions(session, scene.project_id)
    await session.execute(delete(Scene).where(Scene.id == scene.id))
    session.expunge(scene)
    del positions[scene.id]
    await _shift(session, scene.project_id, positions, scene.position + 1, -1)


@measured("scene_reorder")
async def reorder_scenes(
    session: AsyncSession, project_id: int, scene_ids: list[int]
) -> list[Scene]:
    """Give the project's scenes the positions of ``scene_ids``, in one transaction.

    The caller has locked the project row.

    Raises:
        HTTPException: 409 when ``scene_ids`` is not exactly the project's scene ids.
    """
    positions = await _locked_positions(session, project_id)
    if set(scene_ids) != set(positions) or len(scene_ids) != len(positions):
        raise HTTPException(
            409, "The list must name every scene of the project exactly once, and no other."
        )
    if scene_ids and [positions[scene_id] for scene_id in scene_ids] != list(range(len(scene_ids))):
        offset = max(positions.values()) + 2
        scenes = update(Scene).where(Scene.project_id == project_id)
        scenes = scenes.execution_options(synchronize_session=False)
        await session.execute(scenes.values(position=Scene.position + offset))
        moved = {scene_id: index for index, scene_id in enumerate(scene_ids)}
        changed = Scene.id.in_([i for i, index in moved.items() if positions[i] != index])
        now = literal(utcnow(), UTCDateTime())
        await session.execute(
            scenes.values(
                position=case(moved, value=Scene.id),
                version=case((changed, Scene.version + 1), else_=Scene.version),
                updated_at=case((changed, now), else_=Scene.updated_at),
            )
        )
    result = await session.scalars(
        select(Scene)
        .where(Scene.project_id == project_id)
        .order_by(Scene.position)
        .execution_options(populate_existing=True)
    )
    return list(result)

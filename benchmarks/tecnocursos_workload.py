"""The TecnoCursos benchmark's data and workload: the seeded rows and the request plan.

``seed()`` migrates an empty database with the project's Alembic migrations and fills it
through the app's own models and password hasher; ``make_plan()`` draws a deterministic
sequence of requests from it (logins, reads with a Zipf-skewed popularity over projects,
writes), which ``write_plan()`` saves for ``benchmarks/tecnocursos.lua`` to play.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from alembic import command
from alembic.config import Config

from fastapi_enterprise.database import Database
from tecnocursos.auth.models import Role, User
from tecnocursos.auth.passwords import Passwords
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.projects.models import Project, Visibility
from tecnocursos.scenes.models import Scene

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tecnocursos"

PASSWORD = "bench correct horse battery staple"
"""Every seeded user's password (not a secret: the users live as long as the run)."""

PUBLIC_SHARE = 0.7
"""Share of the projects that are public; the rest only their owner reads."""

ZIPF_EXPONENT = 1.0
"""Popularity of the project at rank ``r`` is proportional to ``1 / r ** ZIPF_EXPONENT``."""

MIX: dict[str, int] = {
    "login": 1,
    "list_projects": 12,
    "read_project": 50,
    "list_scenes": 30,
    "patch_scene": 4,
    "post_scene": 2,
    "patch_project": 1,
}
"""Percent of the requests of each kind: 1% logins, 92% reads, 7% writes."""

EXPECTED_STATUS = {"post_scene": 201}
"""The status each kind answers when it works; 200 when not listed."""

SCENE_PAGES = ((1, 6), (2, 3), (3, 1))
"""The ``GET /projects/{id}/scenes`` page asked for, and its weight."""

PROJECT_PAGES = ((1, 9), (2, 1))
"""The ``GET /projects`` page asked for, and its weight."""

MARK = "#N#"
"""Replaced by a per-request value in bodies (see tecnocursos.lua): every write changes."""

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
SCRIPT = "Narration of the scene, a few sentences long, as a course script would be. " * 4


@dataclass(frozen=True)
class Shape:
    """How much to seed."""

    instructors: int
    students: int
    projects_per_instructor: int
    scenes_per_project: int

    @property
    def users(self) -> int:
        """Every seeded user: instructors first, then students."""
        return self.instructors + self.students


FULL = Shape(instructors=20, students=100, projects_per_instructor=10, scenes_per_project=45)
SMOKE = Shape(instructors=3, students=6, projects_per_instructor=3, scenes_per_project=25)


@dataclass(frozen=True)
class SeededProject:
    """A seeded project: its id, its owner (a user's index), visibility and scene ids."""

    id: int
    owner: int
    public: bool
    scene_ids: tuple[int, ...]


@dataclass(frozen=True)
class Dataset:
    """What ``seed()`` put in the database; users are indexes into ``emails``."""

    emails: tuple[str, ...]
    projects: tuple[SeededProject, ...]

    def visible_projects(self, user: int) -> int:
        """How many projects ``GET /projects`` shows ``user``: public ones and their own."""
        return sum(1 for project in self.projects if project.public or project.owner == user)


@dataclass(frozen=True)
class Call:
    """One request of the plan; ``user`` is whose token it carries (``None``: none)."""

    kind: str
    method: str
    path: str
    user: int | None
    content_type: str | None = None
    body: str = ""
    project: SeededProject | None = None


def email(user: int) -> str:
    """The seeded email of user number ``user``."""
    return f"user{user}@bench.tecnocursos.example"


def migrate(settings: TecnoCursosSettings) -> None:
    """Bring the database of ``settings`` to the head revision with the project's Alembic."""
    config = Config(str(EXAMPLE / "alembic.ini"))
    config.attributes["settings"] = settings  # env.py migrates this database, not TC_*'s
    command.upgrade(config, "head")


def seed(settings: TecnoCursosSettings, shape: Shape, seed: int) -> Dataset:
    """Migrate the database of ``settings`` and fill it; ``seed`` draws the visibilities."""
    migrate(settings)
    return asyncio.run(_seed(settings, shape, random.Random(seed)))


async def _seed(settings: TecnoCursosSettings, shape: Shape, rng: random.Random) -> Dataset:
    # One hash for every user, made with the app's Argon2 settings: seeding stays fast,
    # and each login still verifies it at the configured cost.
    password_hash = await Passwords(settings.auth).hash(PASSWORD)
    database = Database(settings.database, name="bench-seed")
    async with database, database.transaction() as session:
        users = [
            User(
                email=email(number),
                password_hash=password_hash,
                role=Role.INSTRUCTOR if number < shape.instructors else Role.STUDENT,
            )
            for number in range(shape.users)
        ]
        session.add_all(users)
        await session.flush()
        projects = [
            Project(
                owner_id=users[owner].id,
                title=f"Course {owner}-{number}",
                description="A seeded course of the benchmark.",
                visibility=(
                    Visibility.PUBLIC if rng.random() < PUBLIC_SHARE else Visibility.PRIVATE
                ),
            )
            for owner in range(shape.instructors)
            for number in range(shape.projects_per_instructor)
        ]
        session.add_all(projects)
        await session.flush()
        scenes = [
            Scene(
                project_id=project.id,
                position=position,
                title=f"Scene {position + 1}",
                script=SCRIPT,
                duration_seconds=30,
            )
            for project in projects
            for position in range(shape.scenes_per_project)
        ]
        session.add_all(scenes)
        await session.flush()
        owners = {user.id: number for number, user in enumerate(users)}
        scene_ids: dict[int, list[int]] = {project.id: [] for project in projects}
        for scene in scenes:
            scene_ids[scene.project_id].append(scene.id)
        return Dataset(
            emails=tuple(user.email for user in users),
            projects=tuple(
                SeededProject(
                    id=project.id,
                    owner=owners[project.owner_id],
                    public=project.visibility is Visibility.PUBLIC,
                    scene_ids=tuple(scene_ids[project.id]),
                )
                for project in projects
            ),
        )


def make_plan(
    dataset: Dataset, count: int, seed: int, mix: dict[str, int] | None = None
) -> list[Call]:
    """``count`` requests drawn with ``random.Random(seed)``: the same seed, the same plan.

    ``mix`` gives the weight of each kind of request (``MIX`` when not given).

    Projects get a popularity rank (a seeded shuffle) and are drawn with Zipf weights.
    A public project is read by any user, a private one by its owner; writes are the
    owner's. Lists ask for their first pages mostly (the cached ones).
    """
    rng = random.Random(seed)
    ranking = list(dataset.projects)
    rng.shuffle(ranking)
    popularity = list(
        itertools.accumulate(1 / rank**ZIPF_EXPONENT for rank in range(1, len(ranking) + 1))
    )
    mix = MIX if mix is None else mix
    kinds, weights = list(mix), list(mix.values())
    users = len(dataset.emails)
    calls = []
    for kind in rng.choices(kinds, weights, k=count):
        if kind == "login":
            user = rng.randrange(users)
            body = urlencode({"username": dataset.emails[user], "password": PASSWORD})
            calls.append(Call(kind, "POST", "/auth/token", None, FORM, body))
            continue
        if kind == "list_projects":
            page = _page(rng, PROJECT_PAGES)
            calls.append(Call(kind, "GET", f"/projects?page={page}", rng.randrange(users)))
            continue
        project = rng.choices(ranking, cum_weights=popularity)[0]
        reader = rng.randrange(users) if project.public else project.owner
        base = f"/projects/{project.id}"
        if kind == "read_project":
            call = Call(kind, "GET", base, reader, project=project)
        elif kind == "list_scenes":
            page = _page(rng, SCENE_PAGES)
            call = Call(kind, "GET", f"{base}/scenes?page={page}", reader, project=project)
        elif kind == "patch_scene":
            scene = rng.choice(project.scene_ids)
            body = json.dumps({"title": f"Edited {MARK}", "duration_seconds": rng.randrange(60)})
            path = f"{base}/scenes/{scene}"
            call = Call(kind, "PATCH", path, project.owner, JSON, body, project)
        elif kind == "post_scene":
            body = json.dumps({"title": f"New {MARK}", "script": SCRIPT, "duration_seconds": 20})
            call = Call(kind, "POST", f"{base}/scenes", project.owner, JSON, body, project)
        else:
            body = json.dumps({"description": f"Edited {MARK}"})
            call = Call(kind, "PATCH", base, project.owner, JSON, body, project)
        calls.append(call)
    return calls


def _page(rng: random.Random, pages: tuple[tuple[int, int], ...]) -> int:
    return rng.choices([page for page, _ in pages], [weight for _, weight in pages])[0]


def write_plan(path: Path, tokens: list[str], calls: list[Call]) -> None:
    """Save the tokens and the calls in the tab-separated form tecnocursos.lua reads."""
    lines = [f"T\t{token}" for token in tokens]
    lines += [
        "\t".join(
            (
                "R",
                call.method,
                call.path,
                "-" if call.user is None else str(call.user),
                call.content_type or "-",
                call.body,
            )
        )
        for call in calls
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

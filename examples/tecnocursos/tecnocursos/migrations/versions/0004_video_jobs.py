"""Video jobs, and an image per scene.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

``video_jobs`` is the video queue's source of truth (the broker only wakes workers up): a
job goes with its project and its requester (``CASCADE``); ``output_key`` is unique, so
one job never owns two files. ``scenes.image_id`` points at an uploaded image and is
cleared when the media goes (``SET NULL``). On SQLite the column is added in batch mode
(a table copy), the only way SQLite adds a foreign key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``video_jobs``; add ``scenes.image_id``."""
    op.create_table(
        "video_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("scene_count", sa.Integer(), nullable=False),
        sa.Column("progress_percent", sa.Integer(), nullable=False),
        sa.Column("current_scene", sa.Integer(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("run_after", sa.DateTime(), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(), nullable=True),
        sa.Column("output_key", sa.String(length=32), nullable=False),
        sa.Column("output_size", sa.BigInteger(), nullable=True),
        sa.Column("video_seconds", sa.Float(), nullable=True),
        sa.Column("render_seconds", sa.Float(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_video_jobs_attempts_not_negative")),
        sa.CheckConstraint(
            "progress_percent BETWEEN 0 AND 100", name=op.f("ck_video_jobs_progress_in_range")
        ),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_video_jobs_state"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_video_jobs_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_video_jobs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_jobs")),
        sa.UniqueConstraint("output_key", name=op.f("uq_video_jobs_output_key")),
    )
    op.create_index(op.f("ix_video_jobs_owner_id"), "video_jobs", ["owner_id"], unique=False)
    op.create_index(op.f("ix_video_jobs_project_id"), "video_jobs", ["project_id"], unique=False)
    op.create_index(
        "ix_video_jobs_state_run_after", "video_jobs", ["state", "run_after"], unique=False
    )
    with op.batch_alter_table("scenes") as batch:
        batch.add_column(sa.Column("image_id", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_scenes_image_id"), ["image_id"], unique=False)
        batch.create_foreign_key(
            op.f("fk_scenes_image_id_media_files"),
            "media_files",
            ["image_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    """Drop ``scenes.image_id`` and ``video_jobs``."""
    with op.batch_alter_table("scenes") as batch:
        batch.drop_constraint(op.f("fk_scenes_image_id_media_files"), type_="foreignkey")
        batch.drop_index(op.f("ix_scenes_image_id"))
        batch.drop_column("image_id")
    op.drop_table("video_jobs")

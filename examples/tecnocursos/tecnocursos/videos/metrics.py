"""The video pipeline's Prometheus series (what Flower showed, as metrics).

Counted where they happen, on prometheus-client's global registry (the library's
``/metrics`` in embedded mode, the worker's own ``/metrics`` port otherwise):

- ``tecnocursos_video_jobs{state}``: jobs in each state, read from the database by the
  reconciler (every worker reports the same table: alert on ``max``);
- ``tecnocursos_video_queue_depth`` and ``tecnocursos_video_queue_oldest_age_seconds``:
  queued jobs due now, and how long the oldest has waited;
- ``tecnocursos_video_render_seconds`` and ``tecnocursos_video_scene_render_seconds``:
  wall time of each finished video and each scene;
- ``tecnocursos_video_attempts_total{outcome}``: attempts by how they ended
  (``succeeded``, ``retried``, ``failed``, ``cancelled``, ``lost``, ``released``);
- ``tecnocursos_video_deliveries_skipped_total``: messages that found nothing to claim
  (duplicates, early retries, cancelled or deleted jobs);
- ``tecnocursos_video_leases_expired_total``: running jobs the reconciler took back.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from tecnocursos.videos.jobs import JobState
from tecnocursos.videos.service import QueueStats

__all__ = [
    "ATTEMPTS",
    "DELIVERIES_SKIPPED",
    "JOBS",
    "LEASES_EXPIRED",
    "QUEUE_DEPTH",
    "QUEUE_OLDEST_AGE",
    "RENDER_SECONDS",
    "SCENE_RENDER_SECONDS",
    "record_stats",
]

JOBS = Gauge(
    "tecnocursos_video_jobs",
    "Video jobs by state (from the database).",
    ["state"],
    multiprocess_mode="mostrecent",
)
QUEUE_DEPTH = Gauge(
    "tecnocursos_video_queue_depth",
    "Queued video jobs due now.",
    multiprocess_mode="mostrecent",
)
QUEUE_OLDEST_AGE = Gauge(
    "tecnocursos_video_queue_oldest_age_seconds",
    "Seconds the oldest due video job has waited.",
    multiprocess_mode="mostrecent",
)
RENDER_SECONDS = Histogram(
    "tecnocursos_video_render_seconds",
    "Wall time of a finished video's render.",
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
SCENE_RENDER_SECONDS = Histogram(
    "tecnocursos_video_scene_render_seconds",
    "Wall time of one scene (speech and encoding).",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300),
)
ATTEMPTS = Counter(
    "tecnocursos_video_attempts",
    "Render attempts by how they ended.",
    ["outcome"],
)
for _outcome in ("succeeded", "retried", "failed", "cancelled", "lost", "released"):
    ATTEMPTS.labels(outcome=_outcome)
DELIVERIES_SKIPPED = Counter(
    "tecnocursos_video_deliveries_skipped",
    "Messages that found no job to claim (duplicate, early, cancelled or deleted).",
)
LEASES_EXPIRED = Counter(
    "tecnocursos_video_leases_expired",
    "Running jobs whose lease expired (their worker died or stalled).",
)


def record_stats(stats: QueueStats) -> None:
    """Set the gauges from one reading of the job table."""
    for state in JobState:
        JOBS.labels(state=state.value).set(stats.by_state.get(state, 0))
    QUEUE_DEPTH.set(stats.due)
    QUEUE_OLDEST_AGE.set(stats.oldest_due_seconds)

"""The video queue: dramatiq, on Redis in production and in memory for the demo.

A message carries only a job ID: the row says what to do, and a message for a job that
is not queued and due is a no-op. So the broker may deliver twice (a redelivery after a
worker died, the reconciler's resend) without harm, and a message lost with Redis costs
only the reconciler's delay.

dramatiq's Redis broker acknowledges a message when the actor returns and redelivers
the unacknowledged messages of a worker whose heartbeats stopped, never because a
message is old: a long render is neither lost nor run twice for being long.
dramatiq is LGPL-3.0 (used as a library, unmodified).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from tecnocursos.core.settings import TecnoCursosSettings

__all__ = ["QUEUE_NAME", "VideoQueue"]

logger = logging.getLogger(__name__)

QUEUE_NAME = "videos"
ACTOR_NAME = "render_video_job"


class VideoQueue:
    """The broker and the render actor of one process.

    Args:
        settings: ``video.queue`` picks the broker: ``redis`` (on ``video.broker_url``,
            else ``redis.url``) or ``embedded`` (in memory, for a worker inside the app).
        handle: What the actor runs for a job ID, in a dramatiq worker thread.
    """

    def __init__(self, settings: TecnoCursosSettings, handle: Callable[[int], None]) -> None:
        video = settings.video
        # Our retries are the job row's (bounded, with backoff); dramatiq's only cover an
        # actor that raised before it could record anything (the database unreachable).
        middleware = [
            TimeLimit(),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            Retries(max_retries=3, min_backoff=1_000, max_backoff=30_000),
        ]
        self.broker: dramatiq.Broker
        self._client: redis.Redis | None = None
        if video.queue == "redis":
            url = video.broker_url or settings.redis.url
            client = redis.Redis.from_url(
                url.get_secret_value(),
                socket_connect_timeout=settings.redis.socket_connect_timeout,
                # The consumer's fetches may wait on the server: never below a few seconds.
                socket_timeout=max(settings.redis.socket_timeout, 5.0),
            )
            self._client = client
            self.broker = RedisBroker(  # type: ignore[no-untyped-call]
                client=client,
                namespace=video.namespace,
                middleware=middleware,
                # A dead worker's messages come back after this (milliseconds); well
                # under the lease, so the message is usually back before the reconciler.
                heartbeat_timeout=int(video.lease_seconds * 1000),
            )
        else:
            self.broker = StubBroker(middleware=middleware)
        self.time_limit_ms = int((video.time_limit_seconds + 120) * 1000)
        self.actor: dramatiq.Actor[[int], None] = dramatiq.Actor(
            handle,
            broker=self.broker,
            actor_name=ACTOR_NAME,
            queue_name=QUEUE_NAME,
            priority=0,
            options={"time_limit": self.time_limit_ms, "max_retries": 3},
        )

    def send(self, job_id: int, *, delay: float = 0.0) -> None:
        """Send ``job_id``'s message (blocking: call it from a thread in async code).

        Raises:
            dramatiq.errors.ConnectionError: The broker is unreachable; the job stays
                queued and the reconciler sends it later.
        """
        self.actor.send_with_options(args=(job_id,), delay=int(delay * 1000) or None)

    def worker(self) -> dramatiq.Worker:
        """A dramatiq worker consuming the video queue with one thread.

        One render at a time per process: renders are CPU-bound; run more processes.
        It holds one message at a time too: dramatiq prefetches twice its threads by
        default, so an idle worker would watch a busy one sit on the next job.
        """
        worker = dramatiq.Worker(self.broker, queues={QUEUE_NAME}, worker_threads=1)
        worker.queue_prefetch = 1
        return worker

    def close(self) -> None:
        """Close the broker's connections."""
        self.broker.close()
        # dramatiq's RedisBroker.close() leaves its client's sockets open.
        if self._client is not None:
            self._client.close()
            self._client.connection_pool.disconnect()

"""The video queue on a real Redis: how messages spread over worker processes."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import delete_redis_keys, make_settings
from tecnocursos.videos.queue import VideoQueue


class _Blocking:
    """An actor body that records the jobs it got and holds each until released."""

    def __init__(self) -> None:
        self.jobs: list[int] = []
        self.release = threading.Event()

    def __call__(self, job_id: int) -> None:
        self.jobs.append(job_id)
        self.release.wait(timeout=30)


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.redis
def test_a_busy_worker_leaves_the_next_job_to_an_idle_one(tmp_path: Path, redis_url: str) -> None:
    """A worker rendering a job holds no second message: another worker takes it at once.

    dramatiq prefetches twice a worker's threads by default; with one render thread, the
    first worker would take both messages and the second job would wait for the first.
    """
    namespace = f"tc-test-{uuid.uuid4().hex[:12]}"
    settings = make_settings(
        tmp_path, video={"queue": "redis", "namespace": namespace}, redis={"url": redis_url}
    )
    first, second = _Blocking(), _Blocking()
    queues = [VideoQueue(settings, first), VideoQueue(settings, second)]
    workers = []
    try:
        # Both messages wait in Redis before any worker looks: the first one could take both.
        queues[0].send(1)
        queues[0].send(2)
        workers.append(queues[0].worker())
        workers[0].start()
        assert _wait_until(lambda: len(first.jobs) == 1), "the first worker took no job"
        workers.append(queues[1].worker())
        workers[1].start()
        assert _wait_until(lambda: len(second.jobs) == 1), "the second job waited for the first"
        assert sorted(first.jobs + second.jobs) == [1, 2]
    finally:
        first.release.set()
        second.release.set()
        for worker in workers:
            worker.stop(timeout=10_000)
        for queue in queues:
            queue.close()
        asyncio.run(delete_redis_keys(redis_url, f"{namespace}*"))


@pytest.mark.redis
def test_the_queue_runs_on_its_own_redis_when_broker_url_is_set(
    tmp_path: Path, redis_url: str
) -> None:
    """``video.broker_url`` wins over ``redis.url`` (the cache's Redis, unreachable here).

    Production gives the queue a Redis that never evicts and the cache one that does
    (deploy/compose.yaml): a message sent and received proves which one carried it.
    """
    namespace = f"tc-test-{uuid.uuid4().hex[:12]}"
    unreachable = "redis://127.0.0.1:9/0"  # the discard port: nothing answers there
    settings = make_settings(
        tmp_path,
        video={"queue": "redis", "namespace": namespace, "broker_url": redis_url},
        redis={"url": unreachable},
    )
    received = _Blocking()
    received.release.set()
    queue = VideoQueue(settings, received)
    worker = None
    try:
        queue.send(7)
        worker = queue.worker()
        worker.start()
        assert _wait_until(lambda: received.jobs == [7]), "the job never arrived"
    finally:
        if worker is not None:
            worker.stop(timeout=10_000)
        queue.close()
        asyncio.run(delete_redis_keys(redis_url, f"{namespace}*"))

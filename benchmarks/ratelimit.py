"""Cost of one rate-limit check (memory, Redis) and of the middleware per request.

Run: python -m benchmarks.ratelimit [--redis redis://127.0.0.1:6379/15]
Reports microseconds per check, Redis round trips per allowed request (counted with
``INFO commandstats``), and the in-process CPU per request of an app with the limiter
against bare FastAPI. Not a test: nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from starlette.middleware import Middleware

from benchmarks.inprocess import best, drive, make_app
from fastapi_enterprise import RateLimitMiddleware
from fastapi_enterprise.ratelimit import RateLimiter, RateLimitPolicy

POLICY = RateLimitPolicy.from_string("1000000/minute")


async def checks_per_second(limiter: RateLimiter, count: int) -> float:
    for n in range(200):
        await limiter.check(POLICY, "bench", f"warm{n}")
    start = time.perf_counter()
    for n in range(count):
        await limiter.check(POLICY, "bench", f"client{n % 1000}")
    elapsed = time.perf_counter() - start
    await limiter.aclose()
    return elapsed / count * 1e6


class RoundTrips:
    """Counts commands the asyncio Redis client sends (pipelines count once)."""

    def __init__(self) -> None:
        from redis.asyncio.connection import AbstractConnection

        self.count = 0
        original = AbstractConnection.send_packed_command

        async def counting(connection: object, command: object, check_health: bool = True) -> None:
            self.count += 1
            await original(connection, command, check_health)  # type: ignore[arg-type]

        AbstractConnection.send_packed_command = counting  # type: ignore[assignment, method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None, help="a Redis URL to measure against")
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    trips = RoundTrips()
    print("| check | us per check |")
    print("|---|---:|")
    for strategy in ("sliding-window-counter", "moving-window", "fixed-window"):
        memory = asyncio.run(checks_per_second(RateLimiter(strategy=strategy), args.count))
        print(f"| memory, {strategy} | {memory:.1f} |")
        if args.redis:
            limiter = RateLimiter(args.redis, strategy=strategy, timeout=5)
            trips.count = 0
            remote = asyncio.run(checks_per_second(limiter, 2000))
            per_check = trips.count / (2000 + 200)
            print(f"| Redis, {strategy} | {remote:.1f} ({per_check:.2f} round trips per check) |")
            assert limiter.stats.storage_errors == 0, "the storage failed: figures are void"
    bare = best(lambda: asyncio.run(drive(make_app(), 5000, [(b"host", b"b")])), 5)
    limited_app = make_app([Middleware(RateLimitMiddleware, default="1000000/minute")])
    limited = best(lambda: asyncio.run(drive(limited_app, 5000, [(b"host", b"b")])), 5)
    print(
        f"\nin-process CPU per request: bare {bare:.1f} us, with RateLimitMiddleware "
        f"(memory) {limited:.1f} us, ratio {limited / bare:.2f}"
    )


if __name__ == "__main__":
    main()

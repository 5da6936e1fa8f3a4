"""Calls to a commercial AI service: timeouts, bounded retries with backoff, a breaker.

Errors name the provider and the HTTP status, never the key, the request or the answer's
body (a service may echo what it was sent).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import httpx2

from tecnocursos.videos.models import ProviderError

__all__ = ["CircuitBreaker", "RetryPolicy", "send_with_retries"]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class CircuitBreaker:
    """A circuit breaker for one provider.

    Opens after ``threshold`` consecutive failures; after ``cooldown`` seconds one trial
    call goes through (half-open): success closes it, failure opens it again.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cooldown < 0:
            raise ValueError("threshold must be >= 1 and cooldown >= 0")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self._opened_at is None:
            return "closed"
        if self._trial or self._clock() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open, only one at a time)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial:
            self._trial = True
            return True
        return False

    def success(self) -> None:
        """A call succeeded: close."""
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def failure(self) -> None:
        """A call failed: count it, open at the threshold or when the trial failed."""
        self._failures += 1
        if self._trial or self._failures >= self.threshold:
            self._opened_at = self._clock()
            self._trial = False


class RetryPolicy:
    """How many attempts, and how long to wait between them."""

    def __init__(self, *, attempts: int = 3, backoff: float = 0.5, max_delay: float = 30.0) -> None:
        if attempts < 1 or backoff < 0 or max_delay < 0:
            raise ValueError("attempts must be >= 1, backoff and max_delay >= 0")
        self.attempts = attempts
        self.backoff = backoff
        self.max_delay = max_delay

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``.

        ``Retry-After`` when given, else exponential backoff with jitter; capped at
        ``max_delay`` either way.
        """
        parsed = _parse_retry_after(retry_after)
        if parsed is None:
            parsed = self.backoff * 2**attempt * (0.5 + random.random() / 2)  # noqa: S311 (jitter)
        return min(self.max_delay, max(0.0, parsed))


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - datetime.now(timezone.utc)).total_seconds()


RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


async def send_with_retries(
    client: httpx2.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    breaker: CircuitBreaker,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    **kwargs: Any,
) -> httpx2.Response:
    """Send a request; retry 408/429/5xx, connection errors and timeouts.

    Raises:
        ProviderError: The breaker is open, authentication failed (401/403, not retried),
            another client error, or the last attempt failed.
    """
    last = "no attempt"
    for attempt in range(policy.attempts):
        if not breaker.allow():
            raise ProviderError(
                provider, "circuit open after repeated failures; try again later", retryable=True
            )
        retry_after: str | None = None
        try:
            response = await client.request(method, url, **kwargs)
        except httpx2.TimeoutException:
            last = "timed out"
        except httpx2.TransportError as error:
            last = f"connection failed ({type(error).__name__})"
        else:
            status = response.status_code
            if status < 400:
                breaker.success()
                return response
            if status in (401, 403):
                # A wrong key is not a service failure: the breaker stays as it is.
                raise ProviderError(
                    provider, f"authentication failed (HTTP {status}): check the API key"
                )
            if status not in RETRYABLE_STATUSES:
                raise ProviderError(provider, f"request refused (HTTP {status})")
            last = f"HTTP {status}"
            retry_after = response.headers.get("retry-after")
        breaker.failure()
        logger.warning(
            "%s: attempt %d of %d failed: %s", provider, attempt + 1, policy.attempts, last
        )
        if attempt + 1 < policy.attempts:
            await sleep(policy.delay(attempt, retry_after))
    raise ProviderError(
        provider, f"failed after {policy.attempts} attempts: {last}", retryable=True
    )

"""The breaker's and the connection slots' rules, one by one (the HTTP tests run them live)."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastapi_enterprise._flow import Deadline, LoopClock, Slots
from fastapi_enterprise.ratelimit.breaker import CircuitBreaker


def test_threshold_failures_in_a_row_open_the_breaker() -> None:
    breaker = CircuitBreaker(60, threshold=3)
    ticket = breaker.admit()
    assert ticket is not None
    assert not breaker.failure(ticket)
    assert not breaker.failure(ticket)
    breaker.success(ticket)  # a success in between starts the count again
    assert not breaker.failure(ticket)
    assert not breaker.failure(ticket)
    assert breaker.failure(ticket)
    assert breaker.is_open
    assert breaker.admit() is None


def test_outcomes_of_calls_from_before_a_change_are_ignored() -> None:
    breaker = CircuitBreaker(0, threshold=1)
    stale = breaker.admit()
    assert stale is not None
    assert breaker.failure(stale)  # opens
    assert not breaker.failure(stale)  # a second in-flight failure: no new opening
    probe = breaker.admit()  # cooldown 0: the probe
    assert probe is not None
    assert breaker.admit() is None  # one probe at a time
    assert breaker.success(probe)  # closes
    assert not breaker.failure(stale)  # late failure from before the recovery
    assert not breaker.is_open


def test_a_cancelled_probe_hands_the_probe_on() -> None:
    breaker = CircuitBreaker(0, threshold=1)
    ticket = breaker.admit()
    assert ticket is not None
    breaker.failure(ticket)
    probe = breaker.admit()
    assert probe is not None
    probing = [breaker.probing]
    breaker.abandon(probe)
    probing.append(breaker.probing)
    assert probing == [True, False]
    assert breaker.admit() is not None


def test_a_probe_that_never_reports_is_replaced_after_its_lease() -> None:
    breaker = CircuitBreaker(0, threshold=1, probe_lease=0.05)
    ticket = breaker.admit()
    assert ticket is not None
    breaker.failure(ticket)
    assert breaker.admit() is not None
    assert breaker.admit() is None
    time.sleep(0.06)
    assert breaker.admit() is not None


def test_slots_queue_in_order_and_never_leak_on_cancellation() -> None:
    async def scenario() -> list[int]:
        slots = Slots(1)
        order: list[int] = []
        assert slots.try_acquire()

        async def waiter(n: int) -> None:
            await slots.acquire()
            order.append(n)
            slots.release()

        first = asyncio.create_task(waiter(1))
        cancelled = asyncio.create_task(waiter(2))
        third = asyncio.create_task(waiter(3))
        await asyncio.sleep(0)
        assert slots.waiting == 3
        cancelled.cancel()
        slots.release()  # handed to the first waiter
        await asyncio.gather(first, third, cancelled, return_exceptions=True)
        assert slots.in_use == 0
        assert slots.try_acquire()
        return order

    assert asyncio.run(scenario()) == [1, 3]


def test_a_waiter_cancelled_just_as_it_was_handed_a_slot_passes_it_on() -> None:
    async def scenario() -> int:
        slots = Slots(1)
        assert slots.try_acquire()
        waiter = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        slots.release()  # the slot is the waiter's now...
        waiter.cancel()  # ...but it is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return slots.in_use

    assert asyncio.run(scenario()) == 0


def test_the_deadline_gives_back_time_the_loop_was_busy() -> None:
    """A blocked loop does not use up the time; a silent storage still times out."""

    async def answered_late() -> str:
        clock = LoopClock(tick=0.01)
        answer = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, answer.set_result, "ok")
        with Deadline(0.1, clock, ceiling=30):
            time.sleep(0.3)  # noqa: ASYNC251 - the loop stands still while the answer is due
            return str(await answer)

    async def never_answered() -> None:
        with Deadline(0.1, LoopClock(tick=0.01), ceiling=30):
            await asyncio.Event().wait()

    assert asyncio.run(answered_late()) == "ok"
    with pytest.raises(TimeoutError):
        asyncio.run(never_answered())

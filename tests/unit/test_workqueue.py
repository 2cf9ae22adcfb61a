"""The deployer's keyed work queue: per-key order, concurrency, requeue, retry with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from services.deployer.workqueue import KeyedQueue, Result


@contextlib.asynccontextmanager
async def running(queue: KeyedQueue) -> AsyncIterator[KeyedQueue]:
    task = asyncio.create_task(queue.run())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


DONE = Result()


def recorder(
    delay: float = 0.0, result: Result = DONE
) -> tuple[list[str], Callable[[str], Awaitable[Result]]]:
    calls: list[str] = []

    async def work(key: str) -> Result:
        calls.append(key)
        await asyncio.sleep(delay)
        return result

    return calls, work


async def test_a_key_asked_for_many_times_while_queued_runs_once() -> None:
    calls, work = recorder()
    q = KeyedQueue(work, workers=1)
    for _ in range(5):
        q.add("a")
    q.add("b")
    async with running(q):
        await until(lambda: len(calls) >= 2 and q.busy == 0)
        await asyncio.sleep(0.02)
    assert calls == ["a", "b"]


async def test_one_key_never_runs_twice_at_once_and_runs_again_if_asked_meanwhile() -> None:
    active: set[str] = set()
    overlaps = 0
    calls: list[str] = []

    async def work(key: str) -> Result:
        nonlocal overlaps
        if key in active:
            overlaps += 1
        active.add(key)
        calls.append(key)
        await asyncio.sleep(0.02)
        active.discard(key)
        return Result()

    q = KeyedQueue(work, workers=4)
    async with running(q):
        q.add("a")
        await until(lambda: calls == ["a"])
        q.add("a")  # while it runs: once more afterwards, not in parallel
        q.add("a")
        await until(lambda: len(calls) == 2 and q.busy == 0)
        await asyncio.sleep(0.05)
    assert overlaps == 0
    assert calls == ["a", "a"]


async def test_different_keys_run_in_parallel_up_to_the_limit() -> None:
    running_now = 0
    peak = 0

    async def work(key: str) -> Result:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        await asyncio.sleep(0.03)
        running_now -= 1
        return Result()

    q = KeyedQueue(work, workers=3)
    for i in range(10):
        q.add(f"k{i}")
    async with running(q):
        await until(lambda: q.busy == 0, timeout=3)
    assert peak == 3


async def test_requeue_after_runs_the_key_again_later() -> None:
    calls, work = recorder(result=Result(requeue_after=0.05))
    q = KeyedQueue(work, workers=1)
    q.add("a")
    async with running(q):
        await until(lambda: len(calls) == 1)
        await asyncio.sleep(0.02)
        assert len(calls) == 1  # not yet
        await until(lambda: len(calls) >= 2)


async def test_immediate_requeues_are_bounded() -> None:
    calls, work = recorder(result=Result(requeue=True))
    q = KeyedQueue(work, workers=1, max_immediate=5)
    q.add("a")
    async with running(q):
        await until(lambda: len(calls) >= 5)
        await asyncio.sleep(0.05)
    assert len(calls) == 5


async def test_a_failure_retries_with_growing_delays_and_success_resets_them() -> None:
    times: list[float] = []
    fail = 3

    async def work(key: str) -> Result:
        nonlocal fail
        times.append(asyncio.get_running_loop().time())
        if fail:
            fail -= 1
            raise RuntimeError("boom")
        return Result()

    q = KeyedQueue(work, workers=1, base_delay=0.02, max_delay=1.0)
    q.add("a")
    async with running(q):
        await until(lambda: len(times) == 4, timeout=3)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[0] >= 0.018 and gaps[1] >= 0.038 and gaps[2] >= 0.078
        assert q.retry_delay(1) == pytest.approx(0.02)
        q.add("a")  # a success in between: the next failure starts from the base delay again
        await until(lambda: len(times) == 5)
    assert q.failures("a") == 0


async def test_done_drops_a_pending_timer() -> None:
    results = [Result(requeue_after=0.05), Result(done=True)]
    calls: list[str] = []

    async def work(key: str) -> Result:
        calls.append(key)
        return results[min(len(calls) - 1, 1)]

    q = KeyedQueue(work, workers=1)
    q.add("a")
    async with running(q):
        await until(lambda: len(calls) == 1)
        q.add("a")  # runs at once and says it is done: the timer from the first round goes
        await until(lambda: len(calls) == 2)
        await asyncio.sleep(0.1)
    assert len(calls) == 2

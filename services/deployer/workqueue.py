"""A keyed work queue: per-key order, a concurrency limit, requeue-after, rate-limited retry.

Shaped like client-go's rate-limited workqueue under controller-runtime's
`Reconcile(ctx, req) (Result, error)`: `add(key)` asks for a key to be worked on;
a key is worked on by at most one worker at a time (asked for again meanwhile,
it runs once more afterwards), different keys in parallel up to `workers`. The
work function returns a `Result` (run again at once, or after a delay) or
raises; a raise retries the key with exponential backoff, reset by the next
success. Nothing here knows what a key means.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    requeue: bool = False  # something changed: look again at once
    requeue_after: float | None = None  # look again after this many seconds in any case
    done: bool = False  # nothing is left to do for the key: drop its timer and counts


Work = Callable[[str], Awaitable[Result]]


class KeyedQueue:
    def __init__(
        self,
        work: Work,
        *,
        workers: int = 16,
        base_delay: float = 0.5,
        max_delay: float = 10.0,
        max_immediate: int = 20,
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        self.work = work
        self.workers = workers
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_immediate = max_immediate
        self.expected = expected  # failures logged without a traceback
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._immediate: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()

    # ------------------------------------------------------------ asking for work
    def add(self, key: str) -> None:
        """Work on `key` soon (once, however often it is asked for meanwhile)."""
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.append(key)
        self._wakeup.set()

    def add_after(self, key: str, delay: float) -> None:
        """Work on `key` after `delay` seconds (replacing an earlier such request)."""
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(0.0, delay), self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: str) -> None:
        """Drop the key's timer and retry count (it has nothing left to do)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)
        self._immediate.pop(key, None)

    def failures(self, key: str) -> int:
        """Failures of the key in a row (0 after a success)."""
        return self._failures.get(key, 0)

    def retry_delay(self, failures: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2 ** max(0, failures - 1)))

    @property
    def busy(self) -> int:
        """Keys being worked on or waiting for a worker."""
        return len(self._active) + len(self._ready)

    # ------------------------------------------------------------ working
    async def _next(self) -> str:
        while not self._ready:
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._ready.popleft()
        self._queued.discard(key)
        return key

    async def _worker(self) -> None:
        while True:
            key = await self._next()
            self._active.add(key)
            try:
                await self._run_one(key)
            finally:
                self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)

    async def _run_one(self, key: str) -> None:
        try:
            result = await self.work(key)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            delay = self.retry_delay(failures)
            if isinstance(err, self.expected):
                log.warning("%s: %s; retrying in %.1fs", key, err, delay)
            else:
                log.exception("%s: failed; retrying in %.1fs", key, delay)
            self._immediate.pop(key, None)
            self.add_after(key, delay)
            return
        self._failures.pop(key, None)
        if result.done:
            self.forget(key)
            return
        if result.requeue_after is not None:
            self.add_after(key, result.requeue_after)
        if result.requeue:
            rounds = self._immediate[key] = self._immediate.get(key, 0) + 1
            if rounds < self.max_immediate:
                self._dirty.add(key)
                return
        self._immediate.pop(key, None)

    async def run(self) -> None:
        """Work until cancelled; then cancel the work in progress and every timer."""
        tasks = [
            asyncio.create_task(self._worker(), name=f"worker-{i}") for i in range(self.workers)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

"""Fair shares of the api between projects: concurrent follows and log reads per project.

A project may hold at most `max_follows` websocket tails at once (one more is
answered 429), and reads at most `log_reads` log views or tail backlogs at a
time (more wait their turn), so one tenant pulling logs in bulk slows only
itself. Shared wake-up subscriptions (`Wakeups`) keep the cost of a tail on
NATS at nothing once one tail of the same service is open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from services.api.errors import TooManyRequests
from shared.bus import Bus, BusError, Subscription


class ProjectLimits:
    def __init__(self, max_follows: int, log_reads: int) -> None:
        self.max_follows = max_follows
        self.log_reads = log_reads
        self.follows: dict[str, int] = {}
        self._reads: dict[str, asyncio.Semaphore] = {}

    @contextlib.contextmanager
    def follow(self, project: str) -> Iterator[None]:
        """Hold one of the project's follow slots; 429 when they are all taken."""
        held = self.follows.get(project, 0)
        if held >= self.max_follows:
            raise TooManyRequests(
                f"project {project} already follows {held} log or event streams, the most "
                f"allowed at once; close some (or wait for them to end) and try again"
            )
        self.follows[project] = held + 1
        try:
            yield
        finally:
            left = self.follows[project] - 1
            if left:
                self.follows[project] = left
            else:
                del self.follows[project]

    @contextlib.asynccontextmanager
    async def log_read(self, project: str) -> AsyncIterator[None]:
        """Wait for one of the project's log read slots."""
        sem = self._reads.get(project)
        if sem is None:
            sem = self._reads[project] = asyncio.Semaphore(self.log_reads)
        async with sem:
            yield


class Wakeups:
    """One core subscription per subject pattern, shared by every tail that follows it."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._subs: dict[str, Subscription] = {}
        self._lock = asyncio.Lock()

    async def join(self, pattern: str, wake: asyncio.Event) -> None:
        """Set `wake` whenever a message is published on `pattern` (best effort)."""
        async with self._lock:
            waiting = self._waiting.setdefault(pattern, set())
            waiting.add(wake)
            if pattern in self._subs:
                return

            async def on_msg(_subject: str, _data: bytes) -> None:
                for event in list(self._waiting.get(pattern, ())):
                    event.set()

            with contextlib.suppress(BusError):  # the tails' poll works without it
                self._subs[pattern] = await self.bus.subscribe(pattern, on_msg)

    async def leave(self, pattern: str, wake: asyncio.Event) -> None:
        async with self._lock:
            waiting = self._waiting.get(pattern)
            if waiting is None:
                return
            waiting.discard(wake)
            if waiting:
                return
            del self._waiting[pattern]
            sub = self._subs.pop(pattern, None)
        if sub is not None:
            await sub.unsubscribe()

    @property
    def subscriptions(self) -> int:
        return len(self._subs)

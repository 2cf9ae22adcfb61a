"""One listing of the host's platform containers, shared by concurrent reconciliations.

Listing (and inspecting the exited ones) costs tens of milliseconds with many
containers; after a restart every service reconciles at once. A listing is
reused until something may have changed it: a Docker event, an action of the
deployer, or simply `MAX_AGE_S`. Changes during a listing make the next caller
list again, so nobody acts on state older than what it has been told about.
"""

from __future__ import annotations

import asyncio
import time

from services.deployer.engine import TaskEngine
from services.deployer.model import Observed

MAX_AGE_S = 1.0

Listing = list[tuple[str, str, Observed]]


class ContainerSnapshot:
    def __init__(self, host: TaskEngine) -> None:
        self.host = host
        self._lock = asyncio.Lock()
        self._generation = 0
        self._data: Listing | None = None
        self._data_generation = -1
        self._taken = 0.0

    def invalidate(self) -> None:
        """Something changed (or may have): the next caller lists again."""
        self._generation += 1

    async def get(self) -> Listing:
        async with self._lock:
            fresh = time.monotonic() - self._taken < MAX_AGE_S
            if self._data is not None and fresh and self._data_generation == self._generation:
                return self._data
            generation = self._generation
            self._data = await self.host.list_tasks()
            self._data_generation = generation
            self._taken = time.monotonic()
            return self._data

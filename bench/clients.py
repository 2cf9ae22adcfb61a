"""HTTP clients the benchmarks drive in-process: wait for a first 200, loop requests.

asyncio/aiohttp, on loopback only (load generation is wrk's job, see `wrk`).
`first_ok` polls at a fixed short interval so the platform and its baseline
are timed with the same granularity. `Hammer` loops requests in the
background, counts every answer that is not a 200, and notes when a body
containing a given text is first seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp

POLL_S = 0.005


def session(limit: int = 100) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=10),
    )


async def first_ok(
    http: aiohttp.ClientSession, url: str, started: float, timeout: float = 60.0
) -> float:
    """Seconds from `started` (a perf_counter time) to the first 200 from `url`."""
    deadline = started + timeout
    last = "no answer"
    while time.perf_counter() < deadline:
        try:
            async with http.get(url) as r:
                body = await r.read()
                if r.status == 200:
                    return time.perf_counter() - started
                last = f"{r.status} {body[:100]!r}"
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            last = repr(err)
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{url} gave no 200 within {timeout:g} s (last: {last})")


@dataclass
class Hammer:
    """`clients` loops of GET `url` until stopped; failures are anything but a 200."""

    url: str
    clients: int = 2
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)  # perf_counter of each failure
    first_seen: dict[str, float] = field(default_factory=dict)  # text -> perf_counter
    watch_for: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _http: aiohttp.ClientSession | None = None

    async def _loop(self, http: aiohttp.ClientSession) -> None:
        while True:
            try:
                async with http.get(self.url) as r:
                    body = await r.text()
                    if r.status != 200:
                        self.failures.append(f"{r.status} {body[:80]}")
                        self.failed_at.append(time.perf_counter())
                        continue
                    self.ok += 1
                    for text in self.watch_for:
                        if text in body and text not in self.first_seen:
                            self.first_seen[text] = time.perf_counter()
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                self.failures.append(repr(err))
                self.failed_at.append(time.perf_counter())

    async def __aenter__(self) -> Hammer:
        self._http = session(self.clients)
        self._tasks = [asyncio.create_task(self._loop(self._http)) for _ in range(self.clients)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.close()

    async def wait_seen(self, text: str, timeout: float = 60.0) -> float:
        """perf_counter time when a body with `text` was first answered."""
        self.watch_for.add(text)
        deadline = time.perf_counter() + timeout
        while text not in self.first_seen:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no response containing {text!r} within {timeout:g} s")
            await asyncio.sleep(0.01)
        return self.first_seen[text]

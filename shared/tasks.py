"""Background work of a worker process: supervised loops that end when `stop` is set.

A loop that raises is logged and restarted with backoff (never a tight loop);
when `stop` is set every loop is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Loop = Callable[[], Awaitable[None]]


async def supervised(
    name: str,
    loop: Loop,
    stop: asyncio.Event | None = None,
    max_delay: float = 30.0,
    first_delay: float = 0.5,
) -> None:
    """Run `loop` until it returns, restarting it with backoff whenever it raises.

    Ends when `stop` is set (if given) or when the task running it is cancelled."""
    delay = first_delay
    while stop is None or not stop.is_set():
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in %.1fs", name, delay)
        if stop is None:
            await asyncio.sleep(delay)
        else:
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
        delay = min(max_delay, delay * 2)


async def run_until_stopped(stop: asyncio.Event, loops: dict[str, Loop]) -> None:
    tasks = [
        asyncio.create_task(supervised(name, loop, stop), name=name) for name, loop in loops.items()
    ]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

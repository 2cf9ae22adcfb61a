"""Process entry helper for `__main__` modules: logging, settings, signals, `run`.

Only this helper installs signal handlers; the workers' `run(settings, stop=...)`
functions just wait for `stop`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from shared.settings import Settings, SettingsError

Run = Callable[[Settings], Awaitable[None]]


def configure_logging(name: str) -> None:
    level = os.environ.get("SERVICECTL_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def main(name: str, run: Callable[..., Awaitable[None]]) -> None:
    """Read settings once, run `run(settings, stop=event)` until SIGINT/SIGTERM."""
    configure_logging(name)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as err:
        print(f"{name}: {err}", file=sys.stderr)
        raise SystemExit(2) from None

    async def _amain() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop=stop)

    try:
        asyncio.run(_amain())
    except KeyboardInterrupt:
        pass

"""Process entry helper for `__main__` modules: logging, settings, signals, `run`.

Only this helper installs signal handlers; the workers' `run(settings, stop=...)`
functions just wait for `stop`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable

from shared.settings import Settings, SettingsError

Run = Callable[[Settings], Awaitable[None]]


_SECRETS = re.compile(
    r"sct_[A-Za-z0-9_-]{8,}"  # session tokens (also inside websocket subprotocols)
    r"|(?i:\b(?:basic|bearer)\s+)[A-Za-z0-9+/=._~-]{8,}"  # Authorization header values
)


class RedactSecrets(logging.Formatter):
    """Formats records with session tokens and credentials cut out, whoever logged them.

    Libraries log what clients send (aiohttp names a websocket's offered
    subprotocols, which may carry a token): no secret reaches a log file."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: m.group(0)[:4] + "…(redacted)", text)


def configure_logging(name: str) -> None:
    level = os.environ.get("SERVICECTL_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactSecrets(f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])
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

"""Typed keys for the api application's state (aiohttp `web.AppKey`)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.api.store import Store
from shared.bus import Bus
from shared.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
BUS = web.AppKey("bus", Bus)
STORE = web.AppKey("store", Store)
BACKGROUND = web.AppKey("background", list[asyncio.Task[None]])

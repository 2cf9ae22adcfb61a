"""The api's aiohttp application: `create_app(settings)` and `run(settings, stop=...)`.

Routes are mounted at `/` and again under the configured prefix (clfpy joins
`services` onto a base URL such as `https://api.example.org/servicectl-1/`).
The NATS connection and background tasks live in a cleanup context.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from services.api import (
    handlers_auth,
    handlers_logs,
    handlers_registry,
    handlers_services,
    openapi,
    tails,
)
from services.api.deletion import Deleter
from services.api.errors import error_middleware
from services.api.event_cache import EventCache
from services.api.index import ServiceIndex
from services.api.keys import BACKGROUND, BUS, SETTINGS, STORE
from services.api.responses import json_response
from services.api.store import RECENT_EVENTS, Store
from services.api.token_cache import TokenCache
from shared import bus as busmod
from shared.settings import Settings

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0
STOPPING = web.AppKey("stopping", asyncio.Event)


def add_routes(router: web.UrlDispatcher, prefix: str) -> None:
    p = prefix
    router.add_get(f"{p}/openapi.json", openapi.serve)
    router.add_get(f"{p}/healthz", healthz)
    router.add_get(f"{p}/auth/registry", handlers_registry.token_endpoint)
    router.add_post(f"{p}/auth/tokens", handlers_auth.create_token)
    router.add_get(f"{p}/auth/tokens/current", handlers_auth.show_token)
    router.add_delete(f"{p}/auth/tokens/current", handlers_auth.revoke_token)
    router.add_get(f"{p}/services", handlers_services.list_services)
    router.add_post(f"{p}/services", handlers_services.create_service)
    router.add_get(f"{p}/services/{{name}}", handlers_services.get_service)
    router.add_put(f"{p}/services/{{name}}", handlers_services.update_service)
    router.add_delete(f"{p}/services/{{name}}", handlers_services.delete_service)
    router.add_get(f"{p}/services/{{name}}/revisions", handlers_services.list_revisions)
    router.add_post(f"{p}/services/{{name}}/rollback", handlers_services.rollback_service)


async def healthz(request: web.Request) -> web.Response:
    bus = request.app[BUS]
    ok = bus.nc.is_connected
    return json_response({"nats": "connected" if ok else "disconnected"}, status=200 if ok else 503)


async def _nats_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    bus = await busmod.connect(settings, name="servicectl-api", stop=app[STOPPING])
    app[BUS] = bus
    index = ServiceIndex(bus)
    await index.load()
    events = EventCache(bus, RECENT_EVENTS)
    await events.start()
    tokens = TokenCache()
    await tokens.start(bus)
    app[STORE] = Store(bus, index, events, tokens)
    deleter = Deleter(app[STORE])
    app[handlers_services.DELETER] = deleter
    registry_session = handlers_registry.install(app, settings, deleter)
    app[BACKGROUND] = [
        asyncio.create_task(deleter.run_sweeper(SWEEP_INTERVAL_S, app[STOPPING]), name="sweeper"),
        asyncio.create_task(index.follow(app[STOPPING]), name="service-index"),
    ]
    yield
    for task in app[BACKGROUND]:
        task.cancel()
    await asyncio.gather(*app[BACKGROUND], return_exceptions=True)
    await registry_session.close()
    await bus.close()


def create_app(settings: Settings, *, stop: asyncio.Event | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=settings.max_body_bytes + 1024
    )
    app[SETTINGS] = settings
    app[STOPPING] = stop if stop is not None else asyncio.Event()
    views: dict[str, handlers_services.ViewHandler] = {
        "status": handlers_services.status_view,
        "docker": handlers_registry.docker_view,
        "logs": handlers_logs.logs_view,
    }
    app[handlers_services.VIEWS] = views
    app[handlers_services.LISTINGS] = {}
    add_routes(app.router, "")
    tails.add_log_routes(app.router, "")
    if settings.api_prefix:
        add_routes(app.router, settings.api_prefix)
        tails.add_log_routes(app.router, settings.api_prefix)
    tails.setup(app)
    app.cleanup_ctx.append(_nats_ctx)
    return app


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    app = create_app(settings, stop=stop)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port, reuse_address=True)
    await site.start()
    log.info(
        "api listening on http://%s:%d%s/",
        settings.api_host,
        settings.api_port,
        settings.api_prefix,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()

"""The api's aiohttp application: `create_app(settings)` and `run(settings, stop=...)`.

Routes are mounted at `/` and again under the configured prefix (clfpy joins
`services` onto a base URL such as `https://api.example.org/servicectl-1/`).
Each resource is opened and closed by a cleanup context of its own, in the
order they depend on each other (the bus first, closed last), so a failure
while starting closes exactly what was opened before it.
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
from services.api.event_cache import RECENT_EVENTS, EventCache
from services.api.httpserver import use_json_errors
from services.api.index import ServiceIndex
from services.api.keys import (
    BUS,
    CALLOUT,
    DELETER,
    EVENTS,
    INDEX,
    LIMITS,
    LISTINGS,
    SETTINGS,
    STOPPING,
    STORE,
    TOKENS,
    USERS,
    VIEWS,
    WAKEUPS,
    ViewHandler,
)
from services.api.limits import ProjectLimits, Wakeups
from services.api.nats_callout import NatsCallout
from services.api.responses import json_response
from services.api.store import Store
from services.api.token_cache import TokenCache
from services.api.users import UserDirectory
from shared import bus as busmod
from shared import natsconf
from shared.settings import Settings
from shared.tasks import supervised

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0


def add_routes(router: web.UrlDispatcher, prefix: str) -> None:
    p = prefix
    router.add_get(f"{p}/openapi.json", openapi.serve)
    router.add_get(f"{p}/healthz", healthz)
    router.add_get(f"{p}/auth/registry", handlers_registry.token_endpoint)
    router.add_post(f"{p}/auth/tokens", handlers_auth.create_token)
    router.add_get(f"{p}/auth/tokens/current", handlers_auth.show_token)
    router.add_delete(f"{p}/auth/tokens/current", handlers_auth.revoke_token)
    router.add_get(f"{p}/auth/nats", handlers_auth.nats_details)
    router.add_get(f"{p}/services", handlers_services.list_services)
    router.add_post(f"{p}/services", handlers_services.create_service)
    router.add_get(f"{p}/services/{{name}}", handlers_services.get_service)
    router.add_put(f"{p}/services/{{name}}", handlers_services.update_service)
    router.add_delete(f"{p}/services/{{name}}", handlers_services.delete_service)
    router.add_patch(f"{p}/services/{{name}}", handlers_services.patch_service)
    router.add_get(f"{p}/services/{{name}}/revisions", handlers_services.list_revisions)
    router.add_post(f"{p}/services/{{name}}/rollback", handlers_services.rollback_service)


async def healthz(request: web.Request) -> web.Response:
    ok = request.app[BUS].connected
    return json_response({"nats": "connected" if ok else "disconnected"}, status=200 if ok else 503)


# ------------------------------------------------------------------ resources
async def _bus_ctx(app: web.Application) -> AsyncIterator[None]:
    bus = await busmod.connect(
        app[SETTINGS], name="servicectl-api", identity=natsconf.API, stop=app[STOPPING]
    )
    app[BUS] = bus
    app[USERS] = UserDirectory(bus)
    settings = app[SETTINGS]
    app[LIMITS] = ProjectLimits(settings.max_follows_per_project, settings.log_reads_per_project)
    app[WAKEUPS] = Wakeups(bus)
    try:
        yield
    finally:
        await bus.close()


async def _index_ctx(app: web.Application) -> AsyncIterator[None]:
    index = ServiceIndex(app[BUS])
    await index.load()
    app[INDEX] = index
    stop = app[STOPPING]
    follower = asyncio.create_task(
        supervised("service-index", lambda: index.follow(stop), stop), name="service-index"
    )
    try:
        yield
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def _events_ctx(app: web.Application) -> AsyncIterator[None]:
    events = EventCache(app[BUS], RECENT_EVENTS)
    await events.start()
    app[EVENTS] = events
    try:
        yield
    finally:
        await events.stop()


async def _tokens_ctx(app: web.Application) -> AsyncIterator[None]:
    tokens = TokenCache()
    await tokens.start(app[BUS])
    app[TOKENS] = tokens
    try:
        yield
    finally:
        await tokens.stop()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = Store(app[BUS], app[INDEX], app[EVENTS], app[TOKENS])
    await store.claim_existing_paths()
    app[STORE] = store
    yield


async def _deleter_ctx(app: web.Application) -> AsyncIterator[None]:
    deleter = Deleter(app[STORE])
    app[DELETER] = deleter
    stop = app[STOPPING]
    sweeper = asyncio.create_task(
        supervised("deletion-sweeper", lambda: deleter.run_sweeper(SWEEP_INTERVAL_S, stop), stop),
        name="deletion-sweeper",
    )
    try:
        yield
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)


async def _callout_ctx(app: web.Application) -> AsyncIterator[None]:
    """End users' NATS logins (auth callout) and their revocation."""
    settings = app[SETTINGS]
    callout = await busmod.connect_control(settings, natsconf.CALLOUT, "servicectl-api-callout")
    try:
        system = await busmod.connect_control(settings, natsconf.SYSTEM, "servicectl-api-sys")
    except BaseException:
        await callout.close()
        raise
    service = NatsCallout(settings, app[BUS], app[STORE], callout, system)
    forget = app[TOKENS].on_change(service.revoked)
    try:
        await service.start()
        app[CALLOUT] = service
        yield
    finally:
        forget()
        await callout.close()
        await system.close()


def create_app(settings: Settings, *, stop: asyncio.Event | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=settings.max_body_bytes + 1024
    )
    app[SETTINGS] = settings
    app[STOPPING] = stop if stop is not None else asyncio.Event()
    views: dict[str, ViewHandler] = {
        "status": handlers_services.status_view,
        "docker": handlers_registry.docker_view,
        "logs": handlers_logs.logs_view,
    }
    app[VIEWS] = views
    app[LISTINGS] = {}
    add_routes(app.router, "")
    tails.add_log_routes(app.router, "")
    if settings.api_prefix:
        add_routes(app.router, settings.api_prefix)
        tails.add_log_routes(app.router, settings.api_prefix)
    tails.setup(app)
    app.cleanup_ctx.extend(
        [
            _bus_ctx,
            _index_ctx,
            _events_ctx,
            _tokens_ctx,
            _store_ctx,
            _callout_ctx,
            _deleter_ctx,
            handlers_registry.registry_ctx,
        ]
    )
    return app


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    app = create_app(settings, stop=stop)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    use_json_errors(runner)
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

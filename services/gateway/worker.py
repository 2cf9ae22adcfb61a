"""The gateway worker: follow the routes bucket and keep Caddy's config equal to it.

Level-triggered: whatever changed, the whole configuration is rebuilt from the
routes known and loaded if Caddy's differs (this also repairs a restarted
Caddy). After a route changes, the gateway acknowledges it in the gateway
bucket once Caddy serves it and the upstreams it dropped have no request in
flight, so the deployer knows when an old task may be stopped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgspec

from services.gateway.caddy_admin import CaddyAdmin, CaddyUnavailable
from services.gateway.caddy_config import build_config
from shared import bus as busmod
from shared import kv
from shared.bus import Bus, BusError
from shared.clock import iso_now
from shared.models import GatewayAck, Route, decode
from shared.settings import Settings
from shared.tasks import run_until_stopped

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 2.0
RESCAN_INTERVAL_S = 30.0
DRAIN_POLL_S = 0.05
DRAIN_TIMEOUT_S = 60.0


class Gateway:
    def __init__(self, settings: Settings, bus: Bus, caddy: CaddyAdmin) -> None:
        self.settings = settings
        self.bus = bus
        self.caddy = caddy
        self.routes: dict[str, tuple[Route, int]] = {}
        self.applied: dict[str, tuple[Route, int]] = {}
        self.pending_acks: dict[str, tuple[int, set[str], float]] = {}
        self.loaded: dict[str, Any] | None = None
        self.changed = asyncio.Event()
        self.rewatch = asyncio.Event()
        self.ready = False

    # ------------------------------------------------------------ inputs
    def set_route(self, key: str, value: bytes | None, revision: int) -> None:
        if value:
            try:
                self.routes[key] = (decode(Route, value), revision)
            except msgspec.DecodeError:
                log.warning("ignoring undecodable route %s", key)
                return
        else:
            self.routes.pop(key, None)
        self.changed.set()

    async def rescan(self) -> None:
        found = await kv.scan(self.bus.kv.routes, ">", Route)
        fresh = {v.key: (v.value, v.revision) for v in found}
        if fresh != self.routes:
            self.routes = fresh
            self.changed.set()

    async def watch(self, stop: asyncio.Event) -> None:
        """Apply route changes as they happen; re-create the watcher after reconnects."""
        await kv.follow(self.bus.kv.routes, ">", self.set_route, stop, self.rewatch)

    # ------------------------------------------------------------ output
    async def sync(self) -> None:
        """Make Caddy's config match the routes; queue acknowledgements."""
        desired = build_config(self.settings, {k: r for k, (r, _) in self.routes.items()})
        # Routes changed since the last load: load without asking. Otherwise compare with
        # what Caddy has, which also catches a Caddy that restarted with its base config.
        if desired != self.loaded or await self.caddy.config() != desired:
            await self.caddy.load(desired)
            self.loaded = desired
            log.info("loaded %d routes into Caddy", len(self.routes))
        now = asyncio.get_running_loop().time()
        for key, (route, rev) in self.routes.items():
            before = self.applied.get(key)
            if before is not None and before[1] == rev:
                continue
            dropped = set(before[0].upstreams) if before else set()
            since = now
            waiting = self.pending_acks.get(key)
            if waiting is not None:
                # still draining an earlier change: keep waiting for those upstreams too
                dropped |= waiting[1]
                since = waiting[2]
            self.pending_acks[key] = (rev, dropped - set(route.upstreams), since)
        for key in set(self.applied) - set(self.routes):
            self.pending_acks.pop(key, None)
        self.applied = dict(self.routes)
        if not self.ready:
            self.ready = True
            log.info("gateway ready: %d routes", len(self.routes))

    async def acknowledge(self) -> None:
        """Ack routes whose dropped upstreams have no requests in flight any more."""
        if not self.pending_acks:
            return
        inflight = await self.caddy.upstream_requests()
        now = asyncio.get_running_loop().time()
        for key, (rev, dropped, since) in list(self.pending_acks.items()):
            busy = [u for u in dropped if inflight.get(u, 0) > 0]
            if busy and now - since < DRAIN_TIMEOUT_S:
                continue
            if busy:
                log.warning("%s: upstreams %s still busy after %ss", key, busy, DRAIN_TIMEOUT_S)
            await kv.put(
                self.bus.kv.gateway,
                key,
                GatewayAck(route_revision=rev, drained=True, applied_at=iso_now()),
            )
            del self.pending_acks[key]

    async def run_sync(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_rescan = loop.time()
        while not stop.is_set():
            try:
                if loop.time() >= next_rescan:
                    await self.rescan()
                    next_rescan = loop.time() + RESCAN_INTERVAL_S
                self.changed.clear()
                await self.sync()
                while self.pending_acks and not self.changed.is_set() and not stop.is_set():
                    await self.acknowledge()
                    if self.pending_acks:
                        # poll the drain, but wake at once for a route change
                        try:
                            await asyncio.wait_for(self.changed.wait(), DRAIN_POLL_S)
                        except TimeoutError:
                            pass
            except CaddyUnavailable as err:
                log.warning("Caddy: %s", err)
                await _sleep_or_stop(stop, 0.5)
                continue
            except BusError as err:
                log.warning("NATS: %s", err)
                await _sleep_or_stop(stop, 0.5)
                continue
            try:
                await asyncio.wait_for(self.changed.wait(), CHECK_INTERVAL_S)
            except TimeoutError:
                pass


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    bus = await busmod.connect(settings, name="servicectl-gateway", stop=stop)
    async with aiohttp.ClientSession() as session:
        gateway = Gateway(settings, bus, CaddyAdmin(session, settings.caddy_admin_url))

        async def on_reconnect() -> None:
            gateway.rewatch.set()
            gateway.changed.set()

        bus.reconnect_callbacks.append(on_reconnect)
        try:
            await run_until_stopped(
                stop,
                {
                    "watch-routes": lambda: gateway.watch(stop),
                    "sync": lambda: gateway.run_sync(stop),
                },
            )
        finally:
            await bus.close()

"""The gateway worker: follow the routes bucket and publish it to the data plane.

Two outputs, both level-triggered:
- Caddy's configuration, which is the same whatever is deployed: loaded when
  Caddy does not have it (at start, and after Caddy restarted).
- the routes file the DNS responder answers from (`<project>-<service>` ->
  live upstreams), replaced atomically whenever a route changes.

After a route changes, the gateway acknowledges it in the gateway bucket once
Caddy must have picked it up (the DNS responder's poll plus Caddy's SRV
refresh) and the upstreams it dropped have no request in flight, so the
deployer knows when an old task may be stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import aiohttp
import msgspec

from services.gateway.caddy_admin import CaddyAdmin, CaddyUnavailable
from services.gateway.caddy_config import SRV_REFRESH_S, build_config
from services.gateway.dns.server import POLL_S as DNS_POLL_S
from services.gateway.dns.table import routes_to_json
from shared import bus as busmod
from shared import kv, names
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
# after the routes file changed, Caddy may still use its cached answer this long
PICKUP_S = DNS_POLL_S + SRV_REFRESH_S + 0.05


def dns_upstream(upstream: str) -> str:
    """How Caddy names an upstream it got from the DNS responder."""
    return f"{names.DNS_TARGET}:{upstream.rsplit(':', 1)[1]}"


class Gateway:
    def __init__(self, settings: Settings, bus: Bus, caddy: CaddyAdmin) -> None:
        self.settings = settings
        self.bus = bus
        self.caddy = caddy
        self.config: dict[str, Any] = build_config(settings)
        self.routes: dict[str, tuple[Route, int]] = {}
        self.written: dict[str, tuple[Route, int]] | None = None
        self.pending_acks: dict[str, tuple[int, set[str], float]] = {}
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

    # ------------------------------------------------------------ outputs
    async def ensure_caddy(self) -> None:
        """Load Caddy's configuration if it does not have it (first start, or restarted)."""
        if await self.caddy.config() != self.config:
            await self.caddy.load(self.config)
            log.info("loaded the gateway configuration into Caddy")

    def write_routes(self) -> None:
        table = {
            names.dns_service_label(r.project, r.service): r.upstreams
            for r, _ in self.routes.values()
        }
        path = self.settings.gateway_routes_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(routes_to_json(table))
        os.replace(tmp, path)

    def publish(self) -> None:
        """Write the routes file if the routes changed, and queue acknowledgements."""
        if self.written == self.routes:
            return
        self.write_routes()
        now = asyncio.get_running_loop().time()
        previous = self.written or {}
        for key, (route, rev) in self.routes.items():
            before = previous.get(key)
            if before is not None and before[1] == rev:
                continue
            dropped = set(before[0].upstreams) if before else set()
            waiting = self.pending_acks.get(key)
            if waiting is not None:
                dropped |= waiting[1]  # still draining an earlier change
            self.pending_acks[key] = (rev, dropped - set(route.upstreams), now)
        for key in set(previous) - set(self.routes):
            self.pending_acks.pop(key, None)
        self.written = dict(self.routes)
        log.info("published %d routes", len(self.routes))

    async def acknowledge(self) -> None:
        """Ack routes Caddy uses by now, once their dropped upstreams are idle."""
        if not self.pending_acks:
            return
        now = asyncio.get_running_loop().time()
        inflight = await self.caddy.upstream_requests()
        for key, (rev, dropped, since) in list(self.pending_acks.items()):
            if now - since < PICKUP_S:
                continue
            busy = [u for u in dropped if inflight.get(dns_upstream(u), 0) > 0]
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
        next_check = loop.time()
        while not stop.is_set():
            try:
                if loop.time() >= next_rescan:
                    await self.rescan()
                    next_rescan = loop.time() + RESCAN_INTERVAL_S
                if loop.time() >= next_check:
                    await self.ensure_caddy()
                    next_check = loop.time() + CHECK_INTERVAL_S
                self.changed.clear()
                self.publish()
                if not self.ready:
                    self.ready = True
                    log.info("gateway ready: %d routes", len(self.routes))
                while self.pending_acks and not self.changed.is_set() and not stop.is_set():
                    await self.acknowledge()
                    if self.pending_acks:
                        try:  # poll the drain, but wake at once for a route change
                            await asyncio.wait_for(self.changed.wait(), DRAIN_POLL_S)
                        except TimeoutError:
                            pass
            except CaddyUnavailable as err:
                log.warning("Caddy: %s", err)
                next_check = loop.time()
                await _sleep_or_stop(stop, 0.5)
                continue
            except (BusError, OSError) as err:
                log.warning("%s", err)
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

        bus.on_reconnect(on_reconnect)
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

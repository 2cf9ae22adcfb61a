"""The gateway worker: keep HAProxy's routes equal to the routes bucket, and acknowledge them.

Follows the routes bucket (`<project>.<service>` -> upstreams) and, on every
change, reads HAProxy's state through its runtime API, plans the commands that
bring it closer to the routes (`services.gateway.plan`) and runs them at once:
no reload for a deploy, a replace, a scale or a delete. It then acknowledges a
route in the gateway bucket (`GatewayAck`) as soon as HAProxy serves it and the
upstreams it dropped have no request in flight, which is when the deployer may
stop their task. While a dropped upstream still drains, it polls HAProxy
(from 5 ms, backing off to 100 ms).

It also keeps HAProxy's files (configuration with every route, map) up to
date, so that HAProxy restarted or reloaded starts with all the routes, and it
checks every `CHECK_S` that HAProxy's worker process is the same: a new one
(a restart, a reload) gets the full routing again at once. When the pool of
slot backends is too small it grows it with a seamless reload, and holds back
acknowledgements a still-running old worker could contradict.

HAProxy serves on its own: this process (or NATS) being down changes nothing
for users' requests, only route changes wait.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from services.gateway import files, haproxy_config
from services.gateway.haproxy_api import CommandRefused, HAProxy, ProxyUnavailable, describe
from services.gateway.model import Command, ProxyState
from services.gateway.plan import (
    Desired,
    Generation,
    Layout,
    generation,
    layout,
    plan,
    pool_size,
    unchanged_since,
)
from shared import bus as busmod
from shared import kv, names, natsconf
from shared.bus import Bus, BusError
from shared.clock import iso_now
from shared.models import GatewayAck, Route, decode
from shared.settings import Settings
from shared.tasks import run_until_stopped

log = logging.getLogger(__name__)

CHECK_S = 0.25  # idle: is HAProxy's worker still the same process?
RESYNC_S = 5.0  # idle: read HAProxy's whole state anyway
RESCAN_S = 30.0  # read the routes bucket anew, in case the watcher missed a change
POLL_MIN_S = 0.005  # while an upstream drains or a command was refused, from ...
POLL_MAX_S = 0.1  # ... to
DOWN_RETRY_S = 0.1  # HAProxy does not answer
DRAIN_TIMEOUT_S = 60.0  # acknowledge anyway (with a warning) after this long
RELOAD_WAIT_S = 10.0
RELOAD_RETRY_S = 30.0
REFUSAL_LOG_S = 60.0


def segment_of(route: Route) -> str:
    """The first path segment of the service's URLs: the key in HAProxy's routes map."""
    return names.deployment_path(route.project, route.service).lstrip("/")


class Gateway:
    def __init__(self, settings: Settings, bus: Bus, proxy: HAProxy) -> None:
        self.settings = settings
        self.bus = bus
        self.proxy = proxy
        self.routes: dict[str, tuple[Route, int]] = {}  # key -> route, KV revision
        self.loaded = False
        self.acked: dict[str, int] = {}  # key -> KV revision acknowledged
        self.waiting: dict[str, tuple[int, float]] = {}  # key -> revision, since (loop time)
        self.changed = asyncio.Event()
        self.rewatch = asyncio.Event()
        self.state: ProxyState | None = None  # as the last pass left it
        self.pid: int | None = None
        self.old: list[Generation] = []  # workers that may still finish requests
        self.written: Layout | None = None
        self.reload_after = 0.0
        self.down_since: float | None = None
        self.collisions: set[str] = set()
        self.refusals: dict[str, float] = {}  # message -> when last seen (logged once a minute)
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
        acks = await kv.scan(self.bus.kv.gateway, ">", GatewayAck)
        for v in acks:
            if v.value.drained and v.key in fresh:
                self.acked[v.key] = max(self.acked.get(v.key, 0), v.value.route_revision)
        if fresh != self.routes or not self.loaded:
            self.routes = fresh
            self.changed.set()
        self.loaded = True

    async def watch(self, stop: asyncio.Event) -> None:
        """Apply route changes as they happen; re-create the watcher after reconnects."""
        await kv.follow(self.bus.kv.routes, ">", self.set_route, stop, self.rewatch)

    def desired(self) -> tuple[Desired, dict[str, tuple[str, int]]]:
        """Segment -> upstreams, and segment -> (routes key, KV revision)."""
        out: dict[str, tuple[str, ...]] = {}
        owners: dict[str, tuple[str, int]] = {}
        for key in sorted(self.routes):
            route, revision = self.routes[key]
            segment = segment_of(route)
            if segment in out:
                if key not in self.collisions:
                    self.collisions.add(key)
                    other = owners[segment][0]
                    log.error("%s: path /%s is %s's already; not routed", key, segment, other)
                continue
            out[segment] = tuple(dict.fromkeys(route.upstreams))
            owners[segment] = (key, revision)
        return out, owners

    # ------------------------------------------------------------ one pass
    async def sync(self) -> bool:
        """Read HAProxy, run the next commands, acknowledge what is done.

        True when commands ran (the next pass should follow at once)."""
        state = await self.proxy.read_state()
        self.note_worker(state)
        desired, owners = self.desired()
        step = plan(state, desired)
        try:
            failed = await self.run_commands(step.commands)
        finally:
            # if a command failed, the next pass reads what is there and goes on from it
            self.state = step.after
        if step.unplaced and await self.grow(step.after, desired):
            return True
        self.write_files(layout(step.after, desired, len(step.after.slots)))
        if self.old:
            await self.forget_old_workers()
        settled = frozenset(s for s in step.settled if step.after.routes.get(s) not in failed)
        await self.acknowledge(settled, desired, owners)
        return bool(step.commands) and not failed

    async def run_commands(self, commands: tuple[Command, ...]) -> set[str]:
        """Run the commands in order; one refused skips the rest of its slot's.

        The slots whose commands did not all run."""
        failed: set[str] = set()
        for cmd in commands:
            slot = getattr(cmd, "slot", None)
            if slot in failed:
                continue
            try:
                await self.proxy.execute(cmd)
            except CommandRefused as err:
                if slot is not None:
                    failed.add(slot)
                self.note_refusal(str(err))
        if commands:
            log.debug("ran %d commands: %s", len(commands), commands[:6])
        return failed

    def note_refusal(self, message: str) -> None:
        now = asyncio.get_running_loop().time()
        if now - self.refusals.get(message, -REFUSAL_LOG_S) >= REFUSAL_LOG_S:
            log.warning("HAProxy refused %s", message)
        self.refusals[message] = now

    def note_worker(self, state: ProxyState) -> None:
        if self.down_since is not None:
            log.info(
                "HAProxy answers again after %.1f s",
                asyncio.get_running_loop().time() - self.down_since,
            )
            self.down_since = None
        if state.pid == self.pid:
            return
        if self.pid is not None:
            log.warning(
                "HAProxy worker %d replaced by %d (%s): applying the %d routes",
                self.pid,
                state.pid,
                dict(describe(state)),
                len(self.routes),
            )
            if self.state is not None:
                self.old.append(generation(self.state))  # it may still be finishing requests
        self.pid = state.pid

    async def forget_old_workers(self) -> None:
        try:
            if await self.proxy.old_workers() == 0:
                self.old.clear()
        except ProxyUnavailable as err:
            log.debug("master CLI: %s", err)

    def pending(self) -> bool:
        _, owners = self.desired()
        return any(self.acked.get(key, 0) < rev for key, rev in owners.values())

    async def acknowledge(
        self, settled: frozenset[str], desired: Desired, owners: dict[str, tuple[str, int]]
    ) -> None:
        now = asyncio.get_running_loop().time()
        live = {key for key, _ in owners.values()}
        for key in [k for k in self.acked if k not in self.routes]:
            del self.acked[key]
        for key in [k for k in self.waiting if k not in live]:
            del self.waiting[key]
        for segment, (key, revision) in sorted(owners.items()):
            if self.acked.get(key, 0) >= revision:
                continue
            done = segment in settled and all(
                unchanged_since(old, desired, segment) for old in self.old
            )
            if not done:
                since = self.waiting.get(key)
                if since is None or since[0] != revision:
                    self.waiting[key] = (revision, now)
                    continue
                if now - since[1] < DRAIN_TIMEOUT_S:
                    continue
                log.warning(
                    "%s: dropped upstreams still busy after %.0f s; acknowledging anyway",
                    key,
                    DRAIN_TIMEOUT_S,
                )
            await kv.put(
                self.bus.kv.gateway,
                key,
                GatewayAck(route_revision=revision, drained=True, applied_at=iso_now()),
            )
            self.acked[key] = revision
            self.waiting.pop(key, None)

    # ------------------------------------------------------------ files and reloads
    def write_files(self, wanted: Layout) -> None:
        """HAProxy's files, for its next start or reload (it reads them only then)."""
        if wanted != self.written:
            files.write(haproxy_config.files(self.settings, wanted))
            self.written = wanted

    async def grow(self, state: ProxyState, desired: Desired) -> bool:
        """Reload HAProxy with a larger pool of slots; whether its new worker answers."""
        loop = asyncio.get_running_loop()
        if loop.time() < self.reload_after:
            return False
        size = pool_size(len(state.slots), state, desired)
        log.info(
            "%d routes need more than the %d slot backends: reloading HAProxy with %d",
            len(desired),
            len(state.slots),
            size,
        )
        self.write_files(layout(state, desired, size))
        await self.proxy.reload()
        deadline = loop.time() + RELOAD_WAIT_S
        while loop.time() < deadline:
            try:
                pid = (await self.proxy.info()).pid
            except ProxyUnavailable:
                pid = state.pid
            if pid != state.pid:
                log.info("HAProxy reloaded: worker %d took over from %d", pid, state.pid)
                self.old.append(generation(state))  # it finishes its requests meanwhile
                self.pid = pid
                return True
            await asyncio.sleep(0.02)
        self.reload_after = loop.time() + RELOAD_RETRY_S
        log.error("HAProxy did not reload within %.0f s (see its log)", RELOAD_WAIT_S)
        return False

    def write_files_while_down(self) -> None:
        if not self.loaded:
            return
        desired, _ = self.desired()
        count = len(self.state.slots) if self.state else self.settings.gateway_slots
        self.write_files(layout(self.state, desired, count))

    # ------------------------------------------------------------ the loop
    async def run_sync(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_rescan = loop.time()
        next_resync = loop.time()
        poll = POLL_MIN_S
        while not stop.is_set():
            again = False
            try:
                if loop.time() >= next_rescan or not self.loaded:
                    await self.rescan()
                    next_rescan = loop.time() + RESCAN_S
                self.changed.clear()
                again = await self.sync()
                next_resync = loop.time() + RESYNC_S
                if not self.ready:
                    self.ready = True
                    log.info("gateway ready: %d routes", len(self.routes))
            except ProxyUnavailable as err:
                if self.down_since is None:
                    self.down_since = loop.time()
                    log.warning("HAProxy does not answer: %s", err)
                self.write_files_while_down()
                await _wait(self.changed, stop, DOWN_RETRY_S)
                continue
            except (BusError, OSError) as err:
                log.warning("%s", err)
                await _wait(stop, stop, 0.5)
                continue
            if again:
                poll = POLL_MIN_S
                continue
            if self.pending():  # an upstream is draining: look again soon
                await _wait(self.changed, stop, poll)
                poll = min(POLL_MAX_S, poll * 2)
                continue
            poll = POLL_MIN_S
            await self.idle(stop, next_resync)

    async def idle(self, stop: asyncio.Event, until: float) -> None:
        """Wait for a route change, checking that HAProxy's worker stays the same one."""
        loop = asyncio.get_running_loop()
        while not stop.is_set() and loop.time() < until:
            if await _wait(self.changed, stop, CHECK_S):
                return
            try:
                if (await self.proxy.info()).pid != self.pid:
                    return
            except ProxyUnavailable:
                return


async def _wait(event: asyncio.Event, stop: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` or `stop` is set, or `seconds` passed; whether `event` is set."""
    if event.is_set() or stop.is_set():
        return event.is_set()
    waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return event.is_set()


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    bus = await busmod.connect(
        settings, name="servicectl-gateway", identity=natsconf.GATEWAY, stop=stop
    )
    proxy = HAProxy(
        settings.haproxy_socket_path, settings.haproxy_master_socket_path, settings.haproxy_map_path
    )
    gateway = Gateway(settings, bus, proxy)

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

"""The log collector worker: find this instance's containers and keep one follower per container.

Containers are found by Docker events (a container that starts gets a
follower at once) and by a periodic listing, which also catches whatever
happened while the collector, the event stream or dockerd was down, including
exited containers whose output was not fully published. Cursors of containers
that no longer exist are deleted after a while. On `stop`, followers save their
cursors and the NATS connection is drained.

This module wires things together; decisions live in `discovery`, I/O in the
adapters `docker_source` and `nats_sink`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.logs.discovery import ContainerInfo, stale_cursors, target_of, to_follow
from services.logs.docker_source import DockerSource
from services.logs.follower import Follower, Limits
from services.logs.nats_sink import LogSink
from shared import bus as busmod
from shared import natsconf
from shared.bus import BusError
from shared.docker import DockerUnavailable
from shared.settings import Settings
from shared.tasks import run_until_stopped

log = logging.getLogger(__name__)

RESYNC_INTERVAL_S = 5.0
GC_INTERVAL_S = 60.0
STOP_GRACE_S = 5.0
_RESTART_ACTIONS = frozenset({"start", "restart", "unpause"})


class Collector:
    def __init__(
        self, settings: Settings, source: DockerSource, sink: LogSink, stop: asyncio.Event
    ) -> None:
        self.settings = settings
        self.source = source
        self.sink = sink
        self.stop = stop
        self.limits = Limits(
            max_bytes=min(settings.log_max_line_bytes, sink.max_payload),
            keep_lines=settings.log_max_lines_per_task,
        )
        self.followers: dict[str, asyncio.Task[None]] = {}
        self.done: set[str] = set()  # stopped containers whose output is all published
        self.restarted: set[str] = set()  # started again while their follower was finishing
        self.seen: set[str] = set()
        self.strikes: dict[str, int] = {}
        self.resync_now = asyncio.Event()
        self.ready = False

    # ------------------------------------------------------------ followers
    def ensure_follower(self, info: ContainerInfo) -> None:
        target = target_of(info.id, info.labels, self.settings.instance)
        if target is None:
            log.debug("not following %s: missing or invalid labels", info.id[:12])
            return
        self.seen.add(info.id)
        if info.id in self.followers:
            return
        follower = Follower(target, self.source, self.sink, self.limits, self.stop)
        self.followers[info.id] = asyncio.create_task(
            self._follow(follower, info), name=target.short
        )

    async def _follow(self, follower: Follower, info: ContainerInfo) -> None:
        target = follower.target
        container_id = info.id
        complete = False
        try:
            complete = await follower.run()
        except Exception:
            log.exception("%s: follower failed", target.short)
        finally:
            self.followers.pop(container_id, None)
        if complete:
            self.done.add(container_id)
        if container_id in self.restarted and not self.stop.is_set():
            self.restarted.discard(container_id)
            self.done.discard(container_id)
            self.ensure_follower(info)

    # ------------------------------------------------------------ inputs
    async def watch_events(self) -> None:
        delay = 0.5
        while not self.stop.is_set():
            try:
                self.resync_now.set()  # whatever happened before the stream (re)opened
                async for action, info in self.source.events():
                    delay = 0.5
                    if not info.id:
                        continue
                    if action in _RESTART_ACTIONS:
                        self.done.discard(info.id)
                        if info.id in self.followers:
                            self.restarted.add(info.id)
                        self.ensure_follower(info)
                    elif action == "die" and info.id not in self.done:
                        self.ensure_follower(info)
            except DockerUnavailable as err:
                log.warning("%s; reconnecting in %.1fs", err, delay)
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(10.0, delay * 2)

    async def resync(self) -> list[ContainerInfo]:
        containers = await self.source.containers()
        for info in to_follow(containers, set(self.followers), self.done):
            self.ensure_follower(info)
        present = {c.id for c in containers}
        self.done &= present
        self.restarted &= present
        return containers

    async def collect_garbage(self, containers: list[ContainerInfo]) -> None:
        present = {c.id for c in containers}
        cursors = await self.sink.cursors()
        delete, self.strikes = stale_cursors(
            cursors,
            present,
            self.seen,
            self.strikes,
            time.time(),
            float(self.settings.log_max_age_s),
        )
        for key in delete:
            await self.sink.delete_cursor(key)
        self.seen &= present | (set(cursors) - set(delete))
        if delete:
            log.info("deleted the cursors of %d removed containers", len(delete))

    async def periodic(self) -> None:
        loop = asyncio.get_running_loop()
        next_gc = loop.time() + GC_INTERVAL_S
        while not self.stop.is_set():
            self.resync_now.clear()
            try:
                containers = await self.resync()
                if not self.ready:
                    self.ready = True
                    log.info(
                        "logs collector ready: instance %s, following %d containers",
                        self.settings.instance,
                        len(self.followers),
                    )
                if loop.time() >= next_gc:
                    next_gc = loop.time() + GC_INTERVAL_S
                    await self.collect_garbage(containers)
            except (DockerUnavailable, BusError) as err:
                log.warning("resync: %s", err)
            try:
                # `stop` cancels this loop (run_until_stopped)
                await asyncio.wait_for(self.resync_now.wait(), RESYNC_INTERVAL_S)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Let followers save their cursors (they watch `stop`), then cancel stragglers."""
        tasks = list(self.followers.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    try:
        bus = await busmod.connect(
            settings, name="servicectl-logs", identity=natsconf.LOGS, stop=stop
        )
    except BusError:
        if stop.is_set():
            return
        raise
    try:
        try:
            source = await DockerSource.connect(settings, stop)
        except DockerUnavailable:
            if stop.is_set():
                return
            raise
        collector = Collector(settings, source, LogSink(bus), stop)
        try:
            await run_until_stopped(
                stop,
                {"docker-events": collector.watch_events, "periodic": collector.periodic},
            )
        finally:
            await collector.close()
            await source.close()
    finally:
        await bus.close()

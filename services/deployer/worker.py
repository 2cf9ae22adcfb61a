"""The deployer process: reconcile every service's containers to its desired state.

Level-triggered. A service's key goes into the `KeyedQueue` when its record,
its gateway acknowledgement, its containers (Docker events) or its tasks'
health change, when the planner asked to look again at some time, and
periodically for every service; the queue runs `Reconciler.reconcile` for it,
one round at a time per service and several services in parallel. This module
only wires the triggers to the queue.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from services.deployer.docker_host import DockerHost
from services.deployer.engine import TaskEngine
from services.deployer.executor import Executor
from services.deployer.firewall import ensure_task_firewall
from services.deployer.health import HealthMonitor
from services.deployer.observe import Observer
from services.deployer.plan import Limits
from services.deployer.reconciler import Reconciler
from services.deployer.snapshot import ContainerSnapshot
from services.deployer.swarm_host import SwarmHost
from services.deployer.workqueue import KeyedQueue
from shared import bus as busmod
from shared import docker as shared_docker
from shared import kv, names, natsconf
from shared.bus import Bus, BusError
from shared.clock import iso_now
from shared.docker import DockerUnavailable
from shared.models import NodeInfo
from shared.settings import Settings
from shared.tasks import run_until_stopped

log = logging.getLogger(__name__)

WORKERS = 32
_INTERESTING = frozenset({"start", "die", "oom", "destroy", "stop", "kill"})
_EXITS = frozenset({"die", "oom", "kill"})
EXIT_RECHECKS_S = (0.05, 0.15, 0.4)


class Deployer:
    def __init__(
        self, settings: Settings, bus: Bus, host: TaskEngine, session: aiohttp.ClientSession
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.host = host
        self.health = HealthMonitor(session, self.enqueue, diagnose=host.listening_ports)
        self.containers = ContainerSnapshot(host)
        limits = Limits(
            deploy_deadline_s=settings.deploy_deadline_s,
            backoff_s=settings.restart_backoff_s,
            backoff_cap_s=settings.restart_backoff_cap_s,
            # Swarm admits tasks by their reservation itself (and says why one waits)
            capacity_mb=settings.capacity_mb if settings.engine == "docker" else 1 << 40,
        )
        observer = Observer(bus, self.containers, self.health, limits)
        self.executor = Executor(bus, host, observer.free_mb_now, self.on_stopped)
        self.reconciler = Reconciler(bus, observer, self.executor, self.health, self.containers)
        self.queue = KeyedQueue(
            self.reconciler.reconcile, workers=WORKERS, expected=(DockerUnavailable, BusError)
        )
        self.rewatch = asyncio.Event()

    # ------------------------------------------------------------ triggers
    def enqueue(self, key: str) -> None:
        if key and "." in key:
            self.queue.add(key)

    def _recheck(self, key: str) -> None:
        self.containers.invalidate()
        self.enqueue(key)

    def on_stopped(self, key: str) -> None:
        self.containers.invalidate()
        self.enqueue(key)

    def enqueue_all_known(self) -> None:
        for key in self.reconciler.known():
            self.enqueue(key)

    async def periodic(self, stop: asyncio.Event) -> None:
        ready = False
        while not stop.is_set():
            try:
                keys = await self.reconciler.keys_to_check()
                for key in keys:
                    self.enqueue(key)
                await self.host.remove_unused_networks(
                    {names.split_service_key(k)[0] for k in keys}
                )
                await self.publish_nodes()
                if not ready:
                    ready = True
                    log.info("deployer ready: instance %s", self.settings.instance)
            except (DockerUnavailable, BusError) as err:
                log.warning("resync: %s", err)
            try:
                await asyncio.wait_for(stop.wait(), self.settings.reconcile_interval_s)
            except TimeoutError:
                pass

    async def publish_nodes(self) -> None:
        """The hosts and their memory, for the api (largest reservation) and operators."""
        now = iso_now()
        found = {n["name"]: NodeInfo(**n, updated_at=now) for n in await self.host.nodes()}
        for name, info in found.items():
            await kv.put(self.bus.kv.nodes, name, info)
        for name in set(await kv.keys(self.bus.kv.nodes, ">")) - set(found):
            await kv.purge(self.bus.kv.nodes, name)

    async def docker_events(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                async for action, key in self.host.events():
                    delay = 0.5
                    self.containers.invalidate()
                    if key and action in _INTERESTING:
                        self.enqueue(key)
                    if key and action in _EXITS:
                        # Docker's container list still says "running" for tens of
                        # milliseconds after its die event: look again shortly
                        loop = asyncio.get_running_loop()
                        for delay_s in EXIT_RECHECKS_S:
                            loop.call_later(delay_s, self._recheck, key)
            except DockerUnavailable as err:
                log.warning("%s; reconnecting in %.1fs", err, delay)
            self.containers.invalidate()
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)
            # the engine may have restarted: look at everything again
            self.enqueue_all_known()

    async def watch_bucket(self, bucket_name: str, stop: asyncio.Event) -> None:
        bucket = getattr(self.bus.kv, bucket_name)
        await kv.follow(bucket, ">", lambda key, _v, _r: self.enqueue(key), stop, self.rewatch)

    async def close(self) -> None:
        await self.executor.close()
        await self.health.close()


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    password = settings.deployer_secret_path.read_text().strip()
    if settings.task_firewall:
        await ensure_task_firewall()
    bus = await busmod.connect(
        settings, name="servicectl-deployer", identity=natsconf.DEPLOYER, stop=stop
    )
    docker = await shared_docker.connect(settings, stop)
    session = aiohttp.ClientSession()
    host: TaskEngine = (
        SwarmHost(docker, settings, password)
        if settings.engine == "swarm"
        else DockerHost(docker, settings, password)
    )
    deployer = Deployer(settings, bus, host, session)

    async def on_reconnect() -> None:
        deployer.rewatch.set()
        deployer.enqueue_all_known()

    bus.on_reconnect(on_reconnect)
    try:
        await run_until_stopped(
            stop,
            {
                "work-queue": deployer.queue.run,
                "periodic": lambda: deployer.periodic(stop),
                "docker-events": lambda: deployer.docker_events(stop),
                "watch-services": lambda: deployer.watch_bucket("services", stop),
                "watch-gateway": lambda: deployer.watch_bucket("gateway", stop),
            },
        )
    finally:
        await deployer.close()
        await session.close()
        await shared_docker.close(docker)
        await bus.close()

"""The deployer process: reconcile every service's containers to its desired state.

Level-triggered. A service is reconciled when its record, its gateway
acknowledgement, its containers (Docker events) or its tasks' health change,
when a planned wake-up time comes, and periodically for every service. Work is
serialised per service and runs in parallel across services. Each round reads
the state, asks `plan` what to do, lets the `Executor` do it and publishes the
service's status.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from services.deployer.docker_host import DockerHost
from services.deployer.executor import Executor, Outcome
from services.deployer.health import HealthMonitor, Probe
from services.deployer.model import HealthView, Memo, Observed, RouteView
from services.deployer.plan import Inputs, Limits, plan
from services.deployer.snapshot import ContainerSnapshot
from services.deployer.status import build_status
from shared import bus as busmod
from shared import docker as shared_docker
from shared import kv, names
from shared.bus import Bus, BusError
from shared.docker import DockerUnavailable
from shared.models import (
    GatewayAck,
    LogCursor,
    Route,
    ServiceRecord,
    ServiceStatus,
    TaskDefinition,
)
from shared.rules import health_check_path, parse_status_codes
from shared.settings import Settings
from shared.tasks import run_until_stopped

log = logging.getLogger(__name__)

MAX_IMMEDIATE_ROUNDS = 20
HOST = "local"


class Deployer:
    def __init__(
        self, settings: Settings, bus: Bus, host: DockerHost, session: aiohttp.ClientSession
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.host = host
        self.health = HealthMonitor(session, self.enqueue)
        self.containers = ContainerSnapshot(host)
        self.admission = asyncio.Lock()
        self.executor = Executor(settings, bus, host, self.admission, self.free_mb, self.on_stopped)
        self.limits = Limits(
            deploy_deadline_s=settings.deploy_deadline_s,
            backoff_s=settings.restart_backoff_s,
            backoff_cap_s=settings.restart_backoff_cap_s,
            capacity_mb=settings.capacity_mb,
        )
        self.memos: dict[str, Memo] = {}
        self.start_problems: dict[str, tuple[int, str, bool]] = {}
        self.last_status: dict[str, ServiceStatus] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.dirty: set[str] = set()
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.rewatch = asyncio.Event()

    # ------------------------------------------------------------ scheduling
    def enqueue(self, key: str) -> None:
        if not key or "." not in key:
            return
        if key in self.workers:
            self.dirty.add(key)
            return
        self.workers[key] = asyncio.create_task(self._work(key), name=f"reconcile-{key}")

    def on_stopped(self, key: str) -> None:
        self.containers.invalidate()
        self.enqueue(key)

    def wake_at(self, key: str, at: float) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, at - time.time())
        old = self.timers.pop(key, None)
        if old is not None:
            old.cancel()
        self.timers[key] = loop.call_later(delay, self.enqueue, key)

    async def _work(self, key: str) -> None:
        rounds = 0
        delay = 0.5
        try:
            while True:
                self.dirty.discard(key)
                try:
                    changed = await self.reconcile(key)
                    delay = 0.5
                except (DockerUnavailable, BusError) as err:
                    log.warning("%s: %s; retrying in %.1fs", key, err, delay)
                    await asyncio.sleep(delay)
                    delay = min(10.0, delay * 2)
                    self.dirty.add(key)
                    continue
                except Exception:
                    log.exception("%s: reconciliation failed", key)
                    await asyncio.sleep(delay)
                    delay = min(10.0, delay * 2)
                    continue
                rounds = rounds + 1 if changed else 0
                if changed and rounds < MAX_IMMEDIATE_ROUNDS:
                    continue
                if key not in self.dirty:
                    break
        finally:
            self.workers.pop(key, None)

    # ------------------------------------------------------------ observation
    async def free_mb(self) -> int:
        return self.settings.capacity_mb - await self.host.reserved_mb()

    async def _route(self, key: str) -> RouteView | None:
        route = await kv.get(self.bus.kv.routes, key, Route)
        if route is None:
            return None
        ack = await kv.get(self.bus.kv.gateway, key, GatewayAck)
        acked = ack.value.route_revision if ack and ack.value.drained else 0
        return RouteView(tuple(route.value.upstreams), route.revision, acked)

    async def _logs_done(self, task: Observed) -> Observed:
        cursor = await kv.get(
            self.bus.kv.log_cursors, names.log_cursor_key(task.container_id), LogCursor
        )
        if cursor is not None and cursor.value.done:
            return Observed(**{**task.__dict__, "logs_done": True})
        return task

    async def _definitions(
        self, record: ServiceRecord | None, memo: Memo
    ) -> dict[int, TaskDefinition]:
        defs: dict[int, TaskDefinition] = {}
        if record is None or record.definition is None:
            return defs
        defs[record.revision] = record.definition
        serving = memo.serving_revision
        if serving and serving not in defs:
            found = await kv.get(
                self.bus.kv.revisions,
                names.revision_key(record.project, record.name, serving),
                TaskDefinition,
            )
            if found is not None and found.value.service_uid == record.uid:
                defs[serving] = found.value
        return defs

    def _watch_health(self, key: str, record: ServiceRecord, tasks: list[Observed]) -> None:
        hc = record.health_check
        path = health_check_path(record.project, record.name, hc)
        codes = tuple(parse_status_codes(hc.status_codes if hc else "200-499"))
        interval = float(hc.interval if hc else 10)
        for t in tasks:
            if t.state == "running" and t.host_port:
                self.health.watch(
                    key,
                    t.container_id,
                    Probe(f"http://127.0.0.1:{t.host_port}{path}", path, codes, interval),
                )

    # ------------------------------------------------------------ one round
    async def reconcile(self, key: str) -> bool:
        """Plan and act once for a service; True if anything was changed."""
        project, service = names.split_service_key(key)
        found = await kv.get(self.bus.kv.services, key, ServiceRecord)
        record = found.value if found else None
        memo = self.memos.get(key)
        if memo is None:
            prior = await kv.get(self.bus.kv.status, key, ServiceStatus)
            memo = Memo.from_status(prior.value if prior else None)
        all_tasks = await self.containers.get()
        tasks = [t for p, s, t in all_tasks if p == project and s == service]
        tasks = [t if t.live else await self._logs_done(t) for t in tasks]
        free = self.settings.capacity_mb - sum(
            t.memory_reservation for _, _, t in all_tasks if t.live
        )
        if record is not None and not record.deleting:
            self._watch_health(key, record, [t for t in tasks if t.service_uid == record.uid])
        for t in tasks:
            if t.state != "running":
                self.health.forget(t.container_id)
        health: dict[str, HealthView] = {}
        for t in tasks:
            view = self.health.get(t.container_id)
            if view is not None:
                health[t.container_id] = view
        inputs = Inputs(
            now=time.time(),
            project=project,
            service=service,
            record=record,
            tasks=tuple(tasks),
            health=health,
            route=await self._route(key),
            definitions=await self._definitions(record, memo),
            free_mb=free,
            limits=self.limits,
            start_problem=self.start_problems.pop(key, None),
        )
        the_plan, memo = plan(inputs, memo)
        self.memos[key] = memo
        if record is not None or tasks:
            # publish what was decided before acting: stops and pulls can take a while
            await self._publish_status(key, build_status(inputs, memo, HOST))
        outcome = Outcome()
        try:
            await self.executor.run(key, the_plan.actions, outcome)
        finally:
            if outcome.changed:
                self.containers.invalidate()
            if outcome.start_problem is not None:
                self.start_problems[key] = outcome.start_problem
        if outcome.finished:
            await self._finish(key, inputs, memo)
            return False
        if the_plan.wake_at is not None:
            self.wake_at(key, the_plan.wake_at)
        return outcome.changed or outcome.start_problem is not None

    async def _publish_status(self, key: str, status: ServiceStatus) -> None:
        last = self.last_status.get(key)
        if last is not None and _same_status(last, status):
            return
        await kv.put(self.bus.kv.status, key, status)
        self.last_status[key] = status

    async def _finish(self, key: str, inputs: Inputs, memo: Memo) -> None:
        """Nothing left on this host: mark drained (deleting) or forget (deleted)."""
        if inputs.record is None:
            await kv.purge(self.bus.kv.status, key)
        else:
            await self._publish_status(key, build_status(inputs, memo, HOST, drained=True))
        self.memos.pop(key, None)
        self.last_status.pop(key, None)
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    # ------------------------------------------------------------ triggers
    async def resync(self) -> None:
        keys = set(await kv.keys(self.bus.kv.services, ">"))
        listing = await self.containers.get()
        keys |= {names.service_key(p, s) for p, s, _ in listing if p and s}
        keys |= set(self.memos)
        keys |= set(await kv.keys(self.bus.kv.routes, ">"))
        for key in keys:
            self.enqueue(key)
        running = {t.container_id for _, _, t in listing if t.live}
        self.health.keep_only(running)

    async def periodic(self, stop: asyncio.Event) -> None:
        ready = False
        while not stop.is_set():
            try:
                await self.resync()
                if not ready:
                    ready = True
                    log.info("deployer ready: instance %s", self.settings.instance)
            except (DockerUnavailable, BusError) as err:
                log.warning("resync: %s", err)
            try:
                await asyncio.wait_for(stop.wait(), self.settings.reconcile_interval_s)
            except TimeoutError:
                pass

    async def docker_events(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                async for action, project, service in self.host.events():
                    delay = 0.5
                    self.containers.invalidate()
                    if project and service and action in _INTERESTING:
                        self.enqueue(names.service_key(project, service))
            except DockerUnavailable as err:
                log.warning("%s; reconnecting in %.1fs", err, delay)
            self.containers.invalidate()
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)
            # the engine may have restarted: look at everything again
            self.enqueue_all_known()

    def enqueue_all_known(self) -> None:
        for key in list(self.memos):
            self.enqueue(key)

    async def watch_bucket(self, bucket_name: str, stop: asyncio.Event) -> None:
        bucket = getattr(self.bus.kv, bucket_name)
        await kv.follow(bucket, ">", lambda key, _v, _r: self.enqueue(key), stop, self.rewatch)

    async def close(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        workers = list(self.workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await self.executor.close()
        await self.health.close()


_INTERESTING = frozenset({"start", "die", "oom", "destroy", "stop", "kill"})


def _same_status(a: ServiceStatus, b: ServiceStatus) -> bool:
    return a.__struct_fields__ == b.__struct_fields__ and all(
        getattr(a, f) == getattr(b, f) for f in a.__struct_fields__ if f != "updated_at"
    )


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    password = settings.deployer_secret_path.read_text().strip()
    bus = await busmod.connect(settings, name="servicectl-deployer", stop=stop)
    docker = await shared_docker.connect(settings, stop)
    session = aiohttp.ClientSession()
    deployer = Deployer(settings, bus, DockerHost(docker, settings, password), session)

    async def on_reconnect() -> None:
        deployer.rewatch.set()
        deployer.enqueue_all_known()

    bus.on_reconnect(on_reconnect)
    try:
        await run_until_stopped(
            stop,
            {
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

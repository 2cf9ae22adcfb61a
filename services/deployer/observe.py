"""Observation: everything the planner needs about one service, read from NATS and Docker.

`Observer.inputs` builds the planner's `Inputs`: the desired record, this
host's containers of the service (from the shared `ContainerSnapshot`), their
health, the route and the gateway's acknowledgement, the definitions of the
revisions involved and the memory still free. It reads; it never acts.
"""

from __future__ import annotations

import time

from services.deployer.health import HealthMonitor
from services.deployer.model import HealthView, Memo, Observed, RouteView, StartFailure
from services.deployer.plan import Inputs, Limits
from services.deployer.snapshot import ContainerSnapshot, Listing
from shared import kv, names
from shared.bus import Bus
from shared.models import GatewayAck, LogCursor, Route, ServiceRecord, ServiceStatus, TaskDefinition


def free_mb(capacity_mb: int, listing: Listing) -> int:
    """Memory not reserved by the platform's live containers on this host."""
    return capacity_mb - sum(t.memory_reservation for _, _, t in listing if t.live)


class Observer:
    def __init__(
        self,
        bus: Bus,
        containers: ContainerSnapshot,
        health: HealthMonitor,
        limits: Limits,
    ) -> None:
        self.bus = bus
        self.containers = containers
        self.health = health
        self.limits = limits

    async def record(self, key: str) -> ServiceRecord | None:
        found = await kv.get(self.bus.kv.services, key, ServiceRecord)
        return found.value if found else None

    async def prior_memo(self, key: str) -> Memo:
        """What an earlier deployer process remembered (from the status it published)."""
        prior = await kv.get(self.bus.kv.status, key, ServiceStatus)
        return Memo.from_status(prior.value if prior else None)

    async def free_mb_now(self) -> int:
        """Free memory from a listing taken now (for the admission check before a create)."""
        self.containers.invalidate()
        return free_mb(self.limits.capacity_mb, await self.containers.get())

    async def inputs(
        self,
        key: str,
        record: ServiceRecord | None,
        memo: Memo,
        start_failure: StartFailure | None = None,
    ) -> Inputs:
        project, service = names.split_service_key(key)
        listing = await self.containers.get()
        tasks = [t for p, s, t in listing if p == project and s == service]
        tasks = [t if t.live else await self._logs_done(t) for t in tasks]
        health: dict[str, HealthView] = {}
        for t in tasks:
            view = self.health.get(t.container_id)
            if view is not None:
                health[t.container_id] = view
        return Inputs(
            now=time.time(),
            project=project,
            service=service,
            record=record,
            tasks=tuple(tasks),
            health=health,
            route=await self._route(key),
            definitions=await self._definitions(record, memo),
            free_mb=free_mb(self.limits.capacity_mb, listing),
            limits=self.limits,
            start_failure=start_failure,
        )

    async def _route(self, key: str) -> RouteView | None:
        route = await kv.get(self.bus.kv.routes, key, Route)
        if route is None:
            return None
        ack = await kv.get(self.bus.kv.gateway, key, GatewayAck)
        acked = ack.value.route_revision if ack and ack.value.drained else 0
        return RouteView(tuple(route.value.upstreams), route.revision, acked)

    async def _logs_done(self, task: Observed) -> Observed:
        cursor = await kv.get(
            self.bus.kv.log_cursors, names.log_cursor_key(task.log_key), LogCursor
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

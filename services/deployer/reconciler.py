"""One reconciliation of one service: `Reconciler.reconcile(key) -> Result`.

Observe (`observe`), decide (`plan`, pure), publish the decided status, act
(`executor`), and say when to look again. The per-service memory (`Memo`), the
last published status and the last start failure live here between rounds;
scheduling lives in the `KeyedQueue` that calls this.
"""

from __future__ import annotations

import logging

from services.deployer.executor import Executor, Outcome
from services.deployer.health import HealthMonitor, Probe
from services.deployer.model import Memo, Observed, StartFailure
from services.deployer.observe import Observer
from services.deployer.plan import Inputs, plan
from services.deployer.snapshot import ContainerSnapshot
from services.deployer.status import build_status
from services.deployer.workqueue import Result
from shared import kv, names
from shared.bus import Bus
from shared.models import ServiceRecord, ServiceStatus
from shared.rules import health_check_path, health_codes, on_root, parse_status_codes

log = logging.getLogger(__name__)

HOST = "local"


class Reconciler:
    def __init__(
        self,
        bus: Bus,
        observer: Observer,
        executor: Executor,
        health: HealthMonitor,
        containers: ContainerSnapshot,
    ) -> None:
        self.bus = bus
        self.observer = observer
        self.executor = executor
        self.health = health
        self.containers = containers
        self.memos: dict[str, Memo] = {}
        self.start_failures: dict[str, StartFailure] = {}
        self.last_status: dict[str, ServiceStatus] = {}

    def known(self) -> list[str]:
        """Services this deployer remembers something about."""
        return list(self.memos)

    async def reconcile(self, key: str) -> Result:
        """Plan and act once for a service."""
        record = await self.observer.record(key)
        memo = self.memos.get(key)
        if memo is None:
            memo = await self.observer.prior_memo(key)
        inputs = await self.observer.inputs(key, record, memo, self.start_failures.pop(key, None))
        if record is not None and not record.deleting:
            self._watch_health(
                key, record, [t for t in inputs.tasks if t.service_uid == record.uid]
            )
        for t in inputs.tasks:
            if t.state != "running":
                self.health.forget(t.container_id)
        the_plan, memo = plan(inputs, memo)
        self.memos[key] = memo
        if record is not None or inputs.tasks:
            # publish what was decided before acting: stops and pulls can take a while
            await self._publish_status(key, build_status(inputs, memo, HOST))
        outcome = Outcome()
        try:
            await self.executor.run(key, the_plan.actions, outcome)
        finally:
            if outcome.changed:
                self.containers.invalidate()
            if outcome.start_failure is not None:
                self.start_failures[key] = outcome.start_failure
        if outcome.finished:
            await self._finish(key, inputs, memo)
            return Result(done=True)
        after = None if the_plan.wake_at is None else max(0.0, the_plan.wake_at - inputs.now)
        again = outcome.changed or outcome.start_failure is not None
        return Result(requeue=again, requeue_after=after)

    def _watch_health(self, key: str, record: ServiceRecord, tasks: list[Observed]) -> None:
        hc = record.health_check
        path = health_check_path(record.project, record.name, hc)
        codes = tuple(parse_status_codes(health_codes(hc)))
        interval = float(hc.interval if hc else 10)
        root = names.deployment_path(record.project, record.name)
        for t in tasks:
            if t.state == "running" and t.host_port:
                port = record.definition.container_port if record.definition else 0
                if record.definition is None or t.revision != record.definition.revision:
                    port = 0  # another revision's port: not known here, not checked
                self.health.watch(
                    key,
                    t.container_id,
                    Probe(
                        f"http://{t.address}:{t.host_port}{path}",
                        path,
                        codes,
                        interval,
                        on_root=on_root(hc),
                        context_root=root,
                        container_port=port,
                    ),
                )

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

    async def keys_to_check(self) -> set[str]:
        """Every service that may need work: desired, running here, remembered or routed."""
        keys = set(await kv.keys(self.bus.kv.services, ">"))
        listing = await self.containers.get()
        keys |= {names.service_key(p, s) for p, s, _ in listing if p and s}
        keys |= set(self.memos)
        keys |= set(await kv.keys(self.bus.kv.routes, ">"))
        running = {t.container_id for _, _, t in listing if t.live}
        self.health.keep_only(running)
        return keys


def _same_status(a: ServiceStatus, b: ServiceStatus) -> bool:
    return a.__struct_fields__ == b.__struct_fields__ and all(
        getattr(a, f) == getattr(b, f) for f in a.__struct_fields__ if f != "updated_at"
    )

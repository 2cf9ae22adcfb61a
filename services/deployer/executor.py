"""Carry out the planner's actions against Docker and NATS, one service at a time.

Each action is done in order; a failure to reach Docker or NATS stops the rest
(the next reconciliation plans again from what is observed then). A task that
cannot be started is reported back through `start_problem`, which the planner
turns into a failed deployment or a retry.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec

from services.deployer.docker_host import DockerHost, ImageNotFound, StartFailed
from services.deployer.model import (
    Action,
    DeleteRoute,
    Emit,
    Finish,
    RemoveContainer,
    SetRoute,
    StartTask,
    StopTask,
)
from shared import events as ev
from shared import kv, names
from shared.bus import Bus
from shared.clock import iso_now
from shared.docker import DockerUnavailable
from shared.models import Route
from shared.settings import Settings

log = logging.getLogger(__name__)

LAST_LINES = 10


@dataclass
class Outcome:
    start_problem: tuple[int, str, bool] | None = None
    started: list[str] = field(default_factory=list)
    finished: bool = False
    changed: bool = False


class Executor:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        host: DockerHost,
        admission: asyncio.Lock,
        free_mb: Callable[[], Awaitable[int]],
        on_stopped: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.host = host
        self.admission = admission
        self.free_mb = free_mb
        self.on_stopped = on_stopped
        self._stops: dict[str, asyncio.Task[None]] = {}

    async def run(self, key: str, actions: list[Action], outcome: Outcome) -> None:
        project, service = names.split_service_key(key)
        for action in actions:
            if isinstance(action, Emit):
                await self.emit(action)
                continue
            if isinstance(action, StopTask):
                # stopping runs in the background; a repeated order for it changes nothing
                outcome.changed |= self.stop_in_background(key, action.task.container_id)
                continue
            outcome.changed = True
            if isinstance(action, StartTask):
                await self.start(project, service, action, outcome)
            elif isinstance(action, RemoveContainer):
                await self.host.remove(action.task.container_id)
            elif isinstance(action, SetRoute):
                await kv.put(
                    self.bus.kv.routes,
                    key,
                    Route(
                        project=project,
                        service=service,
                        upstreams=list(action.upstreams),
                        revision=action.revision,
                        updated_at=iso_now(),
                    ),
                )
            elif isinstance(action, DeleteRoute):
                await kv.purge(self.bus.kv.routes, key)
                await kv.purge(self.bus.kv.gateway, key)
            elif isinstance(action, Finish):
                if action.remove_images:
                    await self.host.remove_images(project, service)
                outcome.finished = True

    def stop_in_background(self, key: str, container_id: str) -> bool:
        """Stopping waits for the task to exit (up to the stop timeout): do not block on it.

        False when a stop of this container is already under way."""
        if container_id in self._stops:
            return False
        self._stops[container_id] = asyncio.create_task(
            self._stop(key, container_id), name=f"stop-{container_id[:12]}"
        )
        return True

    async def _stop(self, key: str, container_id: str) -> None:
        try:
            await self.host.stop(container_id)
        except DockerUnavailable as err:
            log.warning("%s: %s", key, err)
        finally:
            self._stops.pop(container_id, None)
            self.on_stopped(key)

    async def close(self) -> None:
        stops = list(self._stops.values())
        for task in stops:
            task.cancel()
        await asyncio.gather(*stops, return_exceptions=True)

    async def start(self, project: str, service: str, action: StartTask, outcome: Outcome) -> None:
        td = action.definition
        t0 = time.monotonic()
        try:
            await self.host.pull(td)
            t1 = time.monotonic()
            async with self.admission:
                # The planner saw enough free memory; check again now that no other
                # service can take it between this check and the container's creation.
                if await self.free_mb() < td.memory_reservation:
                    return
                task_id = new_task_id(td.revision)
                container_id = await self.host.create(td, task_id)
            t2 = time.monotonic()
            await self.host.start(container_id)
            log.debug(
                "%s.%s: pull %.0f ms, create %.0f ms, start %.0f ms",
                project,
                service,
                (t1 - t0) * 1000,
                (t2 - t1) * 1000,
                (time.monotonic() - t2) * 1000,
            )
        except ImageNotFound as err:
            outcome.start_problem = (td.revision, str(err), True)
            return
        except StartFailed as err:
            outcome.start_problem = (td.revision, str(err), True)
            return
        except DockerUnavailable as err:
            outcome.start_problem = (td.revision, str(err), False)
            return
        outcome.started.append(container_id)
        await self.emit(
            Emit(
                ev.TaskStarted(
                    project=project,
                    service=service,
                    task=task_id,
                    revision=td.revision,
                    message=f"service {service} has started 1 tasks: task {task_id} "
                    f"(revision {td.revision}, {action.reason})",
                )
            )
        )

    async def emit(self, action: Emit) -> None:
        event = action.event
        if action.lines_from:
            lines = await self.host.last_lines(action.lines_from, LAST_LINES)
            if lines and hasattr(event, "last_lines"):
                tail = " | ".join(lines[-3:])
                event = msgspec.structs.replace(
                    event,
                    last_lines=lines,
                    message=f"{event.message}. Last output: {tail}",
                )
        await self.bus.publish_event(event)
        log.info("%s.%s: %s", event.project, event.service, event.message)


def new_task_id(revision: int) -> str:
    """Task ids are `<revision>-<8 hex>`: unique per service, and say which revision runs."""
    return f"{revision}-{secrets.token_hex(4)}"

"""Carry out the planner's actions against Docker and NATS, one service at a time.

Each action is done in order, dispatched by its type (`match`, with
`assert_never` so that a new kind of action cannot be left undone); a failure
to reach Docker or NATS stops the rest (the next reconciliation plans again
from what is observed then). A task that cannot be started is reported back as
a `StartFailure` (temporary or permanent), which the planner turns into a
retry or a failed deployment.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import assert_never

import msgspec

from services.deployer.docker_host import ImageNotFound, StartFailed
from services.deployer.engine import TaskEngine
from services.deployer.messages import Wording
from services.deployer.model import (
    Action,
    DeleteRoute,
    Emit,
    Finish,
    PermanentFailure,
    RemoveContainer,
    SetRoute,
    StartFailure,
    StartTask,
    StopTask,
    TemporaryFailure,
)
from shared import kv, names
from shared.bus import Bus
from shared.clock import iso_now
from shared.docker import DockerUnavailable
from shared.models import Route

log = logging.getLogger(__name__)

LAST_LINES = 10


@dataclass
class Outcome:
    start_failure: StartFailure | None = None
    finished: bool = False
    changed: bool = False


class Executor:
    def __init__(
        self,
        bus: Bus,
        host: TaskEngine,
        free_mb: Callable[[], Awaitable[int]],
        on_stopped: Callable[[str], None],
    ) -> None:
        self.bus = bus
        self.host = host
        self.free_mb = free_mb
        self.on_stopped = on_stopped
        # Admission: the memory check and the container's creation happen together,
        # so that no other service takes the memory between them.
        self.admission = asyncio.Lock()
        self._stops: dict[str, asyncio.Task[None]] = {}

    async def run(self, key: str, actions: list[Action], outcome: Outcome) -> None:
        project, service = names.split_service_key(key)
        for action in actions:
            match action:
                case Emit():
                    await self.emit(action)
                case StopTask():
                    # stopping runs in the background; a repeated order for it changes nothing
                    outcome.changed |= self.stop_in_background(key, action.task.container_id)
                case StartTask():
                    outcome.changed = True
                    await self.start(Wording(project, service), action, outcome)
                case RemoveContainer():
                    outcome.changed = True
                    await self._remove(key, action.task.container_id)
                case SetRoute():
                    outcome.changed = True
                    route = Route(
                        project=project,
                        service=service,
                        upstreams=list(action.upstreams),
                        revision=action.revision,
                        updated_at=iso_now(),
                    )
                    await kv.put(self.bus.kv.routes, key, route)
                case DeleteRoute():
                    outcome.changed = True
                    await kv.purge(self.bus.kv.routes, key)
                    await kv.purge(self.bus.kv.gateway, key)
                case Finish():
                    outcome.changed = True
                    if action.remove_images:
                        await self.host.remove_images(project, service)
                    outcome.finished = True
                case _:
                    assert_never(action)

    async def _remove(self, key: str, container_id: str) -> None:
        """Remove an exited container; one Docker cannot remove yet waits for a later round."""
        try:
            await self.host.remove(container_id)
        except DockerUnavailable as err:
            log.warning("%s: container %s left for later: %s", key, container_id[:12], err)

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

    async def start(self, say: Wording, action: StartTask, outcome: Outcome) -> None:
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
                say.project,
                say.service,
                (t1 - t0) * 1000,
                (t2 - t1) * 1000,
                (time.monotonic() - t2) * 1000,
            )
        except (ImageNotFound, StartFailed) as err:
            outcome.start_failure = PermanentFailure(td.revision, str(err))
            return
        except DockerUnavailable as err:
            outcome.start_failure = TemporaryFailure(td.revision, str(err))
            return
        await self.emit(Emit(say.task_started(task_id, td.revision, action.reason)))

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

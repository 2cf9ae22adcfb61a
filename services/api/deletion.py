"""Deleting a service: mark it DRAINING, then finish once the deployer has drained it.

`begin` flags the record (compare-and-set) and revokes what must stop working
at once; `finish` removes everything else when the deployer reports the service
drained (or it never ran). A background sweep finishes deletions that an api
restart interrupted, so nothing is left half-deleted. Hooks registered in
`Deleter.cleanups` (registry credentials and images) run before the records go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec

from services.api.store import Store
from shared.bus import BusError, Conflict
from shared.clock import iso_now
from shared.events import ServiceDeleted, ServiceDeleting
from shared.kv import Versioned
from shared.models import ServiceRecord

log = logging.getLogger(__name__)

Cleanup = Callable[[ServiceRecord], Awaitable[None]]


class CleanupPending(Exception):
    """A clean-up step cannot be done now (e.g. the registry is down); try again later."""


class Deleter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.cleanups: list[Cleanup] = []
        self.revocations: list[Cleanup] = []

    async def begin(self, project: str, name: str) -> Versioned[ServiceRecord] | None:
        """Flag the service as deleting; None if it does not exist."""
        while True:
            found = await self.store.get_service(project, name)
            if found is None:
                return None
            if found.value.deleting:
                return found
            record = found.value
            flagged = msgspec.structs.replace(record, updated_at=iso_now(), deleting=True)
            try:
                rev = await self.store.update_service(flagged, found.revision)
            except Conflict:
                continue
            for revoke in self.revocations:
                await revoke(flagged)
            await self.store.announce(
                ServiceDeleting(
                    project=project,
                    service=name,
                    message=f"service {name} is being deleted: stopping its tasks and "
                    "removing its route, images and credentials",
                )
            )
            return Versioned(found.key, flagged, rev)

    async def drained(self, record: ServiceRecord) -> bool:
        status = await self.store.get_status(record.project, record.name)
        if status is None or status.service_uid != record.uid:
            # Never deployed (or nothing observed yet): nothing runs for it.
            return record.revision == 0 or status is None
        return status.drained

    async def finish(self, found: Versioned[ServiceRecord]) -> bool:
        """Remove what is left once drained. True when the service is gone."""
        record = found.value
        if not await self.drained(record):
            return False
        for cleanup in self.cleanups:
            try:
                await cleanup(record)
            except CleanupPending as err:
                log.warning("deleting %s: %s", found.key, err)
                return False
        await self.store.purge_revisions(record.project, record.name)
        await self.store.purge_observed(record.project, record.name)
        try:
            await self.store.delete_service(record.project, record.name, found.revision)
        except Conflict:
            return False
        await self.store.purge_history(record.project, record.name)
        await self.store.release_path(record)
        await self.store.announce(
            ServiceDeleted(
                project=record.project,
                service=record.name,
                message=f"service {record.name} has been deleted",
            )
        )
        return True

    async def wait_finished(self, found: Versioned[ServiceRecord], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.05
        while True:
            current = await self.store.get_service(found.value.project, found.value.name)
            if current is None or current.value.uid != found.value.uid:
                return True
            if await self.finish(current):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 2)

    async def sweep(self) -> None:
        """Finish every deletion in progress (after an api restart, or a slow deployer)."""
        for found in await self.store.all_services():
            if found.value.deleting:
                try:
                    await self.finish(found)
                except BusError as err:
                    log.warning("finishing deletion of %s: %s", found.key, err)

    async def run_sweeper(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except BusError as err:
                log.warning("deletion sweep: %s", err)
            except Exception:
                log.exception("deletion sweep failed")
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

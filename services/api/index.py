"""Every service record in memory, kept current from the services bucket.

Listing a project's services from NATS means reading every record on each
request (tens of milliseconds at hundreds of services); this index answers
from memory. A watcher keeps it current (re-created after NATS reconnects),
and the api's own writes are noted at once, so a client always sees its own
creates and deletes. Only listings use it: anything that writes reads the
bucket itself, since compare-and-set needs the stored revision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from shared import kv, names
from shared.bus import Bus
from shared.models import ServiceRecord, decode

log = logging.getLogger(__name__)


class ServiceIndex:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.records: dict[str, tuple[ServiceRecord | None, int]] = {}
        self.versions: dict[str, int] = {}  # project -> changes seen, to key caches
        self.ready = False
        self._listeners: dict[str, set[Callable[[ServiceRecord | None], None]]] = {}
        self.rewatch = asyncio.Event()

        async def on_reconnect() -> None:
            self.rewatch.set()  # the watcher's consumer did not survive the reconnect

        bus.on_reconnect(on_reconnect)

    def apply(self, key: str, record: ServiceRecord | None, revision: int) -> None:
        """Record a value (None: deleted) unless a newer one is already known."""
        known = self.records.get(key)
        if known is not None and known[1] > revision:
            return
        self.records[key] = (record, revision)
        project, _ = names.split_service_key(key)
        self.versions[project] = self.versions.get(project, 0) + 1
        for listener in list(self._listeners.get(key, ())):
            listener(record)

    def on_change(
        self, project: str, name: str, listener: Callable[[ServiceRecord | None], None]
    ) -> Callable[[], None]:
        """Call `listener(record or None)` when the service changes; returns a remover.

        One watcher of the whole bucket serves every listener: a websocket tail
        costs no NATS consumer of its own."""
        key = names.service_key(project, name)
        self._listeners.setdefault(key, set()).add(listener)

        def remove() -> None:
            found = self._listeners.get(key)
            if found is not None:
                found.discard(listener)
                if not found:
                    del self._listeners[key]

        return remove

    def version(self, project: str) -> int:
        return self.versions.get(project, 0)

    def get(self, project: str, name: str) -> ServiceRecord | None:
        known = self.records.get(names.service_key(project, name))
        return known[0] if known is not None else None

    def _on_entry(self, key: str, value: bytes | None, revision: int) -> None:
        try:
            self.apply(key, decode(ServiceRecord, value) if value else None, revision)
        except msgspec.DecodeError:
            log.warning("ignoring undecodable service record %s", key)

    def list(self, project: str) -> list[ServiceRecord]:
        prefix = names.services_of_project(project)[:-1]  # "<project>."
        found = [r for k, (r, _) in self.records.items() if r is not None and k.startswith(prefix)]
        return sorted(found, key=lambda r: r.name)

    async def load(self) -> None:
        for v in await kv.scan(self.bus.kv.services, ">", ServiceRecord):
            self.apply(v.key, v.value, v.revision)
        self.ready = True

    async def follow(self, stop: asyncio.Event) -> None:
        await kv.follow(self.bus.kv.services, ">", self._on_entry, stop, self.rewatch)

"""The newest events of recently viewed services, in memory.

Reading a service's last events from the EVENTS stream takes a dozen NATS round
trips; the status view asks for them on every request. The first request for a
service loads them from the stream; afterwards a subscription on every events
subject appends new ones as they are published. Events published while a
service is being loaded are kept aside and merged, so none is missed; after a
NATS reconnect (when publications may have been missed) everything is loaded
afresh. An adapter: it subscribes and reads through the `Bus`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque

import msgspec

from shared import names
from shared.bus import Bus, Subscription
from shared.events import AnyEvent, decode_event

log = logging.getLogger(__name__)

MAX_SERVICES = 5000
RECENT_EVENTS = 50  # kept per service, shown in the status view


class EventCache:
    def __init__(self, bus: Bus, limit: int) -> None:
        self.bus = bus
        self.limit = limit
        self._cache: OrderedDict[str, deque[bytes]] = OrderedDict()
        self._loading: dict[str, list[bytes]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        async def on_msg(subject: str, data: bytes) -> None:
            self._note(subject, data)

        async def on_reconnect() -> None:
            self.clear()

        self._sub = await self.bus.subscribe(names.EVENTS_ALL, on_msg)
        self.bus.on_reconnect(on_reconnect)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    def _note(self, subject: str, data: bytes) -> None:
        pending = self._loading.get(subject)
        if pending is not None:
            pending.append(data)
        cached = self._cache.get(subject)
        # an event stored before a load read the stream may still be on its way here
        if cached is not None and data not in cached:
            cached.append(data)

    def clear(self) -> None:
        self._cache.clear()

    def forget(self, project: str, service: str) -> None:
        self._cache.pop(names.events_subject(project, service), None)

    async def recent(self, project: str, service: str) -> list[AnyEvent]:
        """The service's newest events, newest first."""
        subject = names.events_subject(project, service)
        cached = self._cache.get(subject)
        if cached is None or self._sub is None:
            cached = await self._load(subject)
        else:
            self._cache.move_to_end(subject)
        out: list[AnyEvent] = []
        for data in reversed(cached):
            try:
                out.append(decode_event(data))
            except msgspec.DecodeError:
                continue
        return out

    async def _load(self, subject: str) -> deque[bytes]:
        pending: list[bytes] = []
        self._loading[subject] = pending
        try:
            stored = await self.bus.streams.last_n(names.STREAM_EVENTS, subject, self.limit)
            await asyncio.sleep(0)  # let publications that raced the read arrive
        finally:
            self._loading.pop(subject, None)
        loaded = deque((m.data for m in stored), maxlen=self.limit)
        seen = set(loaded)
        loaded.extend(d for d in pending if d not in seen)
        if self._sub is not None:
            self._cache[subject] = loaded
            while len(self._cache) > MAX_SERVICES:
                self._cache.popitem(last=False)
        return loaded

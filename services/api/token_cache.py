"""Session tokens verified recently, in memory, forgotten the moment they change.

Every authenticated request looks its token up in the tokens bucket: one NATS
round trip, a fifth of the api's work on a status read. This cache keeps the
records it read for `MAX_AGE_S`. A subscription on the bucket's change subject
(every put, delete and purge of a key, from any api instance) evicts a token as
soon as it is revoked, so a revocation takes effect everywhere within the
time a NATS message takes. Expiry is checked on every request from the record
itself. After a NATS reconnect (changes may have been missed meanwhile) the
cache starts empty; while the subscription is not in place nothing is cached.
Unknown tokens are never cached: each is looked up again. Listeners
(`on_change`) hear of every change of a token at once: revocation ends
websocket tails and NATS connections within the time a NATS message takes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from shared import names
from shared.bus import Bus, Subscription
from shared.models import TokenRecord

MAX_AGE_S = 5.0  # a safety net only: changes evict entries at once
MAX_ENTRIES = 10_000


class TokenCache:
    def __init__(self, max_age_s: float = MAX_AGE_S, max_entries: int = MAX_ENTRIES) -> None:
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self.live = False  # True while changes reach `evict`
        self._entries: OrderedDict[str, tuple[TokenRecord, float]] = OrderedDict()
        self._sub: Subscription | None = None
        self._listeners: list[Callable[[str], Awaitable[None]]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> TokenRecord | None:
        found = self._entries.get(digest)
        if found is None:
            return None
        record, stored_at = found
        if not self.live or time.monotonic() - stored_at > self.max_age_s:
            del self._entries[digest]
            return None
        return record

    def put(self, digest: str, record: TokenRecord) -> None:
        if not self.live:
            return
        self._entries[digest] = (record, time.monotonic())
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def evict(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()

    def on_change(self, listener: Callable[[str], Awaitable[None]]) -> Callable[[], None]:
        """Call `listener(digest)` whenever a token changes (is revoked); returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def start(self, bus: Bus) -> None:
        """Follow the tokens bucket's changes; start caching."""
        bucket = names.BUCKET_TOKENS

        async def on_change(subject: str, _data: bytes) -> None:
            digest = names.kv_key_of_subject(bucket, subject)
            self.evict(digest)
            for listener in list(self._listeners):
                await listener(digest)

        async def on_reconnect() -> None:
            self.clear()

        self._sub = await bus.subscribe(names.kv_changes(bucket), on_change)
        await bus.flush()  # the server has the subscription before anything is cached
        bus.on_reconnect(on_reconnect)
        self.live = True

    async def stop(self) -> None:
        self.live = False
        self.clear()
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

"""The api's view of the state on NATS: users, tokens, services, revisions, status, events.

An adapter: it reads and writes KV buckets and streams through `shared.kv` and
`shared.streams` and returns records. Decisions (validation, what to answer)
belong to the handlers and `views`.
"""

from __future__ import annotations

import msgspec
import nats.errors

from services.api.event_cache import EventCache
from services.api.index import ServiceIndex
from services.api.token_cache import TokenCache
from shared import kv, names, streams
from shared.bus import Bus, BusError
from shared.events import AnyEvent, Event, decode_event, encode_event
from shared.kv import Versioned
from shared.models import (
    GatewayAck,
    Route,
    ServiceRecord,
    ServiceStatus,
    TaskDefinition,
    TokenRecord,
    UserRecord,
)

RECENT_EVENTS = 50  # shown in the status view


class Store:
    def __init__(
        self,
        bus: Bus,
        index: ServiceIndex | None = None,
        events: EventCache | None = None,
        tokens: TokenCache | None = None,
    ) -> None:
        self.bus = bus
        self.index = index
        self.events = events
        self.tokens = tokens

    # ------------------------------------------------------------ users
    async def get_user(self, username: str) -> Versioned[UserRecord] | None:
        return await kv.get(self.bus.kv.users, names.user_key(username), UserRecord)

    async def create_user(self, user: UserRecord) -> None:
        await kv.create(self.bus.kv.users, names.user_key(user.username), user)

    async def update_user(self, user: UserRecord, last: int) -> None:
        await kv.update(self.bus.kv.users, names.user_key(user.username), user, last)

    # ------------------------------------------------------------ tokens
    async def put_token(self, digest: str, record: TokenRecord, ttl: float) -> None:
        await kv.create(self.bus.kv.tokens, names.token_key(digest), record, ttl=ttl)

    async def get_token(self, digest: str) -> TokenRecord | None:
        key = names.token_key(digest)
        if self.tokens is not None and (hit := self.tokens.get(key)) is not None:
            return hit
        found = await kv.get(self.bus.kv.tokens, key, TokenRecord)
        if found is None:
            return None
        if self.tokens is not None:
            self.tokens.put(key, found.value)
        return found.value

    async def delete_token(self, digest: str) -> None:
        key = names.token_key(digest)
        await kv.purge(self.bus.kv.tokens, key)
        if self.tokens is not None:
            self.tokens.evict(key)

    # ------------------------------------------------------------ services
    async def list_services(self, project: str) -> list[ServiceRecord]:
        if self.index is not None and self.index.ready:
            return self.index.list(project)
        found = await kv.scan(
            self.bus.kv.services, names.services_of_project(project), ServiceRecord
        )
        return sorted((v.value for v in found), key=lambda r: r.name)

    async def read_service(self, project: str, name: str) -> ServiceRecord | None:
        """A service for reading only: from the index when it is loaded (no round trip)."""
        if self.index is not None and self.index.ready:
            return self.index.get(project, name)
        found = await self.get_service(project, name)
        return found.value if found else None

    def listing_version(self, project: str) -> int | None:
        """Changes to the project's services so far, if the index tracks them."""
        if self.index is not None and self.index.ready:
            return self.index.version(project)
        return None

    async def all_services(self) -> list[Versioned[ServiceRecord]]:
        return await kv.scan(self.bus.kv.services, ">", ServiceRecord)

    async def get_service(self, project: str, name: str) -> Versioned[ServiceRecord] | None:
        return await kv.get(self.bus.kv.services, names.service_key(project, name), ServiceRecord)

    def _noted(self, key: str, record: ServiceRecord | None, revision: int) -> int:
        if self.index is not None:
            self.index.apply(key, record, revision)
        return revision

    async def create_service(self, record: ServiceRecord) -> int:
        key = names.service_key(record.project, record.name)
        return self._noted(key, record, await kv.create(self.bus.kv.services, key, record))

    async def update_service(self, record: ServiceRecord, last: int) -> int:
        key = names.service_key(record.project, record.name)
        return self._noted(key, record, await kv.update(self.bus.kv.services, key, record, last))

    async def delete_service(self, project: str, name: str, last: int) -> None:
        key = names.service_key(project, name)
        await kv.delete(self.bus.kv.services, key, last=last)
        await kv.purge(self.bus.kv.services, key)
        self._noted(key, None, last + 1)

    # ------------------------------------------------------------ revisions
    async def put_revision(self, td: TaskDefinition) -> None:
        await kv.put(
            self.bus.kv.revisions,
            names.revision_key(td.project, td.service, td.revision),
            td,
        )

    async def get_revision(self, project: str, name: str, revision: int) -> TaskDefinition | None:
        found = await kv.get(
            self.bus.kv.revisions, names.revision_key(project, name, revision), TaskDefinition
        )
        return found.value if found else None

    async def list_revisions(self, project: str, name: str, uid: str) -> list[TaskDefinition]:
        found = await kv.scan(
            self.bus.kv.revisions, names.revisions_of_service(project, name), TaskDefinition
        )
        return sorted(
            (v.value for v in found if v.value.service_uid == uid), key=lambda t: t.revision
        )

    async def purge_revisions(self, project: str, name: str) -> None:
        for key in await kv.keys(self.bus.kv.revisions, names.revisions_of_service(project, name)):
            await kv.purge(self.bus.kv.revisions, key)

    # ------------------------------------------------------------ observed state
    async def get_status(self, project: str, name: str) -> ServiceStatus | None:
        found = await kv.get(self.bus.kv.status, names.service_key(project, name), ServiceStatus)
        return found.value if found else None

    async def purge_observed(self, project: str, name: str) -> None:
        key = names.service_key(project, name)
        for bucket in (self.bus.kv.status, self.bus.kv.routes, self.bus.kv.gateway):
            await kv.purge(bucket, key)

    async def get_route(self, project: str, name: str) -> Route | None:
        found = await kv.get(self.bus.kv.routes, names.service_key(project, name), Route)
        return found.value if found else None

    async def get_gateway_ack(self, project: str, name: str) -> GatewayAck | None:
        found = await kv.get(self.bus.kv.gateway, names.service_key(project, name), GatewayAck)
        return found.value if found else None

    # ------------------------------------------------------------ events
    async def publish_event(self, event: Event) -> None:
        try:
            await self.bus.js.publish(
                names.events_subject(event.project, event.service), encode_event(event)
            )
        except (TimeoutError, nats.errors.Error) as err:
            raise BusError(f"NATS: could not publish event: {err}") from err

    async def recent_events(self, project: str, name: str) -> list[AnyEvent]:
        """The service's newest events, newest first."""
        if self.events is not None:
            return await self.events.recent(project, name)
        subject = names.events_subject(project, name)
        stored = await streams.last_n(self.bus.nc, names.STREAM_EVENTS, subject, RECENT_EVENTS)
        out: list[AnyEvent] = []
        for msg in reversed(stored):
            try:
                out.append(decode_event(msg.data))
            except msgspec.DecodeError:
                continue
        return out

    async def purge_history(self, project: str, name: str) -> None:
        """Drop a deleted service's events and log lines."""
        if self.events is not None:
            self.events.forget(project, name)
        for stream, subject in (
            (names.STREAM_EVENTS, names.events_subject(project, name)),
            (names.STREAM_LOGS, names.logs_of_service(project, name)),
        ):
            try:
                await self.bus.js.purge_stream(stream, subject=subject)
            except (TimeoutError, nats.errors.Error) as err:
                raise BusError(f"NATS: could not purge {stream}: {err}") from err

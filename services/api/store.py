"""The api's view of the state on NATS: tokens, services, revisions, status, events.

An adapter over the `Bus`: it reads and writes KV buckets and streams and
returns records. Listings and reads for display come from the in-memory
`ServiceIndex`, recent events from the `EventCache`, verified tokens from the
`TokenCache`; anything that writes reads the bucket itself (compare-and-set
needs the stored revision). Decisions (validation, what to answer) belong to
the handlers and `views`.
"""

from __future__ import annotations

import logging

from services.api.event_cache import EventCache
from services.api.index import ServiceIndex
from services.api.token_cache import TokenCache
from shared import kv, names
from shared.bus import Bus, BusError, Conflict
from shared.events import AnyEvent, Event
from shared.kv import Versioned
from shared.models import (
    NodeInfo,
    PathClaim,
    ServiceRecord,
    ServiceStatus,
    TaskDefinition,
    TokenRecord,
)

log = logging.getLogger(__name__)


class Store:
    def __init__(
        self, bus: Bus, index: ServiceIndex, events: EventCache, tokens: TokenCache
    ) -> None:
        self.bus = bus
        self.index = index
        self.events = events
        self.tokens = tokens

    # ------------------------------------------------------------ tokens
    async def put_token(self, digest: str, record: TokenRecord, ttl: float) -> None:
        await kv.create(self.bus.kv.tokens, names.token_key(digest), record, ttl=ttl)

    async def get_token(self, digest: str) -> TokenRecord | None:
        key = names.token_key(digest)
        if (hit := self.tokens.get(key)) is not None:
            return hit
        found = await kv.get(self.bus.kv.tokens, key, TokenRecord)
        if found is None:
            return None
        self.tokens.put(key, found.value)
        return found.value

    async def delete_token(self, digest: str) -> None:
        key = names.token_key(digest)
        await kv.purge(self.bus.kv.tokens, key)
        self.tokens.evict(key)

    # ------------------------------------------------------------ services
    def list_services(self, project: str) -> list[ServiceRecord]:
        return self.index.list(project)

    def read_service(self, project: str, name: str) -> ServiceRecord | None:
        """A service for reading only, from the index (no round trip)."""
        return self.index.get(project, name)

    def listing_version(self, project: str) -> int:
        """Changes to the project's services so far (keys caches of listings)."""
        return self.index.version(project)

    async def all_services(self) -> list[Versioned[ServiceRecord]]:
        return await kv.scan(self.bus.kv.services, ">", ServiceRecord)

    async def get_service(self, project: str, name: str) -> Versioned[ServiceRecord] | None:
        return await kv.get(self.bus.kv.services, names.service_key(project, name), ServiceRecord)

    def _noted(self, key: str, record: ServiceRecord | None, revision: int) -> int:
        self.index.apply(key, record, revision)
        return revision

    async def claim_path(self, record: ServiceRecord) -> PathClaim | None:
        """Take the service's deployment path; the other service's claim if it is taken."""
        key = names.path_key(record.project, record.name)
        claim = PathClaim(project=record.project, service=record.name, service_uid=record.uid)
        while True:
            try:
                await kv.create(self.bus.kv.paths, key, claim)
                return None
            except Conflict:
                found = await kv.get(self.bus.kv.paths, key, PathClaim)
                if found is None:
                    continue  # released meanwhile
                owner = found.value
                mine = (owner.project, owner.service) == (record.project, record.name)
                if not mine:
                    holder = await self.get_service(owner.project, owner.service)
                    if holder is not None and holder.value.uid == owner.service_uid:
                        return owner
                    # the owner is gone (its deletion could not release the path): take it
                try:
                    await kv.update(self.bus.kv.paths, key, claim, found.revision)
                except Conflict:
                    continue
                return None

    async def release_path(self, record: ServiceRecord) -> None:
        key = names.path_key(record.project, record.name)
        found = await kv.get(self.bus.kv.paths, key, PathClaim)
        if found is not None and found.value.service_uid == record.uid:
            await kv.purge(self.bus.kv.paths, key)

    async def claim_existing_paths(self) -> None:
        """Services made before paths were claimed get their claim (first come, first served)."""
        for v in await self.all_services():
            owner = await self.claim_path(v.value)
            if owner is not None:
                log.warning(
                    "services %s.%s and %s.%s share the path /%s: only %s.%s is routed",
                    v.value.project,
                    v.value.name,
                    owner.project,
                    owner.service,
                    names.path_key(owner.project, owner.service),
                    owner.project,
                    owner.service,
                )

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
    async def store_revision(
        self, found: Versioned[ServiceRecord], updated: ServiceRecord, td: TaskDefinition
    ) -> int:
        """Make `td` the service's newest revision in one compare-and-set of its record.

        The record holds the definition it deploys, so the record write alone
        stores the revision: nothing is deployed that is not stored, and a
        revision number is taken only by a write that landed. The revisions
        bucket keeps every definition for history and rollbacks: the one the
        record holds now is copied there first (a copy an earlier update could
        not write is written now, so it outlives being replaced), the new one
        right after (if that copy fails, the next update writes it). `Conflict`
        when another update got to the record first: read it again and retry.
        """
        if found.value.definition is not None:
            await self.put_revision(found.value.definition)
        rev = await self.update_service(updated, found.revision)
        try:
            await self.put_revision(td)
        except BusError as err:
            log.warning("%s: revision %d copied later: %s", found.key, td.revision, err)
        return rev

    async def put_revision(self, td: TaskDefinition) -> None:
        key = names.revision_key(td.project, td.service, td.revision)
        await kv.put(self.bus.kv.revisions, key, td)

    async def get_revision(self, record: ServiceRecord, revision: int) -> TaskDefinition | None:
        """Revision `revision` of this service (not of an earlier one of the same name)."""
        if record.definition is not None and record.definition.revision == revision:
            return record.definition
        found = await kv.get(
            self.bus.kv.revisions,
            names.revision_key(record.project, record.name, revision),
            TaskDefinition,
        )
        if found is None or found.value.service_uid != record.uid:
            return None
        return found.value

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

    async def largest_node_mb(self) -> int | None:
        """What the largest host that takes tasks can reserve; None before the deployer said."""
        nodes = await kv.scan(self.bus.kv.nodes, ">", NodeInfo)
        sizes = [
            n.value.memory_mb
            for n in nodes
            if n.value.state == "ready" and n.value.availability == "active"
        ]
        return max(sizes) if sizes else None

    # ------------------------------------------------------------ observed state
    async def get_status(self, project: str, name: str) -> ServiceStatus | None:
        found = await kv.get(self.bus.kv.status, names.service_key(project, name), ServiceStatus)
        return found.value if found else None

    async def purge_observed(self, project: str, name: str) -> None:
        key = names.service_key(project, name)
        for bucket in (self.bus.kv.status, self.bus.kv.routes, self.bus.kv.gateway):
            await kv.purge(bucket, key)

    # ------------------------------------------------------------ events
    async def announce(self, event: Event) -> bool:
        """Publish an event about a change that is already stored; False if it could not be.

        The change stands whether or not the event goes out (the status tells the
        truth), so a lost event is logged, never answered as a failure."""
        try:
            await self.bus.publish_event(event)
            return True
        except BusError as err:
            log.warning("%s.%s: event not published: %s", event.project, event.service, err)
            return False

    async def recent_events(self, project: str, name: str) -> list[AnyEvent]:
        """The service's newest events, newest first."""
        return await self.events.recent(project, name)

    async def purge_history(self, project: str, name: str) -> None:
        """Drop a deleted service's events and log lines."""
        self.events.forget(project, name)
        await self.bus.purge(names.STREAM_EVENTS, subject=names.events_subject(project, name))
        await self.bus.purge(names.STREAM_LOGS, subject=names.logs_of_service(project, name))

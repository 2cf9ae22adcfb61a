"""Endpoints under /services: the clfpy contract plus revisions and rollback.

Each handler authenticates, validates, reads or compare-and-sets the service
record, publishes an event and answers with a view. Every service is looked up
within the caller's project only (`access`), so another project's service is a
404. Updates and rollbacks accept an `Idempotency-Key` header: a retry with
the same key answers the revision the first attempt stored instead of making
another one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from services.api import auth, views
from services.api.access import find_service, not_found, path_name, principal, read_service
from services.api.bodies import (
    CreateServiceRequest,
    HealthCheckBody,
    PatchServiceRequest,
    RollbackRequest,
    ServiceDefinitionBody,
    read_body,
)
from services.api.definitions import body_of, build_revision
from services.api.errors import AlreadyExists, BadRequest, NotFound
from services.api.keys import DELETER, LISTINGS, SETTINGS, STORE, VIEWS
from services.api.responses import json_response
from services.api.secrets import new_id
from services.api.store import Store
from shared import names
from shared.bus import Conflict
from shared.clock import iso_now
from shared.events import (
    HealthCheckChanged,
    ServiceCreated,
    ServiceScaled,
    ServiceUpdated,
    ServiceWarning,
)
from shared.models import HealthCheck, ServiceRecord, TaskDefinition
from shared.rules import (
    check_health_check,
    check_service_name,
    default_status_codes,
    health_check_path,
)

DELETE_WAIT_S = 15.0
LISTINGS_MAX = 1000
IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# ------------------------------------------------------------------ collection
async def list_services(request: web.Request) -> web.Response:
    who = await principal(request)
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    cache = request.app[LISTINGS]
    version = store.listing_version(who.project)
    if (cached := cache.get((who.project, version))) is not None:
        return web.Response(body=cached, content_type="application/json")
    records = store.list_services(who.project)
    response = json_response([views.summary(settings, r) for r in records])
    if isinstance(response.body, bytes):
        if len(cache) >= LISTINGS_MAX:
            cache.clear()
        cache[(who.project, version)] = response.body
    return response


async def create_service(request: web.Request) -> web.Response:
    who = await principal(request)
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    body = await read_body(request, CreateServiceRequest, settings.max_body_bytes)
    name = check_service_name(who.project, body.name)
    hc = None if body.health_check is None else health_check_from(body.health_check, None)
    now = iso_now()
    record = ServiceRecord(
        project=who.project,
        name=name,
        uid=new_id(8),
        created_at=now,
        updated_at=now,
        health_check=hc,
    )
    existing = await store.get_service(who.project, name)
    if existing is not None:
        raise _exists(existing.value)
    owner = await store.claim_path(record)
    if owner is not None:
        path = names.deployment_path(who.project, name)
        raise AlreadyExists(
            f"the path {path} is already taken by a service of another project "
            f"('-' joins project and service names, so different pairs can meet); "
            "choose another service name"
        )
    try:
        await store.create_service(record)
    except Conflict:
        existing = await store.get_service(who.project, name)
        if existing is None:
            raise
        raise _exists(existing.value) from None
    await store.announce(
        ServiceCreated(
            project=who.project,
            service=name,
            message=f"service {name} created by {who.username}",
        )
    )
    return json_response(views.summary(settings, record), status=201)


def health_check_from(body: HealthCheckBody, current: HealthCheck | None) -> HealthCheck:
    """A validated health check: the body's fields over the current ones (or the defaults).

    A health path of its own counts 200-399 as healthy unless told otherwise; the
    service's root counts 200-499 (the deployer still fails a 404 there)."""
    base = current or HealthCheck()
    rel_path = base.rel_path if isinstance(body.rel_path, msgspec.UnsetType) else body.rel_path
    if not isinstance(body.status_codes, msgspec.UnsetType):
        codes = body.status_codes
    elif current is not None and isinstance(body.rel_path, msgspec.UnsetType):
        codes = current.status_codes
    else:
        codes = default_status_codes(rel_path)
    interval = base.interval if isinstance(body.interval, msgspec.UnsetType) else body.interval
    return check_health_check(HealthCheck(rel_path=rel_path, status_codes=codes, interval=interval))


def _exists(record: ServiceRecord) -> AlreadyExists:
    if record.deleting:
        return AlreadyExists(
            f"service {record.name!r} is still being deleted; try again in a few seconds"
        )
    return AlreadyExists(f"service {record.name!r} already exists in project {record.project!r}")


# ------------------------------------------------------------------ one service
async def get_service(request: web.Request) -> web.StreamResponse:
    who = await principal(request)
    record = read_service(request, who)
    view = request.query.get("view", "status")
    handlers = request.app[VIEWS]
    handler = handlers.get(view)
    if handler is None:
        raise BadRequest(f"unknown view {view!r}: use one of {', '.join(sorted(handlers))}")
    return await handler(request, who, record)


async def status_view(
    request: web.Request, who: auth.Principal, record: ServiceRecord
) -> web.Response:
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    observed, events = await asyncio.gather(
        store.get_status(record.project, record.name),
        store.recent_events(record.project, record.name),
    )
    defs: dict[int, TaskDefinition] = {}
    if record.definition is not None:
        defs[record.definition.revision] = record.definition
    if observed is not None:
        for task in observed.tasks:
            if task.revision not in defs:
                td = await store.get_revision(record, task.revision)
                if td is not None:
                    defs[task.revision] = td
    body: dict[str, Any] = views.summary(settings, record)
    body["status"] = views.status_view(record, observed, events, defs)
    return json_response(body)


def idempotency_key(request: web.Request) -> str:
    """The request's Idempotency-Key ("" without one); 400 if it is malformed."""
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return ""
    if not _IDEMPOTENCY_KEY.fullmatch(raw):
        raise BadRequest(
            f"{IDEMPOTENCY_HEADER} must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' "
            "and '-' (a random UUID is a good choice)"
        )
    return raw


async def _stored_earlier(store: Store, record: ServiceRecord, key: str) -> TaskDefinition | None:
    """The revision an earlier request with this Idempotency-Key stored, if any."""
    if not key:
        return None
    if record.definition is not None and record.definition.request_id == key:
        return record.definition
    for td in await store.list_revisions(record.project, record.name, record.uid):
        if td.request_id == key:
            return td
    return None


def _revision_answer(
    request: web.Request, record: ServiceRecord, td: TaskDefinition, warnings: list[str]
) -> web.Response:
    body = views.summary(request.app[SETTINGS], record)
    body["revision"] = td.revision
    body["task_definition"] = views.revision_view(td, record.revision)
    body["warnings"] = warnings
    return json_response(body)


async def _store_revision(
    request: web.Request,
    who: auth.Principal,
    make: Callable[[ServiceRecord], tuple[TaskDefinition, list[str]]],
) -> web.Response:
    """Compare-and-set a new revision onto the record; retried when another update wins."""
    store = request.app[STORE]
    key = idempotency_key(request)
    while True:
        found = await find_service(request, who, include_deleting=False)
        record = found.value
        earlier = await _stored_earlier(store, record, key)
        if earlier is not None:
            return _revision_answer(request, record, earlier, [])
        td, warnings = make(record)
        td = msgspec.structs.replace(td, request_id=key)
        updated = msgspec.structs.replace(
            record, updated_at=iso_now(), revision=td.revision, definition=td
        )
        try:
            await store.store_revision(found, updated, td)
        except Conflict:
            continue
        break
    # Stored: what follows only tells about it, and cannot undo it.
    origin = f" (rollback to revision {td.rolled_back_from})" if td.rolled_back_from else ""
    await store.announce(
        ServiceUpdated(
            project=record.project,
            service=record.name,
            revision=td.revision,
            image=td.image,
            message=f"service {record.name} updated by {who.username} to revision "
            f"{td.revision}{origin}: image {td.image}, memory {td.memory_reservation}-"
            f"{td.memory_limit} MB, port {td.container_port}",
        )
    )
    for text in warnings:
        await store.announce(
            ServiceWarning(
                project=record.project, service=record.name, revision=td.revision, message=text
            )
        )
    return _revision_answer(request, updated, td, warnings)


async def update_service(request: web.Request) -> web.Response:
    who = await principal(request)
    settings = request.app[SETTINGS]
    await find_service(request, who, include_deleting=False)
    body = await read_body(request, ServiceDefinitionBody, settings.max_body_bytes)

    largest = await request.app[STORE].largest_node_mb()

    def make(record: ServiceRecord) -> tuple[TaskDefinition, list[str]]:
        planned = build_revision(settings, record, body, largest_node_mb=largest)
        return planned.definition, planned.warnings

    return await _store_revision(request, who, make)


async def delete_service(request: web.Request) -> web.Response:
    who = await principal(request)
    name = path_name(request, who.project)
    deleter = request.app[DELETER]
    found = await deleter.begin(who.project, name)
    if found is None:
        raise not_found(name, who.project)
    if await deleter.wait_finished(found, DELETE_WAIT_S):
        return json_response({"name": name, "status": "DELETED"})
    return json_response({"name": name, "status": "DRAINING"}, status=202)


async def patch_service(request: web.Request) -> web.Response:
    """Change what is not a revision: the health check and the number of tasks.

    Neither makes a revision nor restarts a running task: the deployer applies a
    new health check to the running tasks and starts or drains tasks to the count."""
    who = await principal(request)
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    await find_service(request, who, include_deleting=False)
    body = await read_body(request, PatchServiceRequest, settings.max_body_bytes)
    count = None if isinstance(body.count, msgspec.UnsetType) else body.count
    if body.health_check is None and count is None:
        raise BadRequest('nothing to change: send {"health_check": {...}} and/or {"count": N}')
    if count is not None and not 0 <= count <= settings.max_tasks_per_service:
        raise BadRequest(
            f"count must be between 0 and {settings.max_tasks_per_service} "
            f"(SERVICECTL_MAX_TASKS_PER_SERVICE), got {count}"
        )
    while True:
        found = await find_service(request, who, include_deleting=False)
        record = found.value
        changes: dict[str, Any] = {"updated_at": iso_now()}
        if body.health_check is not None:
            changes["health_check"] = health_check_from(body.health_check, record.health_check)
        if count is not None:
            changes["count"] = count
        updated = msgspec.structs.replace(record, **changes)
        try:
            await store.update_service(updated, found.revision)
        except Conflict:
            continue
        break
    if count is not None and count != record.count:
        await store.announce(
            ServiceScaled(
                project=record.project,
                service=record.name,
                count=count,
                previous=record.count,
                message=f"service {record.name} scaled by {who.username} from "
                f"{record.count} to {count} tasks",
            )
        )
    hc = updated.health_check
    if body.health_check is not None and hc is not None:
        path = health_check_path(record.project, record.name, hc)
        await store.announce(
            HealthCheckChanged(
                project=record.project,
                service=record.name,
                path=path,
                status_codes=hc.status_codes,
                interval=hc.interval,
                message=f"health check of {record.name} changed by {who.username}: GET "
                f"{path} every {hc.interval} s, healthy on {hc.status_codes}",
            )
        )
    return await status_view(request, who, updated)


# ------------------------------------------------------------------ revisions
async def list_revisions(request: web.Request) -> web.Response:
    who = await principal(request)
    found = await find_service(request, who)
    record = found.value
    revs = await request.app[STORE].list_revisions(record.project, record.name, record.uid)
    if record.definition is not None and all(
        r.revision != record.definition.revision for r in revs
    ):
        revs.append(record.definition)
    return json_response(
        {
            "name": record.name,
            "revision": record.revision,
            "revisions": [views.revision_view(td, record.revision) for td in revs],
        }
    )


async def rollback_service(request: web.Request) -> web.Response:
    who = await principal(request)
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    found = await find_service(request, who, include_deleting=False)
    req = await read_body(request, RollbackRequest, settings.max_body_bytes)
    record = found.value
    if record.revision == 0:
        raise BadRequest(f"service {record.name!r} has no revisions to roll back to")
    target = req.revision
    if target is None:
        observed = await store.get_status(record.project, record.name)
        serving = (
            observed.serving_revision if observed and observed.service_uid == record.uid else 0
        )
        target = serving if serving and serving != record.revision else record.revision - 1
    if target < 1 or target > record.revision:
        raise BadRequest(
            f"revision must be between 1 and {record.revision}, got {target}"
            if req.revision is not None
            else f"service {record.name!r} has no earlier revision to roll back to"
        )
    source = await store.get_revision(record, target)
    if source is None:
        raise NotFound(f"revision {target} of service {record.name!r} no longer exists")
    old_body = body_of(source)

    largest = await store.largest_node_mb()

    def make(current: ServiceRecord) -> tuple[TaskDefinition, list[str]]:
        planned = build_revision(
            settings, current, old_body, rolled_back_from=target, largest_node_mb=largest
        )
        return planned.definition, planned.warnings

    return await _store_revision(request, who, make)

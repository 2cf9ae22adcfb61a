"""Endpoints under /services: the clfpy contract plus revisions and rollback.

Each handler authenticates, validates, reads or compare-and-sets the service
record, publishes an event and answers with a view. Every service is looked up
within the caller's project only, so another project's service is a 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from services.api import auth, views
from services.api.bodies import (
    CreateServiceRequest,
    RollbackRequest,
    ServiceDefinitionBody,
    read_body,
)
from services.api.definitions import body_of, build_revision
from services.api.deletion import Deleter
from services.api.errors import AlreadyExists, BadRequest, NotFound
from services.api.keys import SETTINGS, STORE
from services.api.responses import json_response
from services.api.secrets import new_id
from shared.bus import Conflict
from shared.clock import iso_now
from shared.events import ServiceCreated, ServiceUpdated, ServiceWarning
from shared.kv import Versioned
from shared.models import HealthCheck, ServiceRecord, TaskDefinition
from shared.rules import RuleViolation, check_health_check, check_service_name

DELETER = web.AppKey("deleter", Deleter)
DELETE_WAIT_S = 15.0

ViewHandler = Callable[[web.Request, auth.Principal, ServiceRecord], Awaitable[web.StreamResponse]]
VIEWS = web.AppKey("views", dict[str, ViewHandler])
# encoded GET /services answers, by (project, index version): rebuilt after any change
LISTINGS = web.AppKey("listings", dict[tuple[str, int], bytes])
LISTINGS_MAX = 1000


async def principal(request: web.Request) -> auth.Principal:
    return await auth.check_token(request.app[STORE], auth.token_from_headers(request))


def path_name(request: web.Request, project: str) -> str:
    name = request.match_info["name"]
    try:
        return check_service_name(project, name)
    except RuleViolation as err:
        # No such name can exist; clfpy expects 404 for unknown services.
        raise NotFound(f"no service named {name!r} ({err})") from None


async def find_service(
    request: web.Request, who: auth.Principal, *, include_deleting: bool = True
) -> Versioned[ServiceRecord]:
    name = path_name(request, who.project)
    found = await request.app[STORE].get_service(who.project, name)
    if found is None or (found.value.deleting and not include_deleting):
        raise NotFound(f"no service named {name!r} in project {who.project!r}")
    return found


# ------------------------------------------------------------------ collection
async def list_services(request: web.Request) -> web.Response:
    who = await principal(request)
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    cache = request.app[LISTINGS]
    version = store.listing_version(who.project)
    if version is not None and (cached := cache.get((who.project, version))) is not None:
        return web.Response(body=cached, content_type="application/json")
    records = await store.list_services(who.project)
    response = json_response([views.summary(settings, r) for r in records])
    if version is not None and isinstance(response.body, bytes):
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
    hc = None
    if body.health_check is not None:
        hc = check_health_check(
            HealthCheck(
                rel_path=body.health_check.rel_path,
                status_codes=body.health_check.status_codes,
                interval=body.health_check.interval,
            )
        )
    now = iso_now()
    record = ServiceRecord(
        project=who.project,
        name=name,
        uid=new_id(8),
        created_at=now,
        updated_at=now,
        health_check=hc,
    )
    try:
        await store.create_service(record)
    except Conflict:
        existing = await store.get_service(who.project, name)
        if existing is not None and existing.value.deleting:
            raise AlreadyExists(
                f"service {name!r} is still being deleted; try again in a few seconds"
            ) from None
        raise AlreadyExists(f"service {name!r} already exists in project {who.project!r}") from None
    await store.publish_event(
        ServiceCreated(
            project=who.project,
            service=name,
            message=f"service {name} created by {who.username}",
        )
    )
    return json_response(views.summary(settings, record), status=201)


# ------------------------------------------------------------------ one service
async def get_service(request: web.Request) -> web.StreamResponse:
    who = await principal(request)
    name = path_name(request, who.project)
    record = await request.app[STORE].read_service(who.project, name)
    if record is None:
        raise NotFound(f"no service named {name!r} in project {who.project!r}")
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
                td = await store.get_revision(record.project, record.name, task.revision)
                if td is not None:
                    defs[task.revision] = td
    body: dict[str, Any] = views.summary(settings, record)
    body["status"] = views.status_view(record, observed, events, defs)
    return json_response(body)


async def _store_revision(
    request: web.Request,
    who: auth.Principal,
    make: Callable[[ServiceRecord], tuple[TaskDefinition, list[str]]],
) -> web.Response:
    """Compare-and-set a new revision onto the record; retried when another update wins."""
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    while True:
        found = await find_service(request, who, include_deleting=False)
        record = found.value
        td, warnings = make(record)
        updated = msgspec.structs.replace(
            record, updated_at=iso_now(), revision=td.revision, definition=td
        )
        try:
            await store.update_service(updated, found.revision)
        except Conflict:
            continue
        break
    await store.put_revision(td)
    origin = f" (rollback to revision {td.rolled_back_from})" if td.rolled_back_from else ""
    await store.publish_event(
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
        await store.publish_event(
            ServiceWarning(
                project=record.project, service=record.name, revision=td.revision, message=text
            )
        )
    body = views.summary(settings, updated)
    body["revision"] = td.revision
    body["task_definition"] = views.revision_view(td, td.revision)
    body["warnings"] = warnings
    return json_response(body)


async def update_service(request: web.Request) -> web.Response:
    who = await principal(request)
    settings = request.app[SETTINGS]
    await find_service(request, who, include_deleting=False)
    body = await read_body(request, ServiceDefinitionBody, settings.max_body_bytes)

    def make(record: ServiceRecord) -> tuple[TaskDefinition, list[str]]:
        planned = build_revision(settings, record, body)
        return planned.definition, planned.warnings

    return await _store_revision(request, who, make)


async def delete_service(request: web.Request) -> web.Response:
    who = await principal(request)
    name = path_name(request, who.project)
    deleter = request.app[DELETER]
    found = await deleter.begin(who.project, name)
    if found is None:
        raise NotFound(f"no service named {name!r} in project {who.project!r}")
    if await deleter.wait_finished(found, DELETE_WAIT_S):
        return json_response({"name": name, "status": "DELETED"})
    return json_response({"name": name, "status": "DRAINING"}, status=202)


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
    source = await store.get_revision(record.project, record.name, target)
    if source is None or source.service_uid != record.uid:
        raise NotFound(f"revision {target} of service {record.name!r} no longer exists")
    old_body = body_of(source)

    def make(current: ServiceRecord) -> tuple[TaskDefinition, list[str]]:
        planned = build_revision(settings, current, old_body, rolled_back_from=target)
        return planned.definition, planned.warnings

    return await _store_revision(request, who, make)

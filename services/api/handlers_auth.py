"""Endpoints under /auth/tokens: log in (issue a session token), inspect and revoke it."""

from __future__ import annotations

from aiohttp import web

from services.api import auth
from services.api.bodies import TokenRequest, read_body
from services.api.errors import Unauthorized
from services.api.keys import SETTINGS, STORE, USERS
from services.api.responses import json_response
from shared import names, natsconf
from shared.clock import iso
from shared.rules import RuleViolation, check_project, check_username

_BAD_LOGIN = "invalid username, password or project"


async def create_token(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    body = await read_body(request, TokenRequest, settings.max_body_bytes)
    try:
        check_username(body.username)
        check_project(body.project)
    except RuleViolation:
        # Same answer as a wrong password: do not tell which part was wrong.
        await auth.verify_user(None, body.password)
        raise Unauthorized(_BAD_LOGIN) from None
    found = await request.app[USERS].get(body.username)
    user = found.value if found else None
    if not await auth.verify_user(user, body.password) or user is None:
        raise Unauthorized(_BAD_LOGIN)
    if body.project not in user.projects:
        raise Unauthorized(_BAD_LOGIN)
    token, expires_at = await auth.issue_token(
        store, user.username, body.project, settings.token_ttl_s
    )
    return json_response(
        {
            "token": token,
            "expires_at": iso(expires_at),
            "username": user.username,
            "project": body.project,
        },
        status=201,
    )


async def show_token(request: web.Request) -> web.Response:
    principal = await auth.check_token(request.app[STORE], auth.token_from_headers(request))
    return json_response(
        {
            "username": principal.username,
            "project": principal.project,
            "expires_at": iso(principal.expires_at),
        }
    )


async def nats_details(request: web.Request) -> web.Response:
    """How to follow the caller's project on NATS with their session token."""
    settings = request.app[SETTINGS]
    token = auth.token_from_headers(request)
    principal = await auth.check_token(request.app[STORE], token)
    project = principal.project
    sid = natsconf.session_id(token)
    filters = natsconf.session_consumer_filters(project)
    return json_response(
        {
            "url": settings.nats_users_url,
            "user": "token: your session token (the same as for this API)",
            "inbox_prefix": natsconf.session_inbox(token),
            "expires_at": iso(principal.expires_at),
            "live": {
                "events": names.events_of_project(project),
                "logs": names.logs_of_project(project),
            },
            "history": {
                kind: {"stream": stream, "consumer": sid, "filter": filters[stream]}
                for kind, stream in (("events", names.STREAM_EVENTS), ("logs", names.STREAM_LOGS))
            },
            "last_message": {
                "events": f"$JS.API.DIRECT.GET.{names.STREAM_EVENTS}.<subject>",
                "logs": f"$JS.API.DIRECT.GET.{names.STREAM_LOGS}.<subject>",
            },
        }
    )


async def revoke_token(request: web.Request) -> web.Response:
    store = request.app[STORE]
    principal = await auth.check_token(store, auth.token_from_headers(request))
    await store.delete_token(principal.token_digest)
    return json_response({"revoked": True})

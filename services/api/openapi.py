"""`/openapi.json`: the API described for people and for schemathesis.

Request bodies come from the same msgspec structs the handlers decode with, so
the description cannot drift from what is accepted. Built once, served as is.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from aiohttp import web

from services.api.bodies import (
    CreateServiceRequest,
    PatchServiceRequest,
    RollbackRequest,
    ServiceDefinitionBody,
    TokenRequest,
)
from services.api.keys import SETTINGS
from services.api.responses import json_response
from shared import rules

_ERROR = {"$ref": "#/components/schemas/Error"}
_LINKS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"href": {"type": "string"}, "rel": {"type": "string"}},
        "required": ["href", "rel"],
    },
}
_SUMMARY = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "links": _LINKS},
    "required": ["name", "links"],
}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _body(name: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }


_NAME_PARAM = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "service name: starts with a-z, then a-z, 0-9 or '-', ends with a letter "
    "or digit; project and name together (with '-') at most 32 characters",
    "schema": {"type": "string", "pattern": "^[a-z]([a-z0-9-]*[a-z0-9])?$", "maxLength": 30},
}
_AUTH: list[dict[str, list[str]]] = [{"token": []}, {"bearer": []}]
_DENIED = _err("missing, malformed, expired or revoked session token")
_UNKNOWN = _err("no such service in the caller's project")


def _websocket(summary: str, description: str) -> dict[str, Any]:
    """A websocket endpoint (logs/follow, events/follow): a GET that upgrades."""
    return {
        "parameters": [_NAME_PARAM],
        "get": {
            "summary": summary,
            "description": description + " Besides the X-Auth-Token or Bearer header, the token "
            "may be sent as the `token` query parameter or as the websocket subprotocol "
            "`servicectl.token.<token>` (offered together with `servicectl.v1`).",
            "security": [{"token": []}, {"bearer": []}, {"token_query": []}],
            "parameters": [
                {
                    "name": "tail",
                    "in": "query",
                    "required": False,
                    "description": "how many stored messages to send first (default 0)",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 10000},
                },
            ],
            "responses": {
                "101": {"description": "switching to the websocket protocol"},
                "400": _err("not a websocket request, or bad tail"),
                "403": _DENIED,
                "404": _UNKNOWN,
                "503": _err("bus unavailable"),
            },
        },
    }


@cache
def spec(prefix: str) -> dict[str, Any]:
    (
        (
            token_s,
            create_s,
            definition_s,
            rollback_s,
            _patch_s,
        ),
        components,
    ) = msgspec.json.schema_components(
        [
            TokenRequest,
            CreateServiceRequest,
            ServiceDefinitionBody,
            RollbackRequest,
            PatchServiceRequest,
        ],
        ref_template="#/components/schemas/{name}",
    )
    components["Error"] = {
        "type": "object",
        "properties": {"Error": {"type": "string"}},
        "required": ["Error"],
    }
    definition = components["ServiceDefinitionBody"]
    props = definition["properties"]
    props["memory-reservation"].update(
        {"minimum": rules.MIN_MEMORY_RESERVATION_MB, "description": "MB, soft reservation"}
    )
    props["memory-limit"].update(
        {"minimum": rules.MIN_MEMORY_LIMIT_MB, "description": "MB, hard limit; killed above it"}
    )
    props["container-port"].update({"minimum": 1, "maximum": 65535})
    props["environment"]["maxItems"] = rules.MAX_ENV_VARS
    view_param = {
        "name": "view",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["status", "docker", "logs"]},
    }
    tail_param = {
        "name": "tail",
        "in": "query",
        "required": False,
        "description": "logs view: lines per log stream (default 20; tail * streams <= 100000)",
        "schema": {"type": "integer", "minimum": 0, "maximum": 10000},
    }
    streams_param = {
        "name": "streams",
        "in": "query",
        "required": False,
        "description": "logs view: how many of the most recent log streams (default 1)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    }
    one = f"{prefix}/services/{{name}}"
    paths: dict[str, Any] = {
        f"{prefix}/healthz": {
            "get": {
                "summary": "Whether the api reaches NATS",
                "responses": {"200": _ok("connected"), "503": _ok("NATS unreachable")},
            }
        },
        f"{prefix}/auth/registry": {
            "get": {
                "summary": "The registry's token server (Docker token protocol, HTTP Basic auth)",
                "parameters": [
                    {
                        "name": "service",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "scope",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "repository:<project>/<service>:pull,push (repeatable)",
                    },
                ],
                "responses": {
                    "200": _ok("a bearer token for the granted scopes"),
                    "401": _ok("missing or invalid registry credentials"),
                },
            }
        },
        f"{prefix}/auth/tokens": {
            "post": {
                "summary": "Log in: issue a session token for one project",
                "requestBody": _body("TokenRequest"),
                "responses": {
                    "201": _ok("token issued"),
                    "400": _err("malformed body"),
                    "403": _err("wrong credentials or project"),
                    "413": _err("body too large"),
                    "415": _err("not JSON"),
                },
            }
        },
        f"{prefix}/auth/tokens/current": {
            "get": {
                "summary": "Who the token belongs to and when it expires",
                "security": _AUTH,
                "responses": {"200": _ok("token details"), "403": _DENIED},
            },
            "delete": {
                "summary": "Revoke the token",
                "security": _AUTH,
                "responses": {"200": _ok("revoked"), "403": _DENIED},
            },
        },
        f"{prefix}/auth/nats": {
            "get": {
                "summary": "How to follow the project's events and logs on NATS with this token",
                "security": _AUTH,
                "responses": {"200": _ok("connection details"), "403": _DENIED},
            },
        },
        f"{prefix}/services": {
            "get": {
                "summary": "List the project's services",
                "security": _AUTH,
                "responses": {
                    "200": _ok("services", {"type": "array", "items": _SUMMARY}),
                    "403": _DENIED,
                },
            },
            "post": {
                "summary": "Create a service",
                "security": _AUTH,
                "requestBody": _body("CreateServiceRequest"),
                "responses": {
                    "201": _ok("created", _SUMMARY),
                    "400": _err("invalid name or health check"),
                    "403": _DENIED,
                    "405": _err("a service of that name exists"),
                    "413": _err("body too large"),
                    "415": _err("not JSON"),
                },
            },
        },
        one: {
            "parameters": [_NAME_PARAM],
            "get": {
                "summary": "Status (default), Docker credentials (view=docker) or logs (view=logs)",
                "security": _AUTH,
                "parameters": [view_param, tail_param, streams_param],
                "responses": {
                    "200": _ok("the requested view"),
                    "400": _err("unknown view or bad tail/streams"),
                    "403": _DENIED,
                    "404": _UNKNOWN,
                    "503": _err("registry or bus unavailable"),
                },
            },
            "put": {
                "summary": "Deploy a new revision of the service definition",
                "security": _AUTH,
                "requestBody": _body("ServiceDefinitionBody"),
                "responses": {
                    "200": _ok("revision stored; deployment follows"),
                    "400": _err("invalid definition"),
                    "403": _DENIED,
                    "404": _UNKNOWN,
                    "413": _err("body too large"),
                    "415": _err("not JSON"),
                },
            },
            "patch": {
                "summary": "Change the health check or the number of tasks (no new revision)",
                "security": _AUTH,
                "requestBody": _body("PatchServiceRequest"),
                "responses": {
                    "200": _ok("changed; the status view"),
                    "400": _err("invalid change"),
                    "403": _DENIED,
                    "404": _UNKNOWN,
                    "413": _err("body too large"),
                    "415": _err("not JSON"),
                },
            },
            "delete": {
                "summary": "Delete the service, its tasks, route, images and credentials",
                "security": _AUTH,
                "responses": {
                    "200": _ok("deleted"),
                    "202": _ok("deletion in progress (DRAINING)"),
                    "403": _DENIED,
                    "404": _UNKNOWN,
                },
            },
        },
        f"{one}/revisions": {
            "parameters": [_NAME_PARAM],
            "get": {
                "summary": "Every revision of the service definition",
                "security": _AUTH,
                "responses": {"200": _ok("revisions"), "403": _DENIED, "404": _UNKNOWN},
            },
        },
        f"{one}/rollback": {
            "parameters": [_NAME_PARAM],
            "post": {
                "summary": "Deploy an earlier revision again (as a new revision)",
                "security": _AUTH,
                "requestBody": _body("RollbackRequest"),
                "responses": {
                    "200": _ok("revision stored; deployment follows"),
                    "400": _err("no such earlier revision"),
                    "403": _DENIED,
                    "404": _UNKNOWN,
                },
            },
        },
        f"{one}/logs/follow": _websocket(
            "Websocket: the service's log lines as they are written, across task replacements",
            'text messages: {"type": "log", "task", "stream", "time", "n", "message"}; '
            '{"type": "live"} once the backlog is sent; {"type": "missed", "count"} when a '
            "slow client lost lines. Closes with 4404 when the service is deleted, 4403 when "
            "the token expires or is revoked, 1001 when the api shuts down.",
        ),
        f"{one}/events/follow": _websocket(
            "Websocket: the service's events as they happen",
            "text messages: each event as JSON (see docs/EVENTS.md), plus the control messages "
            "and close codes of logs/follow.",
        ),
    }
    del token_s, create_s, definition_s, rollback_s
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "servicectl",
            "version": "1",
            "description": "Deploy and run HTTP services as containers. Errors are "
            '{"Error": "<message>"}.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "token_query": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
    }


async def serve(request: web.Request) -> web.Response:
    return json_response(spec(request.app[SETTINGS].api_prefix))

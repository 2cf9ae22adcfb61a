"""Caddy's whole JSON configuration as a pure function of the routes. No I/O.

One route per service matches `/<project>-<service>` and `/<project>-<service>/*`
and proxies with the path unchanged (services listen under CONTEXT_ROOT). A
service with no live upstream answers 503; anything else answers 404 JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared import names
from shared.models import Route
from shared.settings import Settings

JSON_HEADERS = {"Content-Type": ["application/json"]}
NOT_FOUND_BODY = json.dumps({"Error": "no service is deployed at this path"})


def _unavailable_body(project: str, service: str) -> str:
    return json.dumps(
        {"Error": f"service {project}-{service} has no healthy task right now; try again shortly"}
    )


def service_route(route: Route) -> dict[str, Any]:
    path = names.deployment_path(route.project, route.service)
    handler: dict[str, Any]
    if route.upstreams:
        handler = {
            "handler": "reverse_proxy",
            "upstreams": [{"dial": u} for u in route.upstreams],
            "load_balancing": {
                "selection_policy": {"policy": "round_robin"},
                "try_duration": "2s",
                "try_interval": "100ms",
            },
        }
    else:
        handler = {
            "handler": "static_response",
            "status_code": 503,
            "headers": {**JSON_HEADERS, "Retry-After": ["5"]},
            "body": _unavailable_body(route.project, route.service),
        }
    return {
        "@id": names.caddy_route_id(route.project, route.service),
        "match": [{"path": [path, f"{path}/*"]}],
        "handle": [handler],
        "terminal": True,
    }


def not_found_route() -> dict[str, Any]:
    return {
        "@id": names.CADDY_NOT_FOUND_ID,
        "handle": [
            {
                "handler": "static_response",
                "status_code": 404,
                "headers": JSON_HEADERS,
                "body": NOT_FOUND_BODY,
            }
        ],
        "terminal": True,
    }


def error_routes() -> list[dict[str, Any]]:
    """Proxy errors (upstream refused, timed out) answered as JSON, not an empty body."""
    body = (
        '{"Error": "{http.error.status_code} {http.error.status_text}: the service did not answer"}'
    )
    return [
        {
            "handle": [
                {
                    "handler": "static_response",
                    "status_code": "{http.error.status_code}",
                    "headers": JSON_HEADERS,
                    "body": body,
                }
            ]
        }
    ]


def build_config(settings: Settings, routes: Mapping[str, Route]) -> dict[str, Any]:
    """The complete configuration to load into Caddy for these routes."""
    service_routes = [service_route(routes[key]) for key in sorted(routes)]
    return {
        "admin": {"listen": settings.caddy_admin, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {
            "http": {
                "servers": {
                    names.CADDY_SERVER: {
                        "listen": [f"{settings.gateway_host}:{settings.gateway_port}"],
                        "automatic_https": {"disable": True},
                        "routes": [*service_routes, not_found_route()],
                        "errors": {"routes": error_routes()},
                    }
                }
            }
        },
    }

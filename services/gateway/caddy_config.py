"""Caddy's whole JSON configuration. Pure, and the same whatever is deployed.

Caddy never reloads after start: a reload closes idle keep-alive connections,
and a client that reuses one at that instant gets an error. So there is one
route for every service path: the first path segment `<project>-<service>`
names an SRV record that the gateway's DNS responder answers with the
service's live tasks (looked up again every `SRV_REFRESH`, and kept for
`SRV_GRACE` at a time if the responder is away). The path reaches the service unchanged
(services listen under CONTEXT_ROOT). Two loopback-only fallback servers answer
for services with no live task (503) and paths no service owns (404), both as
JSON, and proxy errors are JSON too.
"""

from __future__ import annotations

import json
from typing import Any

from shared import names
from shared.settings import Settings

JSON_HEADERS = {"Content-Type": ["application/json"]}
NOT_FOUND_BODY = json.dumps({"Error": "no service is deployed at this path"})
UNAVAILABLE_BODY = json.dumps(
    {"Error": "this service has no healthy task right now; try again shortly"}
)
SERVICE_PATH = r"^/[a-z][a-z0-9_-]*(/.*)?$"
SRV_REFRESH = "50ms"
SRV_REFRESH_S = 0.05
# After a failed lookup Caddy uses its last answer without asking again for this
# long: short, so that routes changed meanwhile are seen soon after.
SRV_GRACE = "5s"


def _static(
    status: int | str, body: str, extra: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {**JSON_HEADERS, **(extra or {})},
        "body": body,
    }


def services_route(settings: Settings) -> dict[str, Any]:
    dns = f"127.0.0.1:{settings.gateway_dns_port}"
    return {
        "@id": "route-services",
        "match": [{"path_regexp": {"pattern": SERVICE_PATH}}],
        "handle": [
            {
                "handler": "reverse_proxy",
                "dynamic_upstreams": {
                    "source": "srv",
                    "name": "{http.request.uri.path.0}" + names.DNS_SERVICE_SUFFIX,
                    "refresh": SRV_REFRESH,
                    "grace_period": SRV_GRACE,
                    "resolver": {"addresses": [dns]},
                    "dial_timeout": "1s",
                },
                "transport": {
                    "protocol": "http",
                    "resolver": {"addresses": [dns]},
                    "keep_alive": {"max_idle_conns_per_host": 128},
                },
                "load_balancing": {
                    "selection_policy": {"policy": "round_robin"},
                    "try_duration": "2s",
                    "try_interval": "100ms",
                },
            }
        ],
        "terminal": True,
    }


def not_found_route() -> dict[str, Any]:
    return {
        "@id": names.CADDY_NOT_FOUND_ID,
        "handle": [_static(404, NOT_FOUND_BODY)],
        "terminal": True,
    }


def error_routes() -> list[dict[str, Any]]:
    """Proxy errors (upstream refused, timed out) answered as JSON, not an empty body."""
    body = (
        '{"Error": "{http.error.status_code} {http.error.status_text}: the service did not answer"}'
    )
    return [{"handle": [_static("{http.error.status_code}", body)]}]


def _fallback(port: int, handler: dict[str, Any]) -> dict[str, Any]:
    return {
        "listen": [f"127.0.0.1:{port}"],
        "automatic_https": {"disable": True},
        "routes": [{"handle": [handler], "terminal": True}],
    }


def build_config(settings: Settings) -> dict[str, Any]:
    """The complete configuration to load into Caddy."""
    return {
        "admin": {"listen": settings.caddy_admin, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {
            "http": {
                "servers": {
                    names.CADDY_SERVER: {
                        "listen": [f"{settings.gateway_host}:{settings.gateway_port}"],
                        "automatic_https": {"disable": True},
                        "routes": [services_route(settings), not_found_route()],
                        "errors": {"routes": error_routes()},
                    },
                    names.CADDY_NOTFOUND_SERVER: _fallback(
                        settings.gateway_notfound_port, _static(404, NOT_FOUND_BODY)
                    ),
                    names.CADDY_UNAVAILABLE_SERVER: _fallback(
                        settings.gateway_unavailable_port,
                        _static(503, UNAVAILABLE_BODY, {"Retry-After": ["5"]}),
                    ),
                }
            }
        },
    }

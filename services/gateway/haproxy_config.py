"""HAProxy's configuration files and command line. Pure: returns text, writes nothing.

One frontend on the gateway address picks a backend by the request's first
path segment, an exact match in the routes map (`/p-sX/` never reaches
`/p-s`); the path goes upstream unchanged. Every service owns one backend of a
pre-declared pool of slots (`balance roundrobin`, retries on another server
when a connection fails); servers are added and removed at run time through
the stats socket, and the same routes are written into these files so that a
restart or a reload starts with all of them.

Answers of the proxy itself are JSON: 404 for a path no service owns, 503 with
Retry-After for a service with no healthy task, 502/504 when a task fails to
answer. The stats socket (admin level) and the master socket are unix sockets
of mode 0600 in the data dir: no other local user can change routes.

A reload (to grow the pool) is seamless: the master hands the listening
sockets to the new worker, and the old one answers each keep-alive
connection's next request with `Connection: close` before it closes it
(`option idle-close-on-response`), for at most `hard-stop-after`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from services.gateway.model import server_name, slot_names
from services.gateway.plan import Layout
from shared.settings import Settings, SettingsError

HAPROXY_BIN = "/usr/sbin/haproxy"
# Dynamic servers ignore `default-server`, and keep no idle connection to the
# upstream without `pool-max-conn -1` (half the throughput), so every server,
# static or added at run time, gets these.
SERVER_OPTIONS = "pool-max-conn -1 pool-purge-delay 5s"
NOT_FOUND_BACKEND = "not_found"
RETRY_AFTER_S = 5
HARD_STOP_AFTER = "30s"

NOT_FOUND_BODY = '{"Error": "no service is deployed at this path"}'
UNAVAILABLE_BODY = '{"Error": "this service has no healthy task right now; try again shortly"}'
# HAProxy's own answers, as JSON. Its 503 means that no server took the
# connection (after retries on the others): the task failed, hence a 502.
ERRORS = {
    400: "400 Bad Request: the request is not valid HTTP",
    403: "403 Forbidden",
    408: "408 Request Timeout: the request was not received in time",
    500: "500 Internal Server Error in the gateway",
    502: "502 Bad Gateway: the service did not answer",
    504: "504 Gateway Timeout: the service did not answer in time",
}
FAILED_CONNECT_STATUS = (502, "Bad Gateway")
FAILED_CONNECT_BODY = '{"Error": "502 Bad Gateway: the service did not answer"}'


# Paths go into the configuration, `-S` and runtime commands unquoted.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@-]+")
MAX_SOCKET_PATH = 107  # bytes in sun_path, with its terminating NUL


class UnusablePath(SettingsError):
    """The data dir's path is one HAProxy cannot be given."""


def check_paths(settings: Settings) -> None:
    for path in (settings.haproxy_config_path, settings.haproxy_map_path):
        if not _SAFE_PATH.fullmatch(str(path)):
            raise UnusablePath(
                f"HAProxy cannot use {str(path)!r}: the data dir (SERVICECTL_DATA_DIR) may "
                "only contain letters, digits and . _ / + @ -"
            )
    for sock in (settings.haproxy_socket_path, settings.haproxy_master_socket_path):
        if len(str(sock).encode()) > MAX_SOCKET_PATH:
            raise UnusablePath(
                f"{sock} is too long for a unix socket (at most {MAX_SOCKET_PATH} bytes): "
                "choose a shorter SERVICECTL_DATA_DIR"
            )


def argv(settings: Settings) -> list[str]:
    """HAProxy in master-worker mode, in the foreground (for supervisord and tests)."""
    master = f"{settings.haproxy_master_socket_path},mode,600"
    return [HAPROXY_BIN, "-W", "-db", "-f", str(settings.haproxy_config_path), "-S", master]


def _error_body(text: str) -> str:
    return '{"Error": "' + text + '"}'


def _json(status: int, body: str, extra: str = "") -> str:
    return f"status {status} content-type application/json{extra} string '{body}'"


def _failed_connect_file() -> str:
    status, reason = FAILED_CONNECT_STATUS
    body = FAILED_CONNECT_BODY
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        "cache-control: no-cache\r\n"
        f"content-length: {len(body.encode())}\r\n"
        "\r\n"
        f"{body}"
    )


def _slot(name: str, addrs: tuple[str, ...]) -> list[str]:
    lines = [
        f"backend {name}",
        "    balance roundrobin",
        # no usable server: the service has no healthy task right now. A worker that
        # is stopping after a reload counts none, but still has them: not then.
        "    http-request return "
        + _json(503, UNAVAILABLE_BODY, f" hdr Retry-After {RETRY_AFTER_S}")
        + " if { nbsrv eq 0 } !{ stopping }",
    ]
    lines += [f"    server {server_name(a)} {a} {SERVER_OPTIONS}" for a in addrs]
    return [*lines, ""]


def render_config(settings: Settings, layout: Layout) -> str:
    run = settings.haproxy_config_path.parent
    out = [
        "# written by servicectl (services/gateway/haproxy_config.py); edits are overwritten",
        "global",
        "    nbthread 1",
        f"    hard-stop-after {HARD_STOP_AFTER}",
        f"    stats socket {settings.haproxy_socket_path} mode 600 level admin expose-fd listeners",
        "    stats timeout 10s",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 60s",
        "    timeout server 120s",
        "    timeout http-request 30s",
        "    timeout http-keep-alive 30s",
        "    timeout tunnel 1h",
        "    timeout queue 5s",
        "    option idle-close-on-response",
        "    option redispatch 1",
        "    retries 3",
        f"    errorfile 503 {run / 'haproxy-503.http'}",
        *(f"    http-error {_json(status, _error_body(text))}" for status, text in ERRORS.items()),
        "",
        "frontend gateway",
        f"    bind {settings.gateway_host}:{settings.gateway_port}",
        "    http-request del-header x-forwarded-for",
        "    option forwardfor",
        "    http-request set-header x-forwarded-proto http",
        "    http-request set-header x-forwarded-host %[req.hdr(host)]",
        f"    use_backend %[path,field(2,/),map({settings.haproxy_map_path},{NOT_FOUND_BACKEND})]",
        f"    default_backend {NOT_FOUND_BACKEND}",
        "",
        f"backend {NOT_FOUND_BACKEND}",
        "    http-request return " + _json(404, NOT_FOUND_BODY),
        "",
    ]
    for slot in layout.slots:
        out += _slot(slot, layout.servers.get(slot, ()))
    return "\n".join(out).rstrip("\n") + "\n"  # HAProxy refuses a last line without LF


def render_map(layout: Layout) -> str:
    return "".join(f"{segment} {slot}\n" for segment, slot in sorted(layout.routes.items()))


def layout_path(settings: Settings) -> Path:
    """The routes the gateway last wrote, for `make up` to start HAProxy with them."""
    return settings.haproxy_config_path.with_name("haproxy-layout.json")


def layout_json(layout: Layout) -> str:
    data = {
        "slots": len(layout.slots),
        "routes": dict(sorted(layout.routes.items())),
        "servers": {slot: list(addrs) for slot, addrs in sorted(layout.servers.items())},
    }
    return json.dumps(data, indent=1) + "\n"


def parse_layout(text: str, min_slots: int) -> Layout | None:
    """A layout written by `layout_json` (None if it is not one), in a pool of at least
    `min_slots`."""
    try:
        data = json.loads(text)
        slots = slot_names(max(int(data["slots"]), min_slots))
        pool = set(slots)
        routes = {str(k): str(v) for k, v in data["routes"].items() if v in pool}
        servers = {
            str(slot): tuple(str(a) for a in addrs)
            for slot, addrs in data["servers"].items()
            if slot in routes.values()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return Layout(slots=slots, routes=routes, servers=servers)


def files(settings: Settings, layout: Layout) -> dict[Path, str]:
    """Every file HAProxy reads at start, by path (and the layout they were made from)."""
    check_paths(settings)
    return {
        settings.haproxy_config_path.parent / "haproxy-503.http": _failed_connect_file(),
        settings.haproxy_map_path: render_map(layout),
        settings.haproxy_config_path: render_config(settings, layout),
        layout_path(settings): layout_json(layout),
    }


def initial_files(settings: Settings, previous: str | None = None) -> dict[Path, str]:
    """The files HAProxy starts with before the gateway runs: the routes it last wrote
    (`previous`, the text of `layout_path`), else a pool of empty slots."""
    layout = parse_layout(previous, settings.gateway_slots) if previous else None
    if layout is None:
        layout = Layout(slots=slot_names(settings.gateway_slots), routes={}, servers={})
    return files(settings, layout)

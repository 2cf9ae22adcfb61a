"""What the gateway knows about HAProxy, and the runtime commands that change it. Pure.

`ProxyState` is what HAProxy's runtime API reports (read by
`services.gateway.haproxy_api`); the commands are what `services.gateway.plan`
decides and the adapter carries out. Nothing here does I/O.

Names: a service's first path segment `<project>-<service>` is a key of the
routes map; its value is one of a pool of pre-declared backends (`slot0001`
...); each upstream "127.0.0.1:PORT" is a server of that backend named after
its address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

SLOT_PREFIX = "slot"
_SLOT = re.compile(r"slot(\d+)")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.:-]")


class Admin(Enum):
    """A server's administrative state, as `set server <b>/<s> state <value>` names it."""

    READY = "ready"
    DRAIN = "drain"  # keeps its requests in flight, gets no new ones
    MAINT = "maint"  # gets nothing; may then be deleted


@dataclass(frozen=True)
class Server:
    name: str
    addr: str  # "127.0.0.1:PORT"
    admin: Admin
    used: int = 0  # connections carrying a request right now
    idle: int = 0  # idle keep-alive connections to it


@dataclass(frozen=True)
class ProxyState:
    """One HAProxy worker's routing: pool of slot backends, map and servers."""

    pid: int
    slots: tuple[str, ...]
    routes: Mapping[str, str] = field(default_factory=dict)  # segment -> slot
    servers: Mapping[str, Mapping[str, Server]] = field(default_factory=dict)  # slot -> name -> …

    def servers_of(self, slot: str) -> Mapping[str, Server]:
        return self.servers.get(slot, {})


# ---------------------------------------------------------------- commands
@dataclass(frozen=True)
class AddServer:
    slot: str
    name: str
    addr: str


@dataclass(frozen=True)
class SetServerState:
    slot: str
    name: str
    admin: Admin


@dataclass(frozen=True)
class DelServer:
    slot: str
    name: str


@dataclass(frozen=True)
class AddRoute:
    segment: str
    slot: str


@dataclass(frozen=True)
class SetRoute:
    segment: str
    slot: str


@dataclass(frozen=True)
class DelRoute:
    segment: str


Command = AddServer | SetServerState | DelServer | AddRoute | SetRoute | DelRoute


# ---------------------------------------------------------------- names
def slot_name(index: int) -> str:
    """The index-th backend of the pool (from 1)."""
    return f"{SLOT_PREFIX}{index:04d}"


def slot_index(name: str) -> int | None:
    m = _SLOT.fullmatch(name)
    return int(m.group(1)) if m else None


def slot_names(count: int) -> tuple[str, ...]:
    return tuple(slot_name(i) for i in range(1, count + 1))


def server_name(addr: str) -> str:
    """A server's name in its backend: its address, in the characters HAProxy allows."""
    return _NAME_BAD.sub("_", addr)

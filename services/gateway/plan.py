"""Plan HAProxy runtime commands from its current state and the desired routes. Pure.

`plan(state, desired)` answers the commands that bring one HAProxy worker one
step closer to `desired` (segment -> upstream addresses), the state they will
leave it in, which segments are then fully served (settled) and which found no
free slot backend. It is level-triggered: called again with the state read
afterwards, it continues where the last call stopped, whatever happened in
between (a restart of HAProxy, a failed command).

Order of the steps, so that no request meets a half-made route:
- a new service's servers are added (and made ready) before its map entry, so
  its first request finds them; a service with no upstream gets a slot with no
  server, which answers 503;
- a removed service's map entry goes first (its paths answer 404 at once);
- an upstream a route dropped is retired in steps, one per call at most:
  ready -> drain (no new request, those in flight go on), drain with no
  connection in use -> maint, maint with no connection at all -> deleted.
  A segment is settled once every upstream it dropped is in maint with nothing
  in flight: what the gateway's acknowledgement promises the deployer.

`layout` says what HAProxy's configuration files should hold (the desired
routes, each in a slot), so that a restart or a reload starts with all of them.
It does no I/O either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from services.gateway.model import (
    AddRoute,
    AddServer,
    Admin,
    Command,
    DelRoute,
    DelServer,
    ProxyState,
    Server,
    SetServerState,
    server_name,
    slot_names,
)

Desired = Mapping[str, tuple[str, ...]]  # segment -> upstream addresses


@dataclass(frozen=True)
class Plan:
    commands: tuple[Command, ...]
    after: ProxyState  # the state once every command succeeded
    settled: frozenset[str]  # desired segments served exactly as desired, drops drained
    unplaced: tuple[str, ...]  # desired segments for which no slot was free


@dataclass(frozen=True)
class Layout:
    """What the configuration files hold: every slot, the map, each slot's servers."""

    slots: tuple[str, ...]
    routes: Mapping[str, str]  # segment -> slot
    servers: Mapping[str, tuple[str, ...]]  # slot -> addresses, all ready


def _owners(state: ProxyState, desired: Desired) -> tuple[dict[str, str], list[str]]:
    """Map entries to keep (segment -> slot, at most one segment per slot) and to delete."""
    pool = set(state.slots)
    keep: dict[str, str] = {}
    taken: set[str] = set()
    drop: list[str] = []
    for segment in sorted(state.routes):
        slot = state.routes[segment]
        if segment in desired and slot in pool and slot not in taken:
            keep[segment] = slot
            taken.add(slot)
        else:
            drop.append(segment)
    return keep, drop


def _retire(slot: str, srv: Server) -> tuple[list[Command], Server | None]:
    """The next step in taking a server out of use, and the server afterwards (None: gone)."""
    if srv.admin is Admin.READY:
        return [SetServerState(slot, srv.name, Admin.DRAIN)], replace(srv, admin=Admin.DRAIN)
    if srv.used > 0:
        return [], srv  # requests in flight: wait
    if srv.admin is Admin.DRAIN:
        # entering maint also closes its idle connections
        return [SetServerState(slot, srv.name, Admin.MAINT)], replace(
            srv, admin=Admin.MAINT, idle=0
        )
    if srv.idle > 0:
        # in maint with idle connections (it was put there busy): they only close when
        # it enters maint again, and a server with connections cannot be deleted
        return [
            SetServerState(slot, srv.name, Admin.DRAIN),
            SetServerState(slot, srv.name, Admin.MAINT),
        ], replace(srv, idle=0)
    return [DelServer(slot, srv.name)], None


def _drained(srv: Server) -> bool:
    return srv.admin is Admin.MAINT and srv.used == 0


def plan(state: ProxyState, desired: Desired) -> Plan:
    commands: list[Command] = []
    routes, dropped = _owners(state, desired)
    for segment in dropped:
        commands.append(DelRoute(segment))
    servers: dict[str, dict[str, Server]] = {
        slot: dict(found) for slot, found in state.servers.items()
    }
    owner = {slot: segment for segment, slot in routes.items()}
    free = [s for s in state.slots if s not in owner and not servers.get(s)]
    unplaced: list[str] = []

    for segment in sorted(desired):
        slot = routes.get(segment)
        if slot is None:
            if not free:
                unplaced.append(segment)
                continue
            slot = free.pop(0)
            owner[slot] = segment
        have = servers.setdefault(slot, {})
        for addr in desired[segment]:
            name = server_name(addr)
            current = have.get(name)
            if current is None:
                commands.append(AddServer(slot, name, addr))
                commands.append(SetServerState(slot, name, Admin.READY))
                have[name] = Server(name, addr, Admin.READY)
            elif current.admin is not Admin.READY:
                commands.append(SetServerState(slot, name, Admin.READY))
                have[name] = replace(current, admin=Admin.READY)
        if segment not in routes:
            commands.append(AddRoute(segment, slot))
            routes[segment] = slot

    settled: set[str] = set()
    for slot in state.slots:
        served = owner.get(slot)
        wanted = {server_name(a) for a in desired[served]} if served is not None else set()
        have = servers.get(slot, {})
        for name in sorted(have):
            if name in wanted:
                continue
            steps, retired = _retire(slot, have[name])
            commands.extend(steps)
            if retired is None:
                del have[name]
            else:
                have[name] = retired
        if served is not None and all(
            (name in wanted and srv.admin is Admin.READY) or (name not in wanted and _drained(srv))
            for name, srv in have.items()
        ):
            settled.add(served)

    after = ProxyState(
        pid=state.pid,
        slots=state.slots,
        routes=routes,
        servers={slot: found for slot, found in servers.items() if found},
    )
    return Plan(tuple(commands), after, frozenset(settled), tuple(unplaced))


def layout(state: ProxyState | None, desired: Desired, slot_count: int) -> Layout:
    """Files for a (re)start: the desired routes, in their current slots where they have one.

    Segments without a slot get free ones, while the pool has any; `pool_size`
    says how large a pool must be for all of them."""
    slots = slot_names(slot_count)
    pool = set(slots)
    routes: dict[str, str] = {}
    taken: set[str] = set()
    if state is not None:
        for segment in sorted(state.routes):
            slot = state.routes[segment]
            if segment in desired and slot in pool and slot not in taken:
                routes[segment] = slot
                taken.add(slot)
    free = [s for s in slots if s not in taken]
    for segment in sorted(desired):
        if segment not in routes and free:
            routes[segment] = free.pop(0)
    return Layout(
        slots=slots,
        routes=routes,
        servers={slot: desired[segment] for segment, slot in routes.items() if desired[segment]},
    )


def pool_size(current: int, state: ProxyState, desired: Desired, headroom: int = 8) -> int:
    """How many slots the pool should have: doubled until every desired segment and
    every slot still draining a removed service's upstreams fit, with some room left."""
    owned = {slot for seg, slot in state.routes.items() if seg in desired}
    busy = sum(1 for slot, found in state.servers.items() if found and slot not in owned)
    need = len(desired) + busy + headroom
    size = max(current, 1)
    while size < need:
        size *= 2
    return size


Generation = Mapping[str, frozenset[str]]  # segment -> upstreams an HAProxy worker may use


def generation(state: ProxyState) -> Generation:
    """The upstreams a worker in this state may still send requests to, per segment
    (all but those in maint with nothing in flight)."""
    return {
        segment: frozenset(s.addr for s in state.servers_of(slot).values() if not _drained(s))
        for segment, slot in state.routes.items()
    }


def unchanged_since(old: Generation, desired: Desired, segment: str) -> bool:
    """Whether an older HAProxy worker can only send this segment's requests to
    upstreams it still has (`old`: segment -> addresses that worker had)."""
    return old.get(segment, frozenset()) <= set(desired.get(segment, ()))

"""The gateway's planner: HAProxy state + desired routes -> runtime commands, settled routes."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

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
from services.gateway.plan import Desired, Plan, layout, plan, pool_size, unchanged_since

A, B, C = "127.0.0.1:32001", "127.0.0.1:32002", "127.0.0.1:32003"
READY, DRAIN, MAINT = Admin.READY, Admin.DRAIN, Admin.MAINT
S1, S2, S3 = slot_names(3)


def srv(addr: str, admin: Admin = READY, used: int = 0, idle: int = 0) -> Server:
    return Server(server_name(addr), addr, admin, used, idle)


def state(
    routes: Mapping[str, str] | None = None,
    servers: Mapping[str, list[Server]] | None = None,
    slots: int = 3,
) -> ProxyState:
    return ProxyState(
        pid=1,
        slots=slot_names(slots),
        routes=dict(routes or {}),
        servers={slot: {s.name: s for s in found} for slot, found in (servers or {}).items()},
    )


def add(slot: str, addr: str) -> list[Command]:
    return [
        AddServer(slot, server_name(addr), addr),
        SetServerState(slot, server_name(addr), READY),
    ]


def set_state(slot: str, addr: str, admin: Admin) -> SetServerState:
    return SetServerState(slot, server_name(addr), admin)


CASES: dict[str, tuple[ProxyState, Desired, list[Command], set[str]]] = {
    "nothing to do": (state(), {}, [], set()),
    "new service: servers first, then its map entry": (
        state(),
        {"p-s": (A,)},
        [*add(S1, A), AddRoute("p-s", S1)],
        {"p-s"},
    ),
    "new service without a task yet: a slot with no server (503)": (
        state(),
        {"p-s": ()},
        [AddRoute("p-s", S1)],
        {"p-s"},
    ),
    "served as desired": (
        state({"p-s": S1}, {S1: [srv(A)]}),
        {"p-s": (A,)},
        [],
        {"p-s"},
    ),
    "replace: the new upstream ready, the old one drains": (
        state({"p-s": S1}, {S1: [srv(A, used=3)]}),
        {"p-s": (B,)},
        [*add(S1, B), set_state(S1, A, DRAIN)],
        set(),
    ),
    "draining with requests in flight: wait": (
        state({"p-s": S1}, {S1: [srv(A, DRAIN, used=1), srv(B)]}),
        {"p-s": (B,)},
        [],
        set(),
    ),
    "drained: maint, and the route is settled": (
        state({"p-s": S1}, {S1: [srv(A, DRAIN, idle=2), srv(B)]}),
        {"p-s": (B,)},
        [set_state(S1, A, MAINT)],
        {"p-s"},
    ),
    "maint and idle-free: deleted": (
        state({"p-s": S1}, {S1: [srv(A, MAINT), srv(B)]}),
        {"p-s": (B,)},
        [DelServer(S1, server_name(A))],
        {"p-s"},
    ),
    "maint with idle connections: enter maint again to close them": (
        state({"p-s": S1}, {S1: [srv(A, MAINT, idle=1), srv(B)]}),
        {"p-s": (B,)},
        [set_state(S1, A, DRAIN), set_state(S1, A, MAINT)],
        {"p-s"},
    ),
    "maint but busy (put there by someone else): not settled": (
        state({"p-s": S1}, {S1: [srv(A, MAINT, used=1), srv(B)]}),
        {"p-s": (B,)},
        [],
        set(),
    ),
    "an upstream back before it was deleted: ready again": (
        state({"p-s": S1}, {S1: [srv(A, DRAIN, used=1)]}),
        {"p-s": (A,)},
        [set_state(S1, A, READY)],
        {"p-s"},
    ),
    "scale out: round robin over both": (
        state({"p-s": S1}, {S1: [srv(A)]}),
        {"p-s": (A, B)},
        add(S1, B),
        {"p-s"},
    ),
    "delete a service: map entry first, then drain": (
        state({"p-s": S1}, {S1: [srv(A)]}),
        {},
        [DelRoute("p-s"), set_state(S1, A, DRAIN)],
        set(),
    ),
    "a deleted service's slot is not reused while it drains": (
        state({}, {S1: [srv(A, DRAIN, used=1)]}),
        {"p-t": (B,)},
        [*add(S2, B), AddRoute("p-t", S2)],
        {"p-t"},
    ),
    "a map entry to a backend outside the pool is replaced": (
        state({"p-s": "elsewhere"}),
        {"p-s": (A,)},
        [DelRoute("p-s"), *add(S1, A), AddRoute("p-s", S1)],
        {"p-s"},
    ),
    "two segments on one slot: the second moves": (
        state({"p-s": S1, "p-t": S1}, {S1: [srv(A)]}),
        {"p-s": (A,), "p-t": (B,)},
        [DelRoute("p-t"), *add(S2, B), AddRoute("p-t", S2)],
        {"p-s", "p-t"},
    ),
    "after a restart from stale files: everything again": (
        state({"p-old": S1}, {S1: [srv(C)]}),
        {"p-s": (A,)},
        [DelRoute("p-old"), *add(S2, A), AddRoute("p-s", S2), set_state(S1, C, DRAIN)],
        {"p-s"},
    ),
}


@pytest.mark.parametrize(("before", "desired", "commands", "settled"), CASES.values(), ids=CASES)
def test_plan(
    before: ProxyState, desired: Desired, commands: list[Command], settled: set[str]
) -> None:
    got = plan(before, desired)
    assert list(got.commands) == commands
    assert got.settled == settled
    assert got.unplaced == ()


def _run(before: ProxyState, desired: Desired) -> Plan:
    """Plan, pretend HAProxy did it and requests in flight finished, until nothing is left."""
    current = before
    for _ in range(10):
        step = plan(current, desired)
        if not step.commands:
            return step
        current = ProxyState(
            pid=1,
            slots=current.slots,
            routes=step.after.routes,
            servers={
                slot: {n: Server(s.name, s.addr, s.admin) for n, s in found.items()}
                for slot, found in step.after.servers.items()
            },
        )
    raise AssertionError("the plan does not converge")


def test_replace_converges_to_only_the_new_upstream() -> None:
    final = _run(state({"p-s": S1}, {S1: [srv(A, used=2)]}), {"p-s": (B,)})
    assert final.after.servers == {S1: {server_name(B): srv(B)}}
    assert final.settled == {"p-s"}


def test_delete_converges_to_an_empty_free_slot() -> None:
    final = _run(state({"p-s": S1}, {S1: [srv(A)]}), {})
    assert final.after.routes == {} and final.after.servers == {}
    again = plan(final.after, {"p-t": (B,)})
    assert AddRoute("p-t", S1) in again.commands


def test_pool_full_reports_unplaced_and_pool_size_grows() -> None:
    full = state({"a-a": S1, "b-b": S2}, {S1: [srv(A)], S2: [srv(B)], S3: [srv(C, DRAIN, used=1)]})
    desired = {"a-a": (A,), "b-b": (B,), "c-c": (C,), "d-d": ()}
    got = plan(full, desired)
    assert got.unplaced == ("c-c", "d-d")
    assert got.settled == {"a-a", "b-b"}
    # 4 routes + 1 slot still draining + headroom 8, doubling from 3
    assert pool_size(3, full, desired) == 24


def test_layout_keeps_slots_and_places_the_rest() -> None:
    current = state({"b-b": S2, "gone": S1}, {S2: [srv(B)]})
    got = layout(current, {"a-a": (A,), "b-b": (B, C), "z-z": ()}, 4)
    assert got.slots == slot_names(4)
    assert got.routes == {"b-b": S2, "a-a": S1, "z-z": S3}
    assert got.servers == {S1: (A,), S2: (B, C)}
    # without a known state (HAProxy never answered) the routes still get slots
    assert layout(None, {"a-a": (A,)}, 2).routes == {"a-a": S1}


def test_old_worker_may_only_hold_back_routes_that_dropped_upstreams() -> None:
    old = {"p-s": frozenset({A}), "p-t": frozenset({B})}
    desired = {"p-s": (A, C), "p-t": (C,), "p-new": (A,)}
    assert unchanged_since(old, desired, "p-s")
    assert not unchanged_since(old, desired, "p-t")
    assert unchanged_since(old, desired, "p-new")


def test_server_names_are_valid_haproxy_identifiers() -> None:
    assert server_name("127.0.0.1:8080") == "127.0.0.1:8080"
    assert server_name("[::1]:8080") == "_::1_:8080"

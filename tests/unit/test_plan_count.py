"""The planner with N tasks per service: scaling, rolling replaces within memory, crashes."""

from __future__ import annotations

from dataclasses import replace

import msgspec

from services.deployer.model import HealthView, RouteView
from tests.unit.test_plan import (
    HEALTHY,
    NOW,
    Case,
    record,
    serving_memo,
    summary,
    task,
)


def counted(revision: int, count: int) -> object:
    return msgspec.structs.replace(record(revision), count=count)


def up(n: int) -> str:
    return f"127.0.0.1:{30000 + n}"


def route(*ports: int) -> RouteView:
    return RouteView(tuple(up(p) for p in ports), kv_revision=10, acked_revision=10)


def tasks_of(revision: int, names: str, age: float = 100.0) -> list[object]:
    return [
        task(n, revision, port=30001 + i + 10 * revision, age=age - i) for i, n in enumerate(names)
    ]


def test_a_first_deploy_of_three_starts_as_many_as_fit() -> None:
    everything = Case(counted(1, 3), free_mb=1000)  # type: ignore[arg-type]
    actions, _ = summary(everything)
    assert actions.count("start r1") == 3
    tight = replace(everything, free_mb=70)  # room for two tasks of 32 MB
    actions, _ = summary(tight)
    assert actions.count("start r1") == 2


def test_scaling_up_starts_more_without_touching_the_running_ones() -> None:
    running = tasks_of(1, "ab")
    case = Case(
        counted(1, 4),  # type: ignore[arg-type]
        running,  # type: ignore[arg-type]
        {"c-a": HEALTHY, "c-b": HEALTHY},
        route(11, 12),
        serving_memo(),
    )
    actions, _ = summary(case)
    assert actions == ["start r1", "start r1"]


def test_scaling_down_drains_the_newest_first_then_stops_them() -> None:
    running = tasks_of(1, "abc")
    health = {"c-a": HEALTHY, "c-b": HEALTHY, "c-c": HEALTHY}
    case = Case(counted(1, 1), running, health, route(11, 12, 13), serving_memo())  # type: ignore[arg-type]
    actions, _ = summary(case)
    assert actions[0] == f"route {up(11)}"  # the oldest stays; stops wait for the gateway
    assert not [a for a in actions if a.startswith("stop")]
    settled = replace(case, route=route(11))
    actions, _ = summary(settled)
    assert sorted(a for a in actions if a.startswith("stop")) == ["stop b", "stop c"]


def test_scaled_to_zero_the_route_empties_and_every_task_stops() -> None:
    running = tasks_of(1, "ab")
    health = {"c-a": HEALTHY, "c-b": HEALTHY}
    case = Case(counted(1, 0), running, health, route(11, 12), serving_memo())  # type: ignore[arg-type]
    assert summary(case)[0][0] == "route -"
    actions, _ = summary(replace(case, route=RouteView((), 11, 11)))
    assert sorted(a for a in actions if a.startswith("stop")) == ["stop a", "stop b"]
    assert not [a for a in actions if a.startswith("start")]


def test_a_crashed_task_leaves_the_route_at_once_and_the_others_serve_on() -> None:
    running = tasks_of(1, "abc")
    dead = replace(running[1], state="exited", exit_code=1, finished_at=NOW)  # type: ignore[arg-type]
    case = Case(
        counted(1, 3),  # type: ignore[arg-type]
        [running[0], dead, running[2]],  # type: ignore[list-item]
        {"c-a": HEALTHY, "c-c": HEALTHY},
        route(11, 12, 13),
        serving_memo(),
    )
    actions, memo = summary(case)
    assert f"route {up(11)},{up(13)}" in actions
    assert "emit task.exited" in actions and "emit task.restarting" in actions
    assert memo.restarts == 1


def test_a_replace_within_tight_memory_rolls_one_task_at_a_time() -> None:
    old = tasks_of(1, "ab", age=200)
    new = tasks_of(2, "x", age=10)
    health = {"c-a": HEALTHY, "c-b": HEALTHY, "c-x": HEALTHY}
    case = Case(
        counted(2, 2),  # type: ignore[arg-type]
        [*old, *new],  # type: ignore[list-item]
        health,
        route(11, 12),
        serving_memo(deployment=None),
        free_mb=0,  # no room for a second new task while both old ones run
    )
    actions, memo = summary(case)
    # the new task serves with one old one: never fewer serving than before
    assert f"route {up(21)},{up(11)}" in actions
    assert memo.serving_revision == 1  # not complete while an old task serves
    settled = replace(case, route=route(21, 11), memo=memo)
    actions, memo = summary(settled)
    assert "stop b" in actions and not [a for a in actions if a.startswith("start")]
    # with b gone there is room: one more new task, then the last old one leaves
    freed = replace(settled, tasks=[old[0], *new], free_mb=32, memo=memo)
    actions, memo = summary(freed)
    assert actions.count("start r2") == 1
    both_new = tasks_of(2, "xy", age=10)
    done = replace(
        freed,
        tasks=[old[0], *both_new],
        health={**health, "c-y": HEALTHY},
        memo=memo,
    )
    actions, memo = summary(done)
    assert f"route {up(21)},{up(22)}" in actions
    finished = replace(done, route=route(21, 22), memo=memo)
    actions, memo = summary(finished)
    assert "stop a" in actions and "emit deployment.completed" in actions
    assert memo.serving_revision == 2


def test_no_room_for_even_one_new_task_waits_and_the_old_revision_serves() -> None:
    old = tasks_of(1, "ab", age=200)
    case = Case(
        counted(2, 2),  # type: ignore[arg-type]
        old,  # type: ignore[arg-type]
        {"c-a": HEALTHY, "c-b": HEALTHY},
        route(11, 12),
        serving_memo(),
        free_mb=10,
    )
    actions, memo = summary(case)
    assert actions == ["emit deployment.started", "emit deployment.pending"]
    assert memo.deployment is not None and memo.deployment.phase == "PENDING"


def test_a_restarted_deployer_keeps_the_deadline_it_remembered() -> None:
    """The health clock is stored with the status: a restart does not give a task more time."""
    new = task("x", 2, age=200)
    fresh_view = HealthView("INITIAL", "GET /: refused", NOW - 1, False)  # a new monitor's view
    memo = replace(serving_memo(), started={"c-x": NOW - 61})
    case = Case(record(2), [task("a", 1), new], {"c-a": HEALTHY, "c-x": fresh_view}, route(1), memo)
    actions, memo_out = summary(case)
    assert "emit deployment.failed" in actions
    assert 2 in memo_out.failed


def test_a_deletion_completes_though_a_stopped_container_cannot_be_removed_yet() -> None:
    """Regression: "Removal In Progress" kept a deleted service DRAINING for good."""
    stuck = task("z", 1, "exited", exit_code=0, finished_at=NOW - 60)
    case = Case(
        msgspec.structs.replace(record(1), deleting=True),  # type: ignore[arg-type]
        [stuck],
        {},
        None,
        serving_memo(stopping={"c-z"}),
    )
    actions, _ = summary(case)
    assert actions == ["remove z", "finish"]  # tried again at every resync until it goes

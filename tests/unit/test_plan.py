"""The deployer's planner: a table of situations and the actions they must produce."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from services.deployer.model import (
    DeleteRoute,
    Emit,
    Finish,
    HealthView,
    Memo,
    Observed,
    PermanentFailure,
    RemoveContainer,
    RouteView,
    SetRoute,
    StartFailure,
    StartTask,
    StopTask,
    TemporaryFailure,
)
from services.deployer.plan import Inputs, Limits, backoff, plan
from services.deployer.status import build_status
from shared.events import event_type
from shared.models import ServiceRecord, TaskDefinition

NOW = 1_000_000.0
UID = "uid1"


def td(revision: int, reservation: int = 32) -> TaskDefinition:
    return TaskDefinition(
        project="p",
        service="s",
        service_uid=UID,
        revision=revision,
        container_tag="v1",
        image="reg/p/s:v1",
        memory_reservation=reservation,
        memory_limit=64,
        container_port=8080,
        environment=[],
        created_at="",
    )


def record(revision: int, deleting: bool = False, reservation: int = 32) -> ServiceRecord:
    return ServiceRecord(
        project="p",
        name="s",
        uid=UID,
        created_at="",
        updated_at="",
        revision=revision,
        definition=td(revision, reservation) if revision else None,
        deleting=deleting,
    )


def task(
    name: str,
    revision: int,
    state: str = "running",
    port: int | None = None,
    age: float = 1.0,
    **kw: object,
) -> Observed:
    return Observed(
        task_id=name,
        container_id=f"c-{name}",
        service_uid=kw.pop("uid", UID),  # type: ignore[arg-type]
        revision=revision,
        state=state,
        created_at=NOW - age,  # type: ignore[arg-type]
        memory_reservation=32,
        memory_limit=64,
        host_port=port if port is not None else (30000 + revision if state == "running" else None),
        **kw,  # type: ignore[arg-type]
    )


HEALTHY = HealthView("HEALTHY", "GET / returned 200", NOW - 100, True)
INITIAL = HealthView("INITIAL", "GET /: connection refused", NOW - 1, False)


@dataclass
class Case:
    record: ServiceRecord | None
    tasks: list[Observed] = field(default_factory=list)
    health: dict[str, HealthView] = field(default_factory=dict)
    route: RouteView | None = None
    memo: Memo = field(default_factory=lambda: Memo(service_uid=UID))
    free_mb: int = 1000
    start_failure: StartFailure | None = None
    definitions: dict[int, TaskDefinition] | None = None
    fresh_health: bool = False  # health states not reported yet (else: reported before)

    def inputs(self) -> Inputs:
        defs = self.definitions
        if defs is None:
            defs = {self.record.revision: td(self.record.revision)} if self.record else {}
        return Inputs(
            now=NOW,
            project="p",
            service="s",
            record=self.record,
            tasks=tuple(self.tasks),
            health=self.health,
            route=self.route,
            definitions=defs,
            free_mb=self.free_mb,
            limits=Limits(deploy_deadline_s=60, backoff_s=1, backoff_cap_s=60, capacity_mb=2048),
            start_failure=self.start_failure,
        )


def summary(case: Case) -> tuple[list[str], Memo]:
    memo_in = case.memo
    if not case.fresh_health:
        seen = {cid: h.state for cid, h in case.health.items() if h.state != "INITIAL"}
        memo_in = replace(memo_in, reported_health={**seen, **memo_in.reported_health})
    p, memo = plan(case.inputs(), memo_in)
    out: list[str] = []
    for a in p.actions:
        if isinstance(a, Emit):
            out.append(f"emit {event_type(a.event)}")
        elif isinstance(a, StartTask):
            out.append(f"start r{a.definition.revision}")
        elif isinstance(a, StopTask):
            out.append(f"stop {a.task.task_id}")
        elif isinstance(a, RemoveContainer):
            out.append(f"remove {a.task.task_id}")
        elif isinstance(a, SetRoute):
            out.append(f"route {','.join(a.upstreams) or '-'}")
        elif isinstance(a, DeleteRoute):
            out.append("delete route")
        elif isinstance(a, Finish):
            out.append("finish")
    return out, memo


def serving_memo(**kw: object) -> Memo:
    return replace(Memo(service_uid=UID, serving_revision=1), **kw)  # type: ignore[arg-type]


U1, U2 = "127.0.0.1:30001", "127.0.0.1:30002"
R1 = RouteView((U1,), kv_revision=10, acked_revision=10)

CASES: dict[str, tuple[Case, list[str]]] = {
    "never deployed: nothing": (Case(record(0)), []),
    "first update: start, and answer 503 until it serves": (
        Case(record(1)),
        ["emit deployment.started", "route -", "start r1"],
    ),
    "new task warming up: empty route": (
        Case(
            record(1), [task("a", 1)], {"c-a": INITIAL}, memo=Memo(service_uid=UID, deployment=None)
        ),
        ["emit deployment.started", "route -"],
    ),
    "healthy: route to it": (
        Case(
            record(1),
            [task("a", 1)],
            {"c-a": HEALTHY},
            RouteView((), 5, 5),
            memo=serving_memo(serving_revision=0),
            fresh_health=True,
        ),
        [
            "emit deployment.started",
            "emit task.healthy",
            "route 127.0.0.1:30001",
            "emit target.registered",
        ],
    ),
    "serving task turned unhealthy: report, start a replacement": (
        Case(
            record(1),
            [task("a", 1)],
            {"c-a": HealthView("UNHEALTHY", "GET / returned 500", NOW, True)},
            R1,
            serving_memo(reported_health={"c-a": "HEALTHY"}),
        ),
        ["emit task.unhealthy", "start r1"],
    ),
    "routed but not acknowledged: wait": (
        Case(
            record(2),
            [task("a", 1), task("b", 2)],
            {"c-a": HEALTHY, "c-b": HEALTHY},
            RouteView((U2,), 11, 10),
            serving_memo(),
        ),
        ["emit deployment.started"],
    ),
    "acknowledged: stop old, complete": (
        Case(
            record(2),
            [task("a", 1), task("b", 2)],
            {"c-a": HEALTHY, "c-b": HEALTHY},
            RouteView((U2,), 11, 11),
            serving_memo(),
        ),
        ["emit deployment.started", "stop a", "emit task.stopped", "emit deployment.completed"],
    ),
    "replacement healthy: switch route": (
        Case(
            record(2),
            [task("a", 1), task("b", 2)],
            {"c-a": HEALTHY, "c-b": HEALTHY},
            R1,
            serving_memo(),
        ),
        [
            "emit deployment.started",
            "route 127.0.0.1:30002",
            "emit target.registered",
            "emit target.deregistered",
        ],
    ),
    "new revision crashed before healthy: fail, old keeps serving": (
        Case(
            record(2),
            [task("a", 1), task("b", 2, "exited", exit_code=3, finished_at=NOW)],
            {"c-a": HEALTHY},
            R1,
            serving_memo(),
        ),
        # the task's own exit first (subscribers filter on it), then why the deploy failed
        ["emit deployment.started", "emit task.exited", "emit deployment.failed"],
    ),
    "never healthy by the deadline: fail and stop it": (
        Case(
            record(2),
            [task("a", 1), task("b", 2, age=61)],
            {"c-a": HEALTHY, "c-b": HealthView("INITIAL", "GET /: refused", NOW - 61, False)},
            R1,
            serving_memo(),
        ),
        ["emit deployment.started", "emit deployment.failed", "stop b", "emit task.stopped"],
    ),
    "serving task crashed: report, back off, empty route": (
        Case(
            record(1),
            [task("a", 1, "exited", exit_code=137, finished_at=NOW)],
            {},
            R1,
            serving_memo(),
        ),
        ["emit task.exited", "emit task.restarting", "route -", "emit target.deregistered"],
    ),
    "out of memory is reported as such": (
        Case(
            record(1),
            [task("a", 1, "exited", exit_code=137, oom_killed=True, finished_at=NOW)],
            {},
            R1,
            serving_memo(),
        ),
        ["emit task.oom_killed", "emit task.restarting", "route -", "emit target.deregistered"],
    ),
    "backoff over: start again": (
        Case(
            record(1),
            [],
            {},
            RouteView((), 12, 12),
            serving_memo(restarts=1, next_start_at=NOW - 0.1),
        ),
        ["start r1"],
    ),
    "backoff running: wait": (
        Case(
            record(1),
            [],
            {},
            RouteView((), 12, 12),
            serving_memo(restarts=3, next_start_at=NOW + 3),
        ),
        [],
    ),
    "not enough memory: pending, old keeps serving": (
        Case(
            record(2, reservation=900),
            [task("a", 1)],
            {"c-a": HEALTHY},
            R1,
            serving_memo(),
            free_mb=500,
            definitions={2: td(2, 900)},
        ),
        ["emit deployment.started", "emit deployment.pending"],
    ),
    "image missing: fail": (
        Case(
            record(2),
            [task("a", 1)],
            {"c-a": HEALTHY},
            R1,
            serving_memo(deployment=None),
            start_failure=PermanentFailure(2, "image not found"),
        ),
        ["emit deployment.started", "emit deployment.failed"],
    ),
    "registry down: warn and retry later": (
        Case(
            record(2),
            [task("a", 1)],
            {"c-a": HEALTHY},
            R1,
            serving_memo(),
            start_failure=TemporaryFailure(2, "registry unreachable"),
        ),
        ["emit deployment.started", "emit service.warning"],
    ),
    "leftover of an earlier service of that name: stop it": (
        Case(record(0), [task("x", 1, uid="old")]),
        ["stop x", "emit task.stopped"],
    ),
    "exited, logs not collected yet: keep for now": (
        Case(
            record(1),
            [task("a", 1), task("z", 1, "exited", exit_code=0, finished_at=NOW - 1)],
            {"c-a": HEALTHY},
            R1,
            serving_memo(stopping={"c-z"}),
        ),
        [],
    ),
    "exited and logs collected: remove": (
        Case(
            record(1),
            [
                task("a", 1),
                task("z", 1, "exited", exit_code=0, finished_at=NOW - 1, logs_done=True),
            ],
            {"c-a": HEALTHY},
            R1,
            serving_memo(stopping={"c-z"}),
        ),
        ["remove z"],
    ),
    "adopted after a restart: leave it alone": (
        Case(record(1), [task("a", 1)], {}, R1, serving_memo()),
        [],
    ),
    "deleting: route first, then tasks": (
        Case(record(1, deleting=True), [task("a", 1)], {"c-a": HEALTHY}, R1, serving_memo()),
        ["delete route", "stop a", "emit task.stopped"],
    ),
    "deleted and nothing left: finish": (Case(None, [], {}, None, serving_memo()), ["finish"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plan(name: str) -> None:
    case, expected = CASES[name]
    actions, _ = summary(case)
    assert actions == expected


def test_failed_revision_is_not_retried_and_memo_remembers() -> None:
    case, _ = CASES["new revision crashed before healthy: fail, old keeps serving"]
    _, memo = summary(case)
    assert 2 in memo.failed and memo.deployment is not None
    assert memo.deployment.phase == "FAILED"
    again = Case(record(2), [task("a", 1)], {"c-a": HEALTHY}, R1, memo)
    assert summary(again)[0] == []


def test_crash_backoff_grows_and_is_capped() -> None:
    limits = Limits(backoff_s=1, backoff_cap_s=60)
    assert [backoff(limits, n) for n in (1, 2, 3, 4, 7, 10)] == [1, 2, 4, 8, 60, 60]
    case, _ = CASES["serving task crashed: report, back off, empty route"]
    _, memo = summary(replace(case, memo=serving_memo(restarts=3)))
    assert memo.restarts == 4 and memo.next_start_at == NOW + 8


def test_pending_event_is_not_repeated() -> None:
    case, _ = CASES["not enough memory: pending, old keeps serving"]
    _, memo = summary(case)
    assert memo.pending_reason and "needs 900 MB" in memo.pending_reason
    actions, _ = summary(replace(case, memo=memo))
    assert actions == []
    actions, _ = summary(replace(case, memo=memo, free_mb=1000))
    assert actions == ["start r2"]


def test_deadline_counts_from_when_the_task_runs() -> None:
    """A container that took long to start is not failed before it was ever checked."""
    slow_start = Case(
        record(2),
        [task("a", 1), task("b", 2, age=61)],
        {"c-a": HEALTHY, "c-b": HealthView("INITIAL", "", NOW - 1, False)},
        R1,
        serving_memo(),
    )
    assert summary(slow_start)[0] == ["emit deployment.started"]
    unchecked = replace(slow_start, health={"c-a": HEALTHY})
    assert summary(unchecked)[0] == ["emit deployment.started"]


def test_status_reports_tasks_and_failure() -> None:
    case, _ = CASES["never healthy by the deadline: fail and stop it"]
    p, memo = plan(case.inputs(), case.memo)
    st = build_status(case.inputs(), memo, "local")
    assert st.serving_revision == 1 and st.failed_revisions == [2]
    assert st.deployment is not None and st.deployment.phase == "FAILED"
    states = {t.task_id: (t.desired_status, t.last_status, t.health) for t in st.tasks}
    assert states == {
        "a": ("RUNNING", "RUNNING", "HEALTHY"),
        "b": ("STOPPED", "RUNNING", "DRAINING"),
    }
    assert any(isinstance(a, StopTask) for a in p.actions)

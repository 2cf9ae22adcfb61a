"""The deployer's decisions: `plan(inputs, memo) -> Plan`. Pure: no await, no I/O.

Given the desired service record, the containers Docker reports, their health,
the route and what the deployer remembers, decide the next actions: start a
task, switch the route, stop what the route no longer uses, remove exited
containers, fail or complete a deployment, restart a crashed task with
backoff, or tear everything down for a deleted service. Running the plan again
after its actions are done yields the next step; a steady service yields none.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

from services.deployer.messages import Wording, exit_reason
from services.deployer.model import (
    DeleteRoute,
    Emit,
    Finish,
    HealthView,
    Memo,
    Observed,
    PermanentFailure,
    Plan,
    RemoveContainer,
    RouteView,
    SetRoute,
    StartFailure,
    StartTask,
    StopTask,
)
from shared import events as ev
from shared.clock import iso
from shared.models import DeploymentPhase, DeploymentState, ServiceRecord, TaskDefinition

_INITIAL = HealthView(state="INITIAL")
STUCK_CREATED_S = 15.0
PENDING_RETRY_S = 5.0


@dataclass(frozen=True)
class Limits:
    deploy_deadline_s: float = 60.0
    backoff_s: float = 1.0
    backoff_cap_s: float = 60.0
    log_grace_s: float = 30.0
    stable_after_s: float = 30.0
    capacity_mb: int = 4096


@dataclass(frozen=True)
class Inputs:
    now: float
    project: str
    service: str
    record: ServiceRecord | None
    tasks: tuple[Observed, ...]
    health: Mapping[str, HealthView]
    route: RouteView | None
    definitions: Mapping[int, TaskDefinition]
    free_mb: int
    limits: Limits = Limits()
    start_failure: StartFailure | None = None  # the last attempt to start a task failed

    def health_of(self, task: Observed) -> HealthView:
        return self.health.get(task.container_id, _INITIAL)


@dataclass
class _Ctx:
    inp: Inputs
    memo: Memo
    plan: Plan
    say: Wording

    def emit(self, event: ev.Event, lines_from: str | None = None) -> None:
        self.plan.actions.append(Emit(event, lines_from))


def backoff(limits: Limits, attempt: int) -> float:
    return float(min(limits.backoff_cap_s, limits.backoff_s * 2 ** max(0, attempt - 1)))


def plan(inp: Inputs, memo_in: Memo) -> tuple[Plan, Memo]:
    memo = copy.deepcopy(memo_in)
    ctx = _Ctx(inp, memo, Plan(), Wording(inp.project, inp.service))
    rec = inp.record
    if rec is None or rec.deleting:
        _teardown(ctx, deleted=rec is None)
        return ctx.plan, ctx.memo
    if memo.service_uid != rec.uid:
        ctx.memo = memo = Memo(service_uid=rec.uid)
    mine = [t for t in inp.tasks if t.service_uid == rec.uid]
    for t in inp.tasks:
        if t.service_uid != rec.uid:
            _dispose(ctx, t, "left over from an earlier service of the same name")
    _track_deployment(ctx, rec)
    _handle_start_failure(ctx, rec)
    for t in mine:
        if not t.live or _stuck(ctx, t):
            _handle_dead(ctx, rec, t)
    live = [t for t in mine if t.live and not _stuck(ctx, t)]
    _check_deadline(ctx, rec, _target(rec, memo), live)
    target = _target(rec, memo)  # the deadline may have failed the deployment
    for t in live:
        if t.container_id in memo.stopping:
            _stop(ctx, t, "stopping")  # ordered earlier and still running: order it again
        elif t.revision in memo.failed and t.revision != target:
            _stop(ctx, t, f"deployment of revision {t.revision} failed")
    live = [t for t in live if t.container_id not in memo.stopping]
    _report_health(ctx, live)
    # the route first: starting a task takes a while, and a first deploy's route
    # makes the gateway answer 503 ("no healthy task yet") instead of 404 meanwhile
    live = [t for t in live if t.container_id not in memo.stopping]
    _report_waiting(ctx, rec, target, live)
    _route_and_retire(ctx, rec, target, live)
    _ensure_tasks(ctx, rec, target, live)
    return ctx.plan, ctx.memo


# ------------------------------------------------------------------ pieces
def _target(rec: ServiceRecord, memo: Memo) -> int:
    """The revision that should run: the desired one unless its deployment failed."""
    if rec.revision in memo.failed:
        return memo.serving_revision
    return rec.revision


def _deploying(rec: ServiceRecord, memo: Memo) -> bool:
    return (
        rec.revision > 0
        and rec.revision not in memo.failed
        and rec.revision != memo.serving_revision
    )


def _track_deployment(ctx: _Ctx, rec: ServiceRecord) -> None:
    memo = ctx.memo
    if rec.revision == 0:
        return
    if memo.deployment is None and rec.revision == memo.serving_revision:
        # serving already (e.g. remembered from an older status without deployment)
        now = iso(ctx.inp.now)
        memo.deployment = DeploymentState(
            revision=rec.revision, phase="COMPLETED", started_at=now, updated_at=now
        )
        return
    if memo.deployment is None or memo.deployment.revision < rec.revision:
        now = iso(ctx.inp.now)
        memo.deployment = DeploymentState(
            revision=rec.revision, phase="IN_PROGRESS", started_at=now, updated_at=now
        )
        memo.pending_reason = ""
        memo.pull_problem = ""
        memo.start_attempts = 0
        memo.next_start_at = 0.0
        memo.restarts = 0
        image = rec.definition.image if rec.definition else ""
        ctx.emit(ctx.say.deployment_started(rec.revision, image))


def _set_phase(ctx: _Ctx, phase: DeploymentPhase, reason: str = "") -> None:
    d = ctx.memo.deployment
    if d is None or (d.phase == phase and d.reason == reason):
        return
    ctx.memo.deployment = DeploymentState(
        revision=d.revision,
        phase=phase,
        reason=reason,
        started_at=d.started_at,
        updated_at=iso(ctx.inp.now),
    )


def _fail(ctx: _Ctx, rec: ServiceRecord, reason: str, lines_from: str | None) -> None:
    memo = ctx.memo
    revision = rec.revision
    if revision in memo.failed:
        return
    memo.failed[revision] = reason
    _set_phase(ctx, "FAILED", reason)
    ctx.emit(
        ctx.say.deployment_failed(revision, reason, memo.serving_revision), lines_from=lines_from
    )


def _handle_start_failure(ctx: _Ctx, rec: ServiceRecord) -> None:
    failure = ctx.inp.start_failure
    if failure is None:
        return
    revision, reason = failure.revision, failure.reason
    if (
        isinstance(failure, PermanentFailure)
        and revision == rec.revision
        and _deploying(rec, ctx.memo)
    ):
        _fail(ctx, rec, reason, None)
        return
    if ctx.memo.pull_problem != reason:
        ctx.memo.pull_problem = reason
        ctx.emit(ctx.say.start_retrying(revision, reason))
    ctx.memo.start_attempts += 1
    ctx.memo.next_start_at = ctx.inp.now + backoff(ctx.inp.limits, ctx.memo.start_attempts)


def _stuck(ctx: _Ctx, t: Observed) -> bool:
    return t.state == "created" and ctx.inp.now - t.created_at > STUCK_CREATED_S


def _handle_dead(ctx: _Ctx, rec: ServiceRecord, t: Observed) -> None:
    memo = ctx.memo
    cid = t.container_id
    if cid not in memo.reported_exits and cid not in memo.stopping:
        memo.reported_exits.add(cid)
        healthy_once = ctx.inp.health_of(t).healthy_once
        if _deploying(rec, memo) and t.revision == rec.revision and not healthy_once:
            _report_exit(ctx, t)  # task.exited / task.oom_killed first, then why the deploy failed
            _fail(ctx, rec, exit_reason(t) + " before becoming healthy", cid)
        elif t.revision == _target(rec, memo):
            _report_crash(ctx, t)
        else:
            _report_exit(ctx, t)
    _remove_when_logged(ctx, t)


def _report_exit(ctx: _Ctx, t: Observed) -> None:
    ctx.emit(ctx.say.task_exited(t), lines_from=t.container_id)


def _report_crash(ctx: _Ctx, t: Observed) -> None:
    _report_exit(ctx, t)
    delay = _count_restart(ctx)
    ctx.emit(ctx.say.task_restarting(t, ctx.memo.restarts, delay))


def _remove_when_logged(ctx: _Ctx, t: Observed, grace: float | None = None) -> None:
    """Remove an exited container once the collector has all its output (or gave up)."""
    grace = ctx.inp.limits.log_grace_s if grace is None else grace
    ended = t.finished_at if t.finished_at else t.created_at
    if t.logs_done or t.state == "created" or ctx.inp.now - ended >= grace:
        ctx.plan.actions.append(RemoveContainer(t))
    else:
        ctx.plan.wake(ended + grace)


def _dispose(ctx: _Ctx, t: Observed, reason: str, grace: float | None = None) -> None:
    if t.live:
        _stop(ctx, t, reason)
    else:
        _remove_when_logged(ctx, t, grace)


def _stop(ctx: _Ctx, t: Observed, reason: str) -> None:
    """Stop a task; reported once, re-issued (silently) while it keeps running."""
    ctx.plan.actions.append(StopTask(t, reason))
    if t.container_id in ctx.memo.stopping:
        return
    ctx.memo.stopping.add(t.container_id)
    ctx.emit(ctx.say.task_stopped(t, reason))


def _report_health(ctx: _Ctx, live: list[Observed]) -> None:
    """One event per change between healthy and unhealthy of a running task."""
    memo = ctx.memo
    for t in live:
        h = ctx.inp.health_of(t)
        if h.state == "INITIAL" or memo.reported_health.get(t.container_id) == h.state:
            continue
        memo.reported_health[t.container_id] = h.state
        if h.state == "HEALTHY":
            ctx.emit(ctx.say.task_healthy(t, h.description))
        else:
            ctx.emit(ctx.say.task_unhealthy(t, h.description))
    alive = {t.container_id for t in ctx.inp.tasks}
    for remembered in (memo.reported_health, memo.started):
        for cid in [c for c in remembered if c not in alive]:
            del remembered[cid]


def _started(ctx: _Ctx, t: Observed) -> float | None:
    """When the task's health clock started (remembered across deployer restarts)."""
    memo = ctx.memo
    if t.container_id not in memo.started:
        h_seen = ctx.inp.health.get(t.container_id)
        if h_seen is None:
            return None  # not running and checked yet
        # The clock starts when the task runs and is being checked, not when its
        # container was created: starting can take seconds on a busy host.
        memo.started[t.container_id] = max(t.created_at, h_seen.since)
    return memo.started[t.container_id]


def _check_deadline(ctx: _Ctx, rec: ServiceRecord, target: int, live: list[Observed]) -> None:
    """Tasks of the target revision that cannot or did not become healthy in time.

    While the revision deploys, that fails the deployment; once it serves, such a
    task (a replacement, or one more after scaling up) is stopped and another is
    started, with backoff."""
    deploying = _deploying(rec, ctx.memo) and target == rec.revision
    limit = ctx.inp.limits.deploy_deadline_s
    for t in (t for t in live if t.revision == target):
        h = ctx.inp.health_of(t)
        if h.state != "INITIAL":
            continue
        started = _started(ctx, t)
        if h.fatal:
            reason = f"task {t.task_id} cannot become healthy: {h.fatal}"
        elif started is not None and ctx.inp.now - started > limit:
            detail = f": last health check: {h.description}" if h.description else ""
            reason = f"task {t.task_id} did not become healthy within {limit:g} s{detail}"
        else:
            if started is not None:
                ctx.plan.wake(started + limit + 0.01)
            continue
        if deploying:
            _fail(ctx, rec, reason, t.container_id)
            return
        _stop(ctx, t, reason)
        _count_restart(ctx)


def _count_restart(ctx: _Ctx) -> float:
    memo = ctx.memo
    memo.restarts += 1
    delay = backoff(ctx.inp.limits, memo.restarts)
    memo.next_start_at = ctx.inp.now + delay
    return delay


def _active(ctx: _Ctx, tasks: list[Observed], revision: int) -> list[Observed]:
    """Tasks of `revision` that serve or are on their way, oldest first."""
    return sorted(
        (
            t
            for t in tasks
            if t.revision == revision and ctx.inp.health_of(t).state in ("HEALTHY", "INITIAL")
        ),
        key=lambda t: t.created_at,
    )


def _report_waiting(ctx: _Ctx, rec: ServiceRecord, target: int, live: list[Observed]) -> None:
    """Tasks the engine has not placed yet (Swarm: no node has room): say why, once."""
    waiting = [t for t in live if t.revision == target and t.state == "pending"]
    reasons = sorted({t.pending_reason for t in waiting if t.pending_reason})
    memo = ctx.memo
    if not reasons:
        return
    reason = f"{len(waiting)} task(s) of revision {target} wait for a node: {'; '.join(reasons)}"
    if memo.pending_reason != reason:
        memo.pending_reason = reason
        td = ctx.inp.definitions.get(target)
        ctx.emit(
            ctx.say.placement_pending(
                target, td.memory_reservation if td else 0, reason, memo.serving_revision
            )
        )
    if target == rec.revision and _deploying(rec, memo):
        _set_phase(ctx, "PENDING", reason)


def _ensure_tasks(ctx: _Ctx, rec: ServiceRecord, target: int, live: list[Observed]) -> None:
    """Start tasks of the target revision until `count` of them serve or are on their way.

    As many start as memory admits: during a replace the old tasks still hold
    their memory, so with no room for all of them at once the new tasks come
    one (or a few) at a time, each old one leaving once a new one serves. With no
    room for even one, the deploy waits (`deployment.pending`) and the old
    revision keeps serving."""
    want = rec.count
    if target == 0 or want == 0:
        return
    missing = want - len(_active(ctx, live, target))
    if missing <= 0:
        return
    memo = ctx.memo
    if ctx.inp.now < memo.next_start_at:
        ctx.plan.wake(memo.next_start_at)
        return
    td = ctx.inp.definitions.get(target)
    if td is None:
        ctx.plan.wake(ctx.inp.now + PENDING_RETRY_S)
        return
    need, free = td.memory_reservation, ctx.inp.free_mb
    room = max(0, free // need) if need > 0 else missing
    if room == 0:
        reason, event = ctx.say.deployment_pending(
            target, need, free, ctx.inp.limits.capacity_mb, memo.serving_revision
        )
        if memo.pending_reason != reason:
            memo.pending_reason = reason
            ctx.emit(event)
        if target == rec.revision and _deploying(rec, memo):
            _set_phase(ctx, "PENDING", reason)
        ctx.plan.wake(ctx.inp.now + PENDING_RETRY_S)
        return
    if memo.pending_reason:
        memo.pending_reason = ""
        if target == rec.revision and _deploying(rec, memo):
            _set_phase(ctx, "IN_PROGRESS")
    why = "deploying" if target == rec.revision and _deploying(rec, memo) else "restoring"
    for _ in range(min(missing, room)):
        ctx.plan.actions.append(StartTask(td, why))


def _desired_upstreams(
    ctx: _Ctx, rec: ServiceRecord, target: int, live: list[Observed], route: RouteView
) -> tuple[str, ...]:
    """The tasks the gateway should send requests to.

    The target revision's healthy tasks (up to `count`), and while fewer than
    `count` of them serve, as many healthy tasks of the revision serving before
    (those routed already first): a replace never leaves fewer serving than
    before. With nothing healthy, the live tasks the route has (better an
    unhealthy task than none)."""
    want = rec.count
    if want == 0:
        return ()

    def healthy(t: Observed) -> bool:
        return ctx.inp.health_of(t).state == "HEALTHY" and t.upstream is not None

    new = [t for t in _active(ctx, live, target) if healthy(t)][:want]
    routed = set(route.upstreams)
    old = sorted(
        (t for t in live if t.revision != target and healthy(t)),
        key=lambda t: (t.upstream not in routed, t.created_at),
    )[: max(0, want - len(new))]
    chosen = tuple(t.upstream for t in [*new, *old] if t.upstream)
    if chosen:
        return chosen
    live_upstreams = {t.upstream for t in live if t.upstream}
    return tuple(u for u in route.upstreams if u in live_upstreams)


def _route_and_retire(ctx: _Ctx, rec: ServiceRecord, target: int, live: list[Observed]) -> None:
    route = ctx.inp.route or RouteView(upstreams=(), kv_revision=0, acked_revision=0)
    want = _desired_upstreams(ctx, rec, target, live, route)
    if ctx.inp.route is None or want != route.upstreams:
        if ctx.inp.route is None and not want and target == 0:
            return
        by_upstream = {t.upstream: t for t in ctx.inp.tasks if t.upstream}
        ctx.plan.actions.append(SetRoute(want, target))
        for u in want:
            if u not in route.upstreams and u in by_upstream:
                ctx.emit(ctx.say.target_registered(by_upstream[u], u))
        for u in route.upstreams:
            if u not in want:
                ctx.emit(ctx.say.target_deregistered(by_upstream.get(u), u))
        return
    if not route.settled:
        return  # the gateway has not confirmed the switch (or requests still drain)
    routed = set(route.upstreams)
    memo = ctx.memo
    keep = rec.count
    on_the_way = 0
    for t in sorted(live, key=lambda t: t.created_at):
        if t.upstream in routed:
            continue
        h = ctx.inp.health_of(t)
        if t.revision == target and h.state == "INITIAL" and on_the_way < keep:
            on_the_way += 1
            continue  # a new task on its way
        if t.revision == target and not routed and keep:
            continue
        if t.revision != target:
            reason = f"replaced by revision {target}"
        elif keep == 0:
            reason = "the service is scaled to 0 tasks"
        elif h.state == "UNHEALTHY":
            reason = "replaced by a healthy task"
        else:
            reason = f"the service is scaled to {keep} tasks"
        _stop(ctx, t, reason)
    serving = [t for t in live if t.upstream in routed and t.revision == target]
    if keep and not serving:
        return
    memo.start_attempts = 0
    memo.pull_problem = ""
    only_target = all(t.revision == target for t in live if t.upstream in routed)
    if _deploying(rec, memo) and target == rec.revision and only_target:
        memo.serving_revision = rec.revision
        _set_phase(ctx, "COMPLETED")
        ctx.emit(ctx.say.deployment_completed(rec.revision))
    steady = [ctx.inp.health_of(t) for t in serving if ctx.inp.health_of(t).state == "HEALTHY"]
    if memo.restarts and steady:
        stable_at = min(h.since for h in steady) + ctx.inp.limits.stable_after_s
        if ctx.inp.now >= stable_at:
            memo.restarts = 0
        else:
            ctx.plan.wake(stable_at)


def _teardown(ctx: _Ctx, *, deleted: bool) -> None:
    """The service is deleted (or being deleted): route first, then tasks, then record it.

    The deletion is done once no task runs and the route is gone: a stopped
    container that Docker cannot remove yet ("removal in progress", "device or
    resource busy") does not hold it up. Such leftovers are removed later, in
    the background: every resync finds them by their labels and tries again."""
    if ctx.inp.route is not None:
        ctx.plan.actions.append(DeleteRoute())
    running = False
    for t in ctx.inp.tasks:
        if t.live:
            running = True
            _stop(ctx, t, "service deleted")
        else:
            _remove_when_logged(ctx, t, grace=5.0)
    if not running and ctx.inp.route is None:
        ctx.plan.actions.append(Finish(remove_images=True))
    if ctx.inp.tasks:
        ctx.plan.wake(ctx.inp.now + 1.0)

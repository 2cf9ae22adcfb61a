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
    _check_deadline(ctx, rec, live)
    target = _target(rec, memo)
    for t in live:
        if t.container_id in memo.stopping:
            _stop(ctx, t, "stopping")  # ordered earlier and still running: order it again
        elif t.revision in memo.failed and t.revision != target:
            _stop(ctx, t, f"deployment of revision {t.revision} failed")
    live = [t for t in live if t.container_id not in memo.stopping]
    _report_health(ctx, live)
    # the route first: starting a task takes a while, and a first deploy's route
    # makes the gateway answer 503 ("no healthy task yet") instead of 404 meanwhile
    _route_and_retire(ctx, rec, target, live)
    _ensure_task(ctx, rec, target, live)
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
    memo = ctx.memo
    memo.restarts += 1
    delay = backoff(ctx.inp.limits, memo.restarts)
    memo.next_start_at = ctx.inp.now + delay
    ctx.emit(ctx.say.task_restarting(t, memo.restarts, delay))


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
    for cid in list(memo.reported_health):
        if cid not in alive:
            del memo.reported_health[cid]


def _check_deadline(ctx: _Ctx, rec: ServiceRecord, live: list[Observed]) -> None:
    if not _deploying(rec, ctx.memo):
        return
    candidates = [t for t in live if t.revision == rec.revision]
    if any(ctx.inp.health_of(t).state == "HEALTHY" for t in candidates):
        return
    limit = ctx.inp.limits.deploy_deadline_s
    for t in candidates:
        # The clock starts when the task runs and is being checked, not when its
        # container was created: starting can take seconds on a busy host.
        h_seen = ctx.inp.health.get(t.container_id)
        if h_seen is None:
            continue
        started = max(t.created_at, h_seen.since)
        if ctx.inp.now - started > limit:
            h = ctx.inp.health_of(t)
            detail = f": last health check: {h.description}" if h.description else ""
            _fail(
                ctx,
                rec,
                f"task {t.task_id} did not become healthy within {limit:g} s{detail}",
                t.container_id,
            )
            return
        ctx.plan.wake(started + limit + 0.01)


def _ensure_task(ctx: _Ctx, rec: ServiceRecord, target: int, live: list[Observed]) -> None:
    if target == 0:
        return
    mine = [t for t in live if t.revision == target]
    states = {ctx.inp.health_of(t).state for t in mine}
    if "HEALTHY" in states or "INITIAL" in states:
        return  # serving, or one on its way
    memo = ctx.memo
    if ctx.inp.now < memo.next_start_at:
        ctx.plan.wake(memo.next_start_at)
        return
    td = ctx.inp.definitions.get(target)
    if td is None:
        ctx.plan.wake(ctx.inp.now + PENDING_RETRY_S)
        return
    need, free = td.memory_reservation, ctx.inp.free_mb
    if need > free:
        reason, event = ctx.say.deployment_pending(
            target, need, free, ctx.inp.limits.capacity_mb, memo.serving_revision
        )
        if memo.pending_reason != reason:
            memo.pending_reason = reason
            ctx.emit(event)
        if target == rec.revision:
            _set_phase(ctx, "PENDING", reason)
        ctx.plan.wake(ctx.inp.now + PENDING_RETRY_S)
        return
    if memo.pending_reason:
        memo.pending_reason = ""
        if target == rec.revision and _deploying(rec, memo):
            _set_phase(ctx, "IN_PROGRESS")
    why = "deploying" if target == rec.revision and _deploying(rec, memo) else "restoring"
    ctx.plan.actions.append(StartTask(td, why))


def _desired_upstreams(
    ctx: _Ctx, target: int, live: list[Observed], route: RouteView
) -> tuple[str, ...]:
    healthy = [
        t
        for t in live
        if t.revision == target and ctx.inp.health_of(t).state == "HEALTHY" and t.upstream
    ]
    if healthy:
        newest = max(healthy, key=lambda t: t.created_at)
        return (newest.upstream,) if newest.upstream else ()
    live_upstreams = {t.upstream for t in live if t.upstream}
    kept = tuple(u for u in route.upstreams if u in live_upstreams)
    if kept:
        return kept
    fallback = [t for t in live if ctx.inp.health_of(t).state == "HEALTHY" and t.upstream]
    if fallback:
        newest = max(fallback, key=lambda t: t.created_at)
        return (newest.upstream,) if newest.upstream else ()
    return ()


def _route_and_retire(ctx: _Ctx, rec: ServiceRecord, target: int, live: list[Observed]) -> None:
    route = ctx.inp.route or RouteView(upstreams=(), kv_revision=0, acked_revision=0)
    want = _desired_upstreams(ctx, target, live, route)
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
    for t in live:
        if t.upstream in routed:
            continue
        h = ctx.inp.health_of(t)
        if t.revision == target and h.state == "INITIAL":
            continue  # a new task on its way
        if t.revision == target and not routed:
            continue
        reason = (
            f"replaced by revision {target}"
            if t.revision != target
            else "replaced by a healthy task"
        )
        _stop(ctx, t, reason)
    serving_task = next((t for t in live if t.upstream in routed and t.revision == target), None)
    if serving_task is None:
        return
    memo.start_attempts = 0
    memo.pull_problem = ""
    if _deploying(rec, memo) and target == rec.revision:
        memo.serving_revision = rec.revision
        _set_phase(ctx, "COMPLETED")
        ctx.emit(ctx.say.deployment_completed(rec.revision))
    h = ctx.inp.health_of(serving_task)
    if memo.restarts and h.state == "HEALTHY":
        stable_at = h.since + ctx.inp.limits.stable_after_s
        if ctx.inp.now >= stable_at:
            memo.restarts = 0
        else:
            ctx.plan.wake(stable_at)


def _teardown(ctx: _Ctx, *, deleted: bool) -> None:
    """The service is deleted (or being deleted): route first, then tasks, then record it."""
    if ctx.inp.route is not None:
        ctx.plan.actions.append(DeleteRoute())
    left = False
    for t in ctx.inp.tasks:
        left = True
        if t.live:
            _stop(ctx, t, "service deleted")
        else:
            _remove_when_logged(ctx, t, grace=5.0)
    if not left and ctx.inp.route is None:
        ctx.plan.actions.append(Finish(remove_images=True))
    elif left:
        ctx.plan.wake(ctx.inp.now + 1.0)

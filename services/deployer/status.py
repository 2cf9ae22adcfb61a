"""The observed status the deployer publishes for a service. Pure, no I/O."""

from __future__ import annotations

from services.deployer.messages import exit_reason
from services.deployer.model import Memo, Observed
from services.deployer.plan import Inputs
from shared.clock import iso
from shared.models import ServiceStatus, TaskHealth, TaskLastStatus, TaskState

_LAST_STATUS: dict[str, TaskLastStatus] = {
    "created": "PROVISIONING",
    "pending": "PENDING",
    "running": "RUNNING",
    "paused": "RUNNING",
    "restarting": "PENDING",
    "removing": "STOPPED",
    "exited": "STOPPED",
    "dead": "STOPPED",
}


def _task_state(inp: Inputs, memo: Memo, t: Observed) -> TaskState:
    h = inp.health_of(t)
    stopping = t.container_id in memo.stopping or t.revision in memo.failed
    last = _LAST_STATUS.get(t.state, "STOPPED")
    health: TaskHealth
    if last != "RUNNING":
        health = "UNUSED"
    elif stopping:
        health = "DRAINING"
    else:
        health = h.state
    return TaskState(
        task_id=t.task_id,
        container_id=t.container_id,
        revision=t.revision,
        created_at=iso(t.created_at),
        desired_status="STOPPED" if stopping else "RUNNING",
        last_status=last,
        health=health,
        health_description=h.description if last == "RUNNING" else "",
        host=t.address,
        host_port=t.host_port,
        exit_code=t.exit_code if last == "STOPPED" else None,
        stopped_reason=exit_reason(t) if last == "STOPPED" and not stopping else "",
        started_at=memo.started.get(t.container_id, 0.0),
    )


def build_status(inp: Inputs, memo: Memo, host: str, *, drained: bool = False) -> ServiceStatus:
    uid = inp.record.uid if inp.record else memo.service_uid
    tasks = sorted(
        (t for t in inp.tasks if t.service_uid == uid),
        key=lambda t: t.created_at,
        reverse=True,
    )
    return ServiceStatus(
        project=inp.project,
        service=inp.service,
        service_uid=uid,
        host=host,
        updated_at=iso(inp.now),
        serving_revision=memo.serving_revision,
        deployment=memo.deployment,
        tasks=[_task_state(inp, memo, t) for t in tasks],
        restarts=memo.restarts,
        failed_revisions=sorted(memo.failed),
        drained=drained,
    )

"""What the api answers, built from records: pure functions, no I/O.

The shapes follow clfpy's `services_client.py` (links, status, tasks,
target_health, events); fields beyond that contract are additions clfpy ignores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared import names
from shared.events import AnyEvent, event_type
from shared.models import ServiceRecord, ServiceStatus, TaskDefinition, TaskState
from shared.rules import health_check_path
from shared.settings import Settings

DEFAULT_STATUS_CODES = "200-499"
DEFAULT_INTERVAL = 10


def links(settings: Settings, project: str, name: str) -> list[dict[str, str]]:
    return [
        {"href": f"/services/{name}", "rel": "self"},
        {
            "href": settings.gateway_public_url + names.deployment_path(project, name),
            "rel": "deployment",
        },
    ]


def summary(settings: Settings, record: ServiceRecord) -> dict[str, Any]:
    return {"name": record.name, "links": links(settings, record.project, record.name)}


def service_status_word(record: ServiceRecord) -> str:
    if record.deleting:
        return "DRAINING"
    if record.revision == 0:
        return "INACTIVE"
    return "ACTIVE"


def task_definition_view(td: TaskDefinition | None, revision: int, current: int) -> dict[str, Any]:
    if td is None:
        return {
            "name": "",
            "revision": revision,
            "status": "INACTIVE",
            "container_image": "",
            "container_memory_reservation": 0,
            "container_memory_limit": 0,
            "container_port": 0,
        }
    return {
        "name": f"{td.project}-{td.service}",
        "revision": td.revision,
        "status": "ACTIVE" if td.revision == current else "INACTIVE",
        "container_image": td.image,
        "container_memory_reservation": td.memory_reservation,
        "container_memory_limit": td.memory_limit,
        "container_port": td.container_port,
        "container_tag": td.container_tag,
    }


def _task_view(task: TaskState, defs: Mapping[int, TaskDefinition], current: int) -> dict[str, Any]:
    view: dict[str, Any] = {
        "task_name": task.task_id,
        "created_at": task.created_at,
        "desired_status": task.desired_status,
        "last_status": task.last_status,
        "health": task.health.lower(),
        "host": task.host,
        "task_definition": task_definition_view(defs.get(task.revision), task.revision, current),
    }
    if task.exit_code is not None:
        view["exit_code"] = task.exit_code
    if task.stopped_reason:
        view["stopped_reason"] = task.stopped_reason
    return view


def _target_view(task: TaskState) -> dict[str, Any]:
    target: dict[str, Any] = {
        "target": task.task_id,
        "host": task.host,
        "port": task.host_port,
        "health": task.health.lower(),
    }
    if task.health_description:
        target["description"] = task.health_description
    return target


def event_view(event: AnyEvent) -> dict[str, Any]:
    return {"created_at": event.created_at, "message": event.message, "type": event_type(event)}


def status_view(
    record: ServiceRecord,
    observed: ServiceStatus | None,
    events: Sequence[AnyEvent],
    defs: Mapping[int, TaskDefinition],
) -> dict[str, Any]:
    hc = record.health_check
    # Status written for an earlier service of the same name does not count.
    if observed is not None and observed.service_uid != record.uid:
        observed = None
    tasks = list(observed.tasks) if observed else []
    deployment = observed.deployment if observed else None
    running = sum(1 for t in tasks if t.last_status == "RUNNING")
    pending = sum(1 for t in tasks if t.last_status in ("PROVISIONING", "PENDING"))
    if deployment is not None and deployment.phase == "PENDING" and pending == 0:
        pending = 1
    desired = 0 if record.deleting or record.revision == 0 else record.count
    status: dict[str, Any] = {
        "service_status": service_status_word(record),
        "count_desired": desired,
        "count_running": running,
        "count_pending": pending,
        "revision": record.revision,
        "serving_revision": observed.serving_revision if observed else 0,
        "restarts": observed.restarts if observed else 0,
        "tasks": [_task_view(t, defs, record.revision) for t in tasks],
        "events": [event_view(e) for e in events],
        "target_health": {
            "health_check_path": health_check_path(record.project, record.name, hc),
            "interval": hc.interval if hc else DEFAULT_INTERVAL,
            "status_codes": hc.status_codes if hc else DEFAULT_STATUS_CODES,
            "targets": [
                _target_view(t)
                for t in tasks
                if t.last_status == "RUNNING" and t.host_port is not None
            ],
        },
    }
    if deployment is not None:
        status["deployment"] = {
            "revision": deployment.revision,
            "status": deployment.phase,
            "reason": deployment.reason,
            "started_at": deployment.started_at,
            "updated_at": deployment.updated_at,
        }
    return status


def revision_view(td: TaskDefinition, current: int) -> dict[str, Any]:
    view = task_definition_view(td, td.revision, current)
    view["created_at"] = td.created_at
    view["environment"] = [{"name": e.name, "value": e.value} for e in td.environment]
    if td.rolled_back_from is not None:
        view["rolled_back_from"] = td.rolled_back_from
    return view

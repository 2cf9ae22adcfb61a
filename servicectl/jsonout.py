"""What `--json` prints: the documented shapes (docs/CLI.md), built from decoded answers. Pure.

Single answers are one indented JSON document; streams (deploy, rollback and
scale progress, logs, events) are JSON lines, one compact object a line, so a
script can read them as they come. Every object a stream prints for progress
has a `kind`. No I/O: the commands print what these functions return.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec

from servicectl.definitions import Base
from servicectl.models import (
    EnvVar,
    Event,
    Revision,
    ServiceSummary,
    ServiceView,
    TargetHealth,
    Task,
    TokenInfo,
    UpdateResult,
)
from servicectl.states import NewestDeployment, service_state


def document(value: Any) -> str:
    """One JSON document for a single answer (indented)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def line(value: Any) -> str:
    """One JSON line of a stream (compact)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _newest(d: NewestDeployment | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"revision": d.revision, "status": d.status, "reason": d.reason}


def service_entry(summary: ServiceSummary, view: ServiceView | None) -> dict[str, Any]:
    """One service of `ls --json`: the API's name and links, then its state."""
    entry: dict[str, Any] = {"name": summary.name, "url": summary.url}
    if view is None:  # deleted between the list and the look at it
        entry.update(status="DELETED", serving=False, revision=0, serving_revision=0)
        entry.update(deployment=None, count_running=0, count_desired=0)
    else:
        st = view.status
        state = service_state(st)
        entry.update(
            status=st.service_status,
            serving=state.serving,
            revision=st.revision,
            serving_revision=st.serving_revision,
            deployment=_newest(state.newest),
            count_running=st.count_running,
            count_desired=st.count_desired,
        )
    entry["links"] = builtins(summary.links)
    return entry


_EVENT_EXTRAS = ("revision", "task", "reason", "rolled_back_to", "last_lines")


def event_record(event: Event) -> dict[str, Any]:
    """An event: `type`, `created_at`, `message`, and the extras it has (revision, task ...)."""
    out: dict[str, Any] = {
        "type": event.type,
        "created_at": event.created_at,
        "message": event.message,
    }
    for name in _EVENT_EXTRAS:
        value = getattr(event, name)
        if value:
            out[name] = list(value) if isinstance(value, list) else value
    return out


def log_record(time: str, task: str, stream: str, n: int, message: str) -> dict[str, Any]:
    out: dict[str, Any] = {"time": time, "task": task, "stream": stream}
    if n:
        out["n"] = n
    out["message"] = message
    return out


def whoami_record(info: TokenInfo, api: str) -> dict[str, Any]:
    return {
        "username": info.username,
        "project": info.project,
        "api": api,
        "expires_at": info.expires_at,
    }


def update_record(
    action: str,
    result: UpdateResult,
    *,
    base: Base | None = None,
    changes: Sequence[str] = (),
    rolled_back_from: int | None = None,
) -> dict[str, Any]:
    """The first line of a deploy or rollback: the revision the API stored."""
    td = result.task_definition
    out: dict[str, Any] = {
        "kind": "update",
        "action": action,
        "name": result.name,
        "revision": result.revision,
        "url": result.url,
        "image": td.container_image,
        "tag": td.container_tag,
        "memory_reservation": td.container_memory_reservation,
        "memory_limit": td.container_memory_limit,
        "port": td.container_port,
    }
    if base is not None:
        out["base_revision"] = base.number
        out["base"] = (
            "defaults" if base.revision is None else ("serving" if base.serving else "newest")
        )
        out["changes"] = list(changes)
    if rolled_back_from is not None:
        out["rolled_back_from"] = rolled_back_from
    out["warnings"] = list(result.warnings)
    return out


def progress_event(event: Event) -> dict[str, Any]:
    return {"kind": "event", **event_record(event)}


def note(text: str) -> dict[str, Any]:
    return {"kind": "note", "message": text}


def task_record(task: Task) -> dict[str, Any]:
    td = task.task_definition
    out: dict[str, Any] = {
        "kind": "task",
        "task": task.task_name,
        "revision": td.revision,
        "status": task.last_status,
        "desired_status": task.desired_status,
        "health": task.health,
    }
    if task.exit_code is not None:
        out["exit_code"] = task.exit_code
    return out


def result_record(
    name: str,
    status: str,
    *,
    ok: bool,
    revision: int = 0,
    url: str = "",
    reason: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """The last line of a deploy, rollback or scale: how it ended."""
    out: dict[str, Any] = {"kind": "result", "ok": ok, "status": status, "name": name}
    if revision:
        out["revision"] = revision
    if url:
        out["url"] = url
    out["reason"] = reason
    out.update(extra)
    return out


def health_record(name: str, th: TargetHealth, rel_path: str) -> dict[str, Any]:
    return {
        "name": name,
        "health_check": {
            "path": th.health_check_path,
            "rel_path": rel_path,
            "status_codes": th.status_codes,
            "interval": th.interval,
        },
    }


def env_record(
    name: str, rev: Revision | None, env: Sequence[EnvVar], show: bool, serving: bool
) -> dict[str, Any]:
    variables: list[dict[str, Any]] = []
    for e in env:
        if show:
            variables.append({"name": e.name, "value": e.value})
        else:
            variables.append({"name": e.name, "masked": True, "length": len(e.value)})
    return {
        "name": name,
        "revision": rev.revision if rev is not None else 0,
        "serving": serving,
        "environment": variables,
    }

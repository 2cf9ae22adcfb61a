"""Typed events on the EVENTS stream: one tagged union, one codec.

Every state change of a service is one of these structs, tagged by `type`
(e.g. "deployment.failed"), and carries a human `message`. Producers build them
with the constructors' keyword arguments; readers decode `AnyEvent`. New fields
always get defaults. This module does no I/O.
"""

from __future__ import annotations

import msgspec

from shared.clock import iso_now


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    project: str
    service: str
    message: str
    created_at: str = msgspec.field(default_factory=iso_now)


# ---------------------------------------------------------------- service
class ServiceCreated(Event, tag="service.created", frozen=True, kw_only=True):
    pass


class ServiceUpdated(Event, tag="service.updated", frozen=True, kw_only=True):
    revision: int
    image: str = ""


class ServiceDeleting(Event, tag="service.deleting", frozen=True, kw_only=True):
    pass


class ServiceDeleted(Event, tag="service.deleted", frozen=True, kw_only=True):
    pass


class ServiceWarning(Event, tag="service.warning", frozen=True, kw_only=True):
    revision: int = 0


class ServiceScaled(Event, tag="service.scaled", frozen=True, kw_only=True):
    count: int
    previous: int


class HealthCheckChanged(Event, tag="service.health_check_changed", frozen=True, kw_only=True):
    path: str
    status_codes: str
    interval: int


# ---------------------------------------------------------------- deployment
class DeploymentStarted(Event, tag="deployment.started", frozen=True, kw_only=True):
    revision: int


class DeploymentPending(Event, tag="deployment.pending", frozen=True, kw_only=True):
    revision: int
    needed_mb: int
    free_mb: int
    capacity_mb: int


class DeploymentCompleted(Event, tag="deployment.completed", frozen=True, kw_only=True):
    revision: int


class DeploymentFailed(Event, tag="deployment.failed", frozen=True, kw_only=True):
    revision: int
    reason: str
    rolled_back_to: int = 0
    last_lines: list[str] = []


# ---------------------------------------------------------------- tasks
class TaskStarted(Event, tag="task.started", frozen=True, kw_only=True):
    task: str
    revision: int
    host_port: int | None = None


class TaskHealthy(Event, tag="task.healthy", frozen=True, kw_only=True):
    task: str
    revision: int


class TaskUnhealthy(Event, tag="task.unhealthy", frozen=True, kw_only=True):
    task: str
    revision: int
    description: str


class TaskExited(Event, tag="task.exited", frozen=True, kw_only=True):
    task: str
    revision: int
    exit_code: int
    last_lines: list[str] = []


class TaskOomKilled(Event, tag="task.oom_killed", frozen=True, kw_only=True):
    task: str
    revision: int
    memory_limit_mb: int
    last_lines: list[str] = []


class TaskRestarting(Event, tag="task.restarting", frozen=True, kw_only=True):
    task: str
    revision: int
    attempt: int
    delay_s: float


class TaskStopped(Event, tag="task.stopped", frozen=True, kw_only=True):
    task: str
    revision: int
    reason: str


class TargetRegistered(Event, tag="target.registered", frozen=True, kw_only=True):
    task: str
    revision: int
    target: str


class TargetDeregistered(Event, tag="target.deregistered", frozen=True, kw_only=True):
    task: str
    revision: int
    target: str


AnyEvent = (
    ServiceCreated
    | ServiceUpdated
    | ServiceDeleting
    | ServiceDeleted
    | ServiceWarning
    | ServiceScaled
    | HealthCheckChanged
    | DeploymentStarted
    | DeploymentPending
    | DeploymentCompleted
    | DeploymentFailed
    | TaskStarted
    | TaskHealthy
    | TaskUnhealthy
    | TaskExited
    | TaskOomKilled
    | TaskRestarting
    | TaskStopped
    | TargetRegistered
    | TargetDeregistered
)

EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    result: AnyEvent = _decoder.decode(data)
    return result


def event_type(event: Event) -> str:
    tag = type(event).__struct_config__.tag
    return str(tag)

"""What the deployer's planner reasons about: observed tasks, health, memory, actions.

Plain frozen dataclasses with no I/O, so that `plan` can be tested with tables.
`Memo` is the per-service memory the deployer keeps between reconciliations
(and rebuilds from the status bucket after a restart).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.events import Event
from shared.models import DeploymentState, ServiceStatus, TaskDefinition

ContainerState = Literal[
    "created", "pending", "running", "paused", "restarting", "removing", "exited", "dead"
]
Health = Literal["INITIAL", "HEALTHY", "UNHEALTHY"]

# "pending": an engine that places tasks (Swarm) has not found a node for it yet
LIVE_STATES: frozenset[str] = frozenset({"created", "pending", "running", "paused", "restarting"})


@dataclass(frozen=True)
class Observed:
    """One container of the service on this host, as Docker reports it."""

    task_id: str
    container_id: str
    service_uid: str
    revision: int
    state: ContainerState
    created_at: float
    memory_reservation: int = 0
    memory_limit: int = 0
    host_port: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    finished_at: float | None = None
    logs_done: bool = False
    address: str = "127.0.0.1"  # where its published port is reached (its node)
    log_id: str = ""  # the container whose output the log collector keeps ("" : container_id)
    error: str = ""  # why the engine could not run it, or why it is lost, in words
    pending_reason: str = ""  # why the engine has not started it yet (no node has room ...)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def upstream(self) -> str | None:
        return f"{self.address}:{self.host_port}" if self.host_port else None

    @property
    def log_key(self) -> str:
        return self.log_id or self.container_id


@dataclass(frozen=True)
class HealthView:
    state: Health
    description: str = ""
    since: float = 0.0
    healthy_once: bool = False
    fatal: str = ""  # a starting task that cannot become healthy: why (fails its deploy now)


@dataclass(frozen=True)
class RouteView:
    upstreams: tuple[str, ...]
    kv_revision: int
    acked_revision: int = 0

    @property
    def settled(self) -> bool:
        """The gateway serves this route and nothing is in flight to dropped upstreams."""
        return self.acked_revision >= self.kv_revision


@dataclass
class Memo:
    """What the deployer remembers about a service between reconciliations."""

    service_uid: str = ""
    serving_revision: int = 0
    deployment: DeploymentState | None = None
    failed: dict[int, str] = field(default_factory=dict)
    restarts: int = 0
    start_attempts: int = 0
    next_start_at: float = 0.0
    stopping: set[str] = field(default_factory=set)
    reported_exits: set[str] = field(default_factory=set)
    reported_health: dict[str, str] = field(default_factory=dict)
    pending_reason: str = ""
    pull_problem: str = ""
    started: dict[str, float] = field(default_factory=dict)  # health clock of each task

    @classmethod
    def from_status(cls, status: ServiceStatus | None) -> Memo:
        if status is None:
            return cls()
        memo = cls(
            service_uid=status.service_uid,
            serving_revision=status.serving_revision,
            deployment=status.deployment,
            failed={r: "failed earlier" for r in status.failed_revisions},
            restarts=status.restarts,
        )
        for task in status.tasks:
            if task.desired_status == "STOPPED":
                memo.stopping.add(task.container_id)
            if task.last_status == "STOPPED":
                memo.reported_exits.add(task.container_id)
            if task.health in ("HEALTHY", "UNHEALTHY"):
                memo.reported_health[task.container_id] = task.health
            if task.started_at:
                memo.started[task.container_id] = task.started_at
        return memo


# ---------------------------------------------------------------- failures
@dataclass(frozen=True)
class StartFailure:
    """A task of `revision` could not be started; `reason` is meant for the user."""

    revision: int
    reason: str


@dataclass(frozen=True)
class TemporaryFailure(StartFailure):
    """Try again later (the registry or the engine is away)."""


@dataclass(frozen=True)
class PermanentFailure(StartFailure):
    """Trying again cannot help (no such image, a definition Docker refuses): the user acts."""


# ---------------------------------------------------------------- actions
@dataclass(frozen=True)
class StartTask:
    definition: TaskDefinition
    reason: str


@dataclass(frozen=True)
class StopTask:
    task: Observed
    reason: str


@dataclass(frozen=True)
class RemoveContainer:
    task: Observed


@dataclass(frozen=True)
class SetRoute:
    upstreams: tuple[str, ...]
    revision: int


@dataclass(frozen=True)
class DeleteRoute:
    pass


@dataclass(frozen=True)
class Emit:
    event: Event
    lines_from: str | None = None  # container id whose last output lines to attach


@dataclass(frozen=True)
class Finish:
    """Nothing of the service is left on this host: record it drained."""

    remove_images: bool


Action = StartTask | StopTask | RemoveContainer | SetRoute | DeleteRoute | Emit | Finish


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    wake_at: float | None = None  # reconcile again at this time even if nothing changes

    def wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)

"""What the deployer tells users: the events of its decisions and their wording. Pure.

The planner decides *that* something is reported; this module builds the
typed event and its human message, so wording can change without touching a
decision (and decisions can be read without the prose).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.deployer.model import Observed
from shared import events as ev


def exit_reason(task: Observed) -> str:
    if task.error:
        return f"task {task.task_id} {task.error}"
    if task.oom_killed:
        return (
            f"task {task.task_id} was killed for using more than its memory limit "
            f"({task.memory_limit} MB)"
        )
    if task.state == "created":
        return f"task {task.task_id} never started"
    return f"task {task.task_id} exited with code {task.exit_code}"


@dataclass(frozen=True)
class Wording:
    """Events about one service."""

    project: str
    service: str

    # ------------------------------------------------------------ deployments
    def deployment_started(self, revision: int, image: str) -> ev.Event:
        return ev.DeploymentStarted(
            project=self.project,
            service=self.service,
            revision=revision,
            message=f"deployment of revision {revision} started: image {image}",
        )

    def deployment_failed(self, revision: int, reason: str, serving: int) -> ev.Event:
        after = (
            f"rolled back: revision {serving} keeps serving"
            if serving
            else "no earlier revision to serve"
        )
        return ev.DeploymentFailed(
            project=self.project,
            service=self.service,
            revision=revision,
            reason=reason,
            rolled_back_to=serving,
            message=f"deployment of revision {revision} failed: {reason}; {after}",
        )

    def deployment_pending(
        self, revision: int, need: int, free: int, capacity: int, serving: int
    ) -> tuple[str, ev.Event]:
        """The reason a revision cannot start yet, and its event."""
        reason = (
            f"revision {revision} needs {need} MB of memory reserved but only {max(free, 0)} MB "
            f"of {capacity} MB are free on this host"
        )
        after = f"; revision {serving} keeps serving" if serving and serving != revision else ""
        event = ev.DeploymentPending(
            project=self.project,
            service=self.service,
            revision=revision,
            needed_mb=need,
            free_mb=max(free, 0),
            capacity_mb=capacity,
            message=f"{reason}: waiting for memory to free up{after}",
        )
        return reason, event

    def placement_pending(self, revision: int, need: int, reason: str, serving: int) -> ev.Event:
        after = f"; revision {serving} keeps serving" if serving and serving != revision else ""
        return ev.DeploymentPending(
            project=self.project,
            service=self.service,
            revision=revision,
            needed_mb=need,
            free_mb=0,
            capacity_mb=0,
            message=f"{reason}{after}",
        )

    def deployment_completed(self, revision: int) -> ev.Event:
        return ev.DeploymentCompleted(
            project=self.project,
            service=self.service,
            revision=revision,
            message=f"service {self.service} has reached a steady state: "
            f"revision {revision} is serving",
        )

    def start_retrying(self, revision: int, reason: str) -> ev.Event:
        return ev.ServiceWarning(
            project=self.project,
            service=self.service,
            revision=revision,
            message=f"cannot start revision {revision}: {reason}; retrying",
        )

    # ------------------------------------------------------------ tasks
    def task_exited(self, t: Observed) -> ev.Event:
        if t.oom_killed:
            return ev.TaskOomKilled(
                project=self.project,
                service=self.service,
                task=t.task_id,
                revision=t.revision,
                memory_limit_mb=t.memory_limit,
                message=exit_reason(t),
            )
        return ev.TaskExited(
            project=self.project,
            service=self.service,
            task=t.task_id,
            revision=t.revision,
            exit_code=t.exit_code if t.exit_code is not None else -1,
            message=exit_reason(t),
        )

    def task_restarting(self, t: Observed, attempt: int, delay: float) -> ev.Event:
        return ev.TaskRestarting(
            project=self.project,
            service=self.service,
            task=t.task_id,
            revision=t.revision,
            attempt=attempt,
            delay_s=delay,
            message=f"restarting revision {t.revision} in {delay:g} s (restart {attempt} in a row)",
        )

    def task_stopped(self, t: Observed, reason: str) -> ev.Event:
        return ev.TaskStopped(
            project=self.project,
            service=self.service,
            task=t.task_id,
            revision=t.revision,
            reason=reason,
            message=f"service {self.service} has stopped 1 running tasks: "
            f"task {t.task_id} ({reason})",
        )

    def task_healthy(self, t: Observed, description: str) -> ev.Event:
        return ev.TaskHealthy(
            project=self.project,
            service=self.service,
            task=t.task_id,
            revision=t.revision,
            message=f"task {t.task_id} is healthy: {description}",
        )

    def task_unhealthy(self, t: Observed, description: str) -> ev.Event:
        return ev.TaskUnhealthy(
            project=self.project,
            service=self.service,
            task=t.task_id,
            revision=t.revision,
            description=description,
            message=f"task {t.task_id} is unhealthy: {description}; starting a replacement",
        )

    def task_started(self, task_id: str, revision: int, why: str) -> ev.Event:
        return ev.TaskStarted(
            project=self.project,
            service=self.service,
            task=task_id,
            revision=revision,
            message=f"service {self.service} has started 1 tasks: task {task_id} "
            f"(revision {revision}, {why})",
        )

    # ------------------------------------------------------------ targets
    def target_registered(self, t: Observed, target: str) -> ev.Event:
        return ev.TargetRegistered(
            project=self.project,
            service=self.service,
            task=t.task_id,
            revision=t.revision,
            target=target,
            message=f"service {self.service} registered 1 targets: "
            f"task {t.task_id} (revision {t.revision}) at {target}",
        )

    def target_deregistered(self, t: Observed | None, target: str) -> ev.Event:
        return ev.TargetDeregistered(
            project=self.project,
            service=self.service,
            task=t.task_id if t else "",
            revision=t.revision if t else 0,
            target=target,
            message=f"service {self.service} deregistered 1 targets: "
            + (f"task {t.task_id} at {target}" if t else target),
        )

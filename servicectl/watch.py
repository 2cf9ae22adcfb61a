"""Deciding when a deploy has ended, from status snapshots; events only show progress. Pure.

A deploy of revision N ends when the stored state says so: the status view's
deployment COMPLETED for N means N serves; FAILED means it does not, and
says why; a newer revision in the record means N was superseded. Events
(`deployment.completed`, `deployment.failed`, `service.updated`) only make
the CLI look at the status at once, and a failure event lends its last
output lines to the message: an event alone never decides, since events are
news, not state. `DeployWatch` also tells which polled events are new, for
the display.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from servicectl.models import Event, Status

EventKey = tuple[str, str, str]


@dataclass(frozen=True)
class Outcome:
    revision: int
    ok: bool
    reason: str = ""
    last_lines: tuple[str, ...] = ()
    rolled_back_to: int = 0
    superseded_by: int = 0


def event_key(event: Event) -> EventKey:
    return (event.created_at, event.type, event.message)


class DeployWatch:
    """Follows the deploy of one revision; `None` from the `on_*` methods means 'not yet'."""

    def __init__(self, revision: int, seen: Iterable[Event] = ()) -> None:
        self.revision = revision
        self._seen: set[EventKey] = {event_key(e) for e in seen}
        self._details: Event | None = None  # the failure event of N, for its last lines
        self.outcome: Outcome | None = None

    def failure_details(self, event: Event) -> None:
        """Lend a failure event's last lines to an outcome already decided by the status."""
        if (
            self.outcome is not None
            and not self.outcome.ok
            and event.type == "deployment.failed"
            and event.revision == self.revision
            and event.last_lines
        ):
            self.outcome = Outcome(
                self.outcome.revision,
                False,
                reason=self.outcome.reason,
                last_lines=tuple(event.last_lines),
                rolled_back_to=self.outcome.rolled_back_to,
            )

    def is_new(self, event: Event) -> bool:
        """True the first time an event is offered (by key); events seen before start are old."""
        key = event_key(event)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def new_events(self, status: Status) -> list[Event]:
        """Events of a polled status view not offered before, oldest first."""
        return [e for e in reversed(status.events) if self.is_new(e)]

    def on_event(self, event: Event) -> bool:
        """A live event; True if it may end the deploy (look at the status now)."""
        n = self.revision
        if event.type == "deployment.failed" and event.revision == n:
            self._details = event
            return True
        if event.type == "deployment.completed" and event.revision == n:
            return True
        return event.type == "service.updated" and event.revision > n

    def on_status(self, status: Status) -> Outcome | None:
        """A status view: the outcome once the stored deployment state of N has one."""
        n = self.revision
        if self.outcome is not None:
            return self.outcome
        d = status.deployment
        if d is not None and d.revision == n:
            if d.status == "COMPLETED":
                self.outcome = Outcome(n, True)
            elif d.status == "FAILED":
                serving = status.serving_revision if status.serving_revision != n else 0
                details = self._details
                self.outcome = Outcome(
                    n,
                    False,
                    reason=d.reason or "the deployment failed",
                    last_lines=tuple(details.last_lines) if details else (),
                    rolled_back_to=serving,
                )
        elif status.revision > n:
            self.outcome = Outcome(n, False, superseded_by=status.revision)
        return self.outcome

    def phase(self, status: Status) -> str:
        """A short word for the progress line: what the deploy of N is doing now."""
        d = status.deployment
        if d is not None and d.revision == self.revision:
            return d.status.lower().replace("_", " ")
        return "waiting for the deployer"

"""Deciding when a deploy has ended, from live events and status snapshots. Pure, no I/O.

A deploy of revision N ends when the platform says so: the event
`deployment.completed` (or the status view's deployment COMPLETED) for N
means N serves; `deployment.failed` (or FAILED) for N means it does not,
and says why. A newer revision arriving first means N was superseded.
`DeployWatch` is fed whatever the CLI receives (websocket events, polled
status views) and also tells which polled events are new, for the display.
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
        self.outcome: Outcome | None = None

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

    def on_event(self, event: Event) -> Outcome | None:
        """A live event; the deploy's own end event wins over what a status view said."""
        n = self.revision
        if event.type == "deployment.completed" and event.revision == n:
            self.outcome = Outcome(n, True)
        elif event.type == "deployment.failed" and event.revision == n:
            self.outcome = Outcome(
                n,
                False,
                reason=event.reason or event.message,
                last_lines=tuple(event.last_lines),
                rolled_back_to=event.rolled_back_to,
            )
        elif event.type == "service.updated" and event.revision > n and self.outcome is None:
            self.outcome = Outcome(n, False, superseded_by=event.revision)
        return self.outcome

    def on_status(self, status: Status) -> Outcome | None:
        n = self.revision
        if self.outcome is not None:
            return self.outcome
        d = status.deployment
        if d is not None and d.revision == n:
            if d.status == "COMPLETED":
                self.outcome = Outcome(n, True)
            elif d.status == "FAILED":
                serving = status.serving_revision if status.serving_revision != n else 0
                self.outcome = Outcome(
                    n,
                    False,
                    reason=d.reason or "the deployment failed",
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

"""Which containers the collector follows and which cursors it forgets. Pure decisions.

A container is followed when it carries this instance's label and names its
project, service and task; running containers always, stopped ones until their
output is known to be fully published. A cursor is deleted once its container
has been missing from this host for two garbage-collection rounds in a row, if
this collector saw the container (it ran here) or the cursor is older than the
logs themselves (LOGS drops lines after `log_max_age_s`), so that cursors of
other hosts' containers sharing the bucket survive.

No I/O: the worker passes in what Docker and NATS said.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.logs import timestamps
from shared import names
from shared.models import LogCursor

# states in which a container may still write output
LIVE_STATES = frozenset({"running", "paused", "restarting"})
# a subject token: no '.', wildcards or whitespace
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    id: str
    state: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Target:
    """A container whose output goes to `subject`."""

    container_id: str
    project: str
    service: str
    task: str

    @property
    def subject(self) -> str:
        return names.logs_subject(self.project, self.service, self.task)

    @property
    def short(self) -> str:
        return f"{self.project}/{self.service}/{self.task} ({self.container_id[:12]})"


def target_of(container_id: str, labels: Mapping[str, str], instance: str) -> Target | None:
    """The log target of a container, or None if it is not ours or cannot be named."""
    if labels.get(names.LABEL_INSTANCE) != instance:
        return None
    parts = (
        labels.get(names.LABEL_PROJECT, ""),
        labels.get(names.LABEL_SERVICE, ""),
        labels.get(names.LABEL_TASK, ""),
    )
    if not all(_TOKEN.fullmatch(p) for p in parts):
        return None
    return Target(container_id, *parts)


def to_follow(
    containers: Iterable[ContainerInfo], following: set[str], done: set[str]
) -> list[ContainerInfo]:
    """Containers that need a follower now (never ones being followed already)."""
    out: list[ContainerInfo] = []
    for c in containers:
        if c.id in following or c.state == "created":
            continue  # a created container has no output until it starts (an event)
        if c.state in LIVE_STATES or c.id not in done:
            out.append(c)
    return out


def stale_cursors(
    cursors: Mapping[str, LogCursor],
    present: set[str],
    seen: set[str],
    strikes: Mapping[str, int],
    now: float,
    max_age_s: float,
) -> tuple[list[str], dict[str, int]]:
    """(cursor keys to delete, strikes for the next round) for one garbage-collection round."""
    delete: list[str] = []
    new_strikes: dict[str, int] = {}
    for key, cursor in cursors.items():
        if key in present:
            continue
        count = strikes.get(key, 0) + 1
        if count < 2:
            new_strikes[key] = count
            continue
        if key in seen or _older_than(cursor.timestamp, now - max_age_s):
            delete.append(key)
        else:
            new_strikes[key] = count
    return delete, new_strikes


def _older_than(ts: str, limit: float) -> bool:
    try:
        return timestamps.seconds(ts) < limit
    except ValueError:
        return True

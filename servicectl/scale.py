"""Following a `servicectl scale` until the service runs the asked number of tasks. Pure.

After the PATCH the CLI polls the status view (and looks at once when a task
event arrives); `ScaleWatch` says which tasks are new or changed since the
last look, for the display, and when `count_running` has reached the count.
No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from servicectl.models import Status, Task


def _state(task: Task) -> tuple[str, str]:
    return (task.last_status, task.health)


class ScaleWatch:
    def __init__(self, count: int, seen: Iterable[Task] = ()) -> None:
        self.count = count
        self._seen: dict[str, tuple[str, str]] = {t.task_name: _state(t) for t in seen}

    def changed(self, status: Status) -> list[Task]:
        """Tasks that are new or whose status or health changed since the last look."""
        out = []
        for task in status.tasks:
            if self._seen.get(task.task_name) != _state(task):
                self._seen[task.task_name] = _state(task)
                out.append(task)
        return out

    def done(self, status: Status) -> bool:
        return status.count_running == self.count

    def phase(self, status: Status) -> str:
        return f"{status.count_running} of {self.count} running, {status.count_pending} pending"

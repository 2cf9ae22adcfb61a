"""How deploy, rollback and scale report as they go: text for people, or JSON lines for scripts.

In text mode progress goes to stderr and the result (the URL) to stdout. With
`--json`, stdout carries one JSON line per step (the update, each event or
task, then the result; shapes in `servicectl.jsonout`) and stderr keeps only
the notes meant for people. Nothing else here: the commands decide what to say.
"""

from __future__ import annotations

from typing import Any

from servicectl import jsonout, render
from servicectl.context import Context
from servicectl.models import Event, Task
from servicectl.states import in_cli_words


class Progress:
    def __init__(self, ctx: Context, name: str, *, as_json: bool = False) -> None:
        self.ctx = ctx
        self.name = name
        self.as_json = as_json

    def note(self, text: str) -> None:
        """A headline for people (stderr): `==> ...`."""
        self.ctx.progress(f"==> {text}")

    def step(self, text: str) -> None:
        """A detail for people (stderr), indented under the headlines."""
        self.ctx.progress(f"    {text}")

    def update(self, record: dict[str, Any], text: str) -> None:
        """What was sent: the JSON `update` line, or `text` as a headline."""
        if self.as_json:
            self.ctx.say(jsonout.line(record))
        else:
            self.note(text)

    def event(self, event: Event) -> None:
        if self.as_json:
            self.ctx.say(jsonout.line(jsonout.progress_event(event)))
            return
        shown = Event(
            type=event.type,
            message=in_cli_words(event.message, self.name),
            created_at=event.created_at,
        )
        self.step(render.event_line(shown, full_time=False))

    def task(self, task: Task) -> None:
        if self.as_json:
            self.ctx.say(jsonout.line(jsonout.task_record(task)))
        else:
            self.step(render.task_line(task))

    def result(self, record: dict[str, Any], text: str | None) -> None:
        """How it ended: the JSON `result` line, or `text` (if any) on stdout."""
        if self.as_json:
            self.ctx.say(jsonout.line(record))
        elif text is not None:
            self.ctx.say(text)

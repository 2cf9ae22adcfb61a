"""`servicectl logs` and `events`: a service's last lines and events, or following them live.

Without -f, one REST call (the logs view, the status view's events); with -f,
the websocket follows of `servicectl.following`, which reconnect by
themselves. With --json each line or event is one JSON line: log lines in
the CLI's shape (`servicectl.jsonout.log_record`), events as the API sent them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from servicectl import jsonout, render
from servicectl.client import Client
from servicectl.context import CommandError, Context
from servicectl.errors import ConnectionFailed, FollowUnavailable
from servicectl.feeds import Feed
from servicectl.following import print_follow
from servicectl.models import Event, LogLine
from servicectl.states import in_cli_words
from servicectl.watch import EventKey, event_key

EVENTS_POLL_S = 2.0
RESUME_LINES = 500  # backlog asked for when a follow reconnects
RESUME_EVENTS = 200


def _missed_note(ctx: Context, what: str) -> Callable[[int], None]:
    def note(count: int) -> None:
        ctx.progress(f"({count} {what} skipped: this terminal read them too slowly)")

    return note


def _event_text(name: str) -> Callable[[Event], str]:
    def show(event: Event) -> str:
        message = in_cli_words(event.message, name)
        return render.event_line(msgspec.structs.replace(event, message=message))

    return show


def _raw_event_key(event: dict[str, Any]) -> EventKey:
    return (
        str(event.get("created_at", "")),
        str(event.get("type", "")),
        str(event.get("message", "")),
    )


async def events(ctx: Context, name: str, count: int, follow: bool, as_json: bool = False) -> int:
    """The last `count` events; with `follow`, then new ones until the service is deleted."""
    async with ctx.client() as client:
        if follow:
            try:
                if as_json:

                    def open_json(tail: int, after: str | None) -> Awaitable[Feed[dict[str, Any]]]:
                        missed = _missed_note(ctx, "events")
                        return client.events_feed_json(name, tail, missed, after)

                    return await print_follow(
                        ctx,
                        open_json,
                        count,
                        RESUME_EVENTS,
                        _raw_event_key,
                        jsonout.line,
                        lambda e: str(e["seq"]) if isinstance(e.get("seq"), int) else None,
                    )

                def open_feed(tail: int, after: str | None) -> Awaitable[Feed[Event]]:
                    return client.events_feed(name, tail, _missed_note(ctx, "events"), after)

                return await print_follow(
                    ctx,
                    open_feed,
                    count,
                    RESUME_EVENTS,
                    event_key,
                    _event_text(name),
                    lambda e: str(e.seq) if e.seq else None,
                )
            except FollowUnavailable:
                pass  # an older API: poll its status view instead
        show = (lambda e: jsonout.line(jsonout.event_record(e))) if as_json else _event_text(name)
        history = (await client.service(name)).status.events
        for event in reversed(history[:count]):
            ctx.say(show(event))
        if follow:
            await _poll_events(ctx, client, name, {event_key(e) for e in history}, show)
    return 0


async def _poll_events(
    ctx: Context,
    client: Client,
    name: str,
    seen: set[EventKey],
    show: Callable[[Event], str],
) -> None:
    """For APIs without the events websocket: the status view's events, every few seconds."""
    while True:
        await asyncio.sleep(EVENTS_POLL_S)
        try:
            history = (await client.service(name)).status.events
        except ConnectionFailed:
            continue
        fresh: list[Event] = [e for e in reversed(history) if event_key(e) not in seen]
        for event in fresh:
            seen.add(event_key(event))
            ctx.say(show(event))


def never_deployed(name: str) -> str:
    return f"{name} has not been deployed yet: deploy it with servicectl deploy {name} --tag TAG"


async def logs(
    ctx: Context, name: str, tail: int, streams: int, follow: bool, as_json: bool = False
) -> int:
    """The last `tail` lines of the newest `streams` tasks; with `follow`, all new lines."""
    async with ctx.client() as client:
        if not follow:
            answer = await client.logs(name, tail, streams)
            if not answer.logs and (await client.service(name)).status.revision == 0:
                raise CommandError(never_deployed(name))
            for time, task, event in render.merged_log_events(answer.logs):
                if as_json:
                    ctx.say(
                        jsonout.line(
                            jsonout.log_record(time, task, event.stream, event.n, event.message)
                        )
                    )
                else:
                    ctx.say(render.log_line(time, task, event.message))
            return 0

        if (await client.service(name)).status.revision == 0:
            ctx.progress(f"({never_deployed(name)}; waiting for its first lines)")

        def open_feed(backlog: int, after: str | None) -> Awaitable[Feed[LogLine]]:
            return client.logs_feed(name, backlog, _missed_note(ctx, "lines"), after)

        def show(x: LogLine) -> str:
            if as_json:
                return jsonout.line(jsonout.log_record(x.time, x.source, x.stream, x.n, x.text))
            return render.log_line(x.time, x.source, x.text)

        try:
            return await print_follow(
                ctx,
                open_feed,
                tail,
                RESUME_LINES,
                lambda x: (x.source, x.n, x.time, x.text),
                show,
                lambda x: f"{x.seq}:{x.n}" if x.seq else None,
            )
        except FollowUnavailable as err:
            raise CommandError(str(err)) from None

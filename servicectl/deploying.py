"""`servicectl deploy` and `rollback`: send a new revision, then follow it until it serves or fails.

Following uses the events websocket when the API has one (opened before the
update is sent, so nothing is missed) and polls the status view as a safety
net, or alone on servers without the websocket. `DeployWatch` decides; this
module only moves data and prints progress (stderr) and the URL (stdout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from servicectl import render
from servicectl.client import Client
from servicectl.context import CommandError, Context
from servicectl.definitions import Changes, describe_changes, next_definition
from servicectl.errors import ConnectionFailed, FollowUnavailable, NotFound, ServicectlError
from servicectl.feeds import Feed
from servicectl.models import Event, ServiceView, Status, UpdateResult
from servicectl.watch import DeployWatch, Outcome

POLL_S = 1.0  # polling alone
SAFETY_POLL_S = 3.0  # polling next to the websocket
QUIET_NOTE_S = 15.0  # say "still deploying" after this long without news
DETAILS_WAIT_S = 1.5  # how long to wait for the failure event after the status said FAILED


async def _service(client: Client, name: str) -> ServiceView:
    try:
        return await client.service(name)
    except NotFound as err:
        raise CommandError(f"{err.message} (create it with `servicectl create {name}`)") from None


async def _events_feed(ctx: Context, client: Client, name: str) -> Feed[Event] | None:
    """The live events, or None when the API cannot send them (then the status is polled).

    Opened before the update is sent, without backlog: every event of the deploy arrives.
    """

    def missed(count: int) -> None:
        ctx.progress(f"    ({count} events skipped: read too slowly)")

    try:
        return await client.events_feed(name, 0, missed)
    except (FollowUnavailable, ConnectionFailed):
        return None


async def deploy(ctx: Context, name: str, changes: Changes, *, detach: bool, timeout: float) -> int:
    async with ctx.client() as client:
        view = await _service(client, name)
        current = (await client.revisions(name)).current()
        definition = next_definition(current, changes, view.context_root)
        what = ", ".join(describe_changes(current, definition, view.context_root))
        feed = None if detach else await _events_feed(ctx, client, name)
        try:
            result = await client.update_service(name, definition)
            ctx.progress(
                f"==> Deploying {name} revision {result.revision}: tag "
                f"{definition.container_tag}, memory {definition.memory_reservation}-"
                f"{definition.memory_limit} MB, port {definition.container_port} ({what})"
            )
            return await _after_update(ctx, client, result, view.status, feed, detach, timeout)
        finally:
            if feed is not None:
                await feed.close()


async def rollback(
    ctx: Context, name: str, revision: int | None, *, detach: bool, timeout: float
) -> int:
    async with ctx.client() as client:
        view = await _service(client, name)
        feed = None if detach else await _events_feed(ctx, client, name)
        try:
            result = await client.rollback(name, revision)
            source = result.task_definition.rolled_back_from
            ctx.progress(
                f"==> Rolling back {name} to the definition of revision {source}, "
                f"as revision {result.revision} (tag {result.task_definition.container_tag})"
            )
            return await _after_update(ctx, client, result, view.status, feed, detach, timeout)
        finally:
            if feed is not None:
                await feed.close()


async def _after_update(
    ctx: Context,
    client: Client,
    result: UpdateResult,
    before: Status,
    feed: Feed[Event] | None,
    detach: bool,
    timeout: float,
) -> int:
    for warning in result.warnings:
        ctx.progress(f"    warning: {warning}")
    if detach:
        ctx.progress(
            f"==> Revision {result.revision} sent; follow it with `servicectl events "
            f"{result.name} -f`"
        )
        ctx.say(result.url)
        return 0
    started = time.monotonic()
    try:
        outcome = await follow(ctx, client, result.name, result.revision, before, feed, timeout)
    except asyncio.CancelledError:
        ctx.progress(
            f"==> Stopped following: revision {result.revision} goes on deploying; "
            f"see `servicectl status {result.name}`"
        )
        raise
    took = time.monotonic() - started
    if outcome.ok:
        ctx.progress(f"==> Revision {outcome.revision} of {result.name} is serving ({took:.1f} s)")
        ctx.say(result.url)
        return 0
    raise CommandError(await failure_text(client, result, outcome))


async def follow(
    ctx: Context,
    client: Client,
    name: str,
    revision: int,
    before: Status,
    feed: Feed[Event] | None,
    timeout: float,
) -> Outcome:
    """Print the deploy's events until `DeployWatch` sees it end; `CommandError` on timeout."""
    watch = DeployWatch(revision, seen=before.events)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_poll = loop.time() + (SAFETY_POLL_S if feed else POLL_S)
    last_news = loop.time()
    phase = "waiting for the deployer"

    def print_event(event: Event) -> None:
        nonlocal last_news
        ctx.progress("    " + render.event_line(event, full_time=False))
        last_news = loop.time()

    def show(events: list[Event]) -> Outcome | None:
        """Live events: print the new ones; the outcome if one of them ends the deploy."""
        found = None
        for event in events:
            if watch.is_new(event):
                print_event(event)
            found = watch.on_event(event) or found
        return found

    while True:
        now = loop.time()
        if now >= deadline:
            raise CommandError(
                f"revision {revision} of {name} is still deploying ({phase}) after "
                f"{timeout:g} s; it goes on in the background: see `servicectl status {name}`"
            )
        if feed is not None:
            try:
                events = await feed.receive(timeout=max(0.05, min(next_poll, deadline) - now))
            except ConnectionFailed:
                ctx.progress("    (live events interrupted: polling the status instead)")
                await feed.close()
                feed = None
                events = []
            if (done := show(events)) is not None:
                return done
        else:
            await asyncio.sleep(max(0.0, min(next_poll, deadline) - now))
        if loop.time() < next_poll:
            continue
        try:
            status = (await client.service(name)).status
        except ConnectionFailed as err:
            ctx.progress(f"    ({err}; retrying)")
            next_poll = loop.time() + POLL_S
            continue
        phase = watch.phase(status)
        if feed is None:
            for event in watch.new_events(status):
                print_event(event)
        if (done := watch.on_status(status)) is not None:
            if feed is not None and not done.ok:
                done = await _failure_event(feed, show) or done
            return done
        if loop.time() - last_news >= QUIET_NOTE_S:
            ctx.progress(f"    ... {phase}")
            last_news = loop.time()
        next_poll = loop.time() + (SAFETY_POLL_S if feed else POLL_S)


async def _failure_event(
    feed: Feed[Event], show: Callable[[list[Event]], Outcome | None]
) -> Outcome | None:
    """The status said FAILED: give the event (which has the last lines) a moment to arrive."""
    loop = asyncio.get_running_loop()
    until = loop.time() + DETAILS_WAIT_S
    while (left := until - loop.time()) > 0:
        try:
            events = await feed.receive(timeout=left)
        except ServicectlError:
            return None
        found = show(events)
        if found is not None and found.last_lines:
            return found
    return None


async def failure_text(client: Client, result: UpdateResult, outcome: Outcome) -> str:
    name = result.name
    if outcome.superseded_by:
        return (
            f"revision {outcome.revision} of {name} was superseded by revision "
            f"{outcome.superseded_by} before it finished deploying; see `servicectl status {name}`"
        )
    lines = [f"deployment of revision {outcome.revision} of {name} failed: {outcome.reason}"]
    last = list(outcome.last_lines) or await _task_output(client, name, outcome.revision)
    if last:
        lines.append("  last output of the failed task:")
        lines += [f"    {line}" for line in last]
    if "is not in the registry" in outcome.reason:
        tag = result.task_definition.container_tag or "TAG"
        lines.append(f"  push the image first: servicectl push {name} DIR --tag {tag}")
    if outcome.rolled_back_to:
        lines.append(
            f"  revision {outcome.rolled_back_to} keeps serving at {result.url}; make it the "
            f"current definition again with `servicectl rollback {name}`"
        )
    else:
        lines.append(f"  no earlier revision is serving; see `servicectl logs {name}`")
    return "\n".join(lines)


async def _task_output(client: Client, name: str, revision: int) -> list[str]:
    """The failed revision's last log lines, when the API has a logs view (best effort)."""
    try:
        logs = await client.logs(name, tail=10, streams=5)
    except ServicectlError:
        return []
    for stream in logs.logs:
        if stream.stream_name.startswith(f"{revision}-"):
            return [e.message for e in stream.log_events]
    return []

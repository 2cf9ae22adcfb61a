"""`servicectl deploy`, `env set/unset` and `rollback`: send a new revision, then follow it.

A deploy builds on the base revision `choose_base` picks (the serving one when
the newest failed) and says which. Following uses the events websocket when
the API has one (opened before the update is sent, so nothing is missed) and
polls the status view as a safety net, or alone on servers without the
websocket. `DeployWatch` decides; this module only moves data and reports
through `Progress` (text, or JSON lines with --json).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping

from servicectl import jsonout
from servicectl.client import Client
from servicectl.context import CommandError, Context, UsageError
from servicectl.definitions import (
    Changes,
    base_note,
    choose_base,
    describe_base,
    describe_changes,
    next_definition,
    unset_but_missing,
)
from servicectl.errors import (
    BadRequest,
    ConnectionFailed,
    FollowUnavailable,
    NotFound,
    ServicectlError,
)
from servicectl.feeds import Feed
from servicectl.models import Event, ServiceView, Status, UpdateResult
from servicectl.progress import Progress
from servicectl.rejections import explain, sources
from servicectl.states import in_cli_words, missing_image_tag, push_hint, without_api_advice
from servicectl.watch import DeployWatch, Outcome

POLL_S = 1.0  # polling alone
SAFETY_POLL_S = 3.0  # polling next to the websocket
QUIET_NOTE_S = 15.0  # say "still deploying" after this long without news
DETAILS_WAIT_S = 1.5  # how long to wait for the failure event after the status said FAILED


class DeployTimeout(CommandError):
    """Stopped waiting; the deploy goes on."""


async def service_or_hint(client: Client, name: str) -> ServiceView:
    try:
        return await client.service(name)
    except NotFound as err:
        raise CommandError(f"{err.message} (create it with `servicectl create {name}`)") from None


async def live_events(out: Progress, client: Client, name: str) -> Feed[Event] | None:
    """The live events, or None when the API cannot send them (then the status is polled).

    Opened before the update is sent, without backlog: every event of the deploy arrives.
    """

    def missed(count: int) -> None:
        out.step(f"({count} events skipped: read too slowly)")

    try:
        return await client.events_feed(name, 0, missed)
    except (FollowUnavailable, ConnectionFailed):
        return None


async def deploy(
    ctx: Context,
    name: str,
    changes: Changes,
    *,
    detach: bool,
    timeout: float,
    as_json: bool = False,
    env_sources: Mapping[str, str] | None = None,
    only_unset: bool = False,
) -> int:
    """Send the base revision with `changes` as a new revision; follow it unless `detach`.

    `env_sources` says how the user gave each variable (for error messages);
    `only_unset` (env unset) refuses to make a revision when none of the
    variables to remove is set."""
    out = Progress(ctx, name, as_json=as_json)
    async with ctx.client() as client:
        view = await service_or_hint(client, name)
        base = choose_base(await client.revisions(name), view.status)
        root = view.context_root
        definition = next_definition(base.revision, changes, root)
        if (note := base_note(base)) is not None:
            out.note(note)
        if missing := unset_but_missing(base, changes, root):
            where = f"revision {base.number}" if base.revision is not None else name
            out.note(f"{', '.join(missing)}: not set in {where}")
            if only_unset and len(missing) == len(changes.unset):
                raise UsageError("nothing to unset: the environment stays as it is")
        what = describe_changes(base.revision, definition, root)
        feed = None if detach else await live_events(out, client, name)
        try:
            try:
                result = await client.update_service(name, definition)
            except BadRequest as err:
                kept = next_definition(base.revision, Changes(), root)
                label = f"revision {base.number}" if base.revision is not None else "the defaults"
                src = sources(name, label, kept, definition, changes, env_sources or {})
                raise BadRequest(err.status, explain(err.message, definition, src)) from None
            out.update(
                jsonout.update_record("deploy", result, base=base, changes=what),
                f"Deploying {name} revision {result.revision} ({describe_base(base)}): tag "
                f"{definition.container_tag}, memory {definition.memory_reservation}-"
                f"{definition.memory_limit} MB, port {definition.container_port} "
                f"({', '.join(what)})",
            )
            return await _after_update(out, client, result, view.status, feed, detach, timeout)
        finally:
            if feed is not None:
                await feed.close()


async def rollback(
    ctx: Context,
    name: str,
    revision: int | None,
    *,
    detach: bool,
    timeout: float,
    as_json: bool = False,
) -> int:
    out = Progress(ctx, name, as_json=as_json)
    async with ctx.client() as client:
        view = await service_or_hint(client, name)
        feed = None if detach else await live_events(out, client, name)
        try:
            try:
                result = await client.rollback(name, revision)
            except BadRequest as err:
                if revision is None:
                    raise
                message = re.sub(r"^revision must", "--to must", err.message)
                raise BadRequest(err.status, message) from None
            source = result.task_definition.rolled_back_from
            out.update(
                jsonout.update_record("rollback", result, rolled_back_from=source or 0),
                f"Rolling back {name} to the definition of revision {source}, "
                f"as revision {result.revision} (tag {result.task_definition.container_tag})",
            )
            return await _after_update(out, client, result, view.status, feed, detach, timeout)
        finally:
            if feed is not None:
                await feed.close()


async def _after_update(
    out: Progress,
    client: Client,
    result: UpdateResult,
    before: Status,
    feed: Feed[Event] | None,
    detach: bool,
    timeout: float,
) -> int:
    name, revision, url = result.name, result.revision, result.url
    for warning in result.warnings:
        out.step(f"warning: {warning}")
    if detach:
        out.note(f"Revision {revision} sent; follow it with `servicectl events {name} -f`")
        out.result(jsonout.result_record(name, "SENT", ok=True, revision=revision, url=url), url)
        return 0
    started = time.monotonic()
    try:
        outcome = await follow(out, client, name, revision, before, feed, timeout)
    except asyncio.CancelledError:
        out.note(
            f"Stopped following: revision {revision} goes on deploying; "
            f"see `servicectl status {name}`"
        )
        out.result(
            jsonout.result_record(name, "INTERRUPTED", ok=False, revision=revision, url=url),
            None,
        )
        raise
    except DeployTimeout as err:
        out.result(
            jsonout.result_record(
                name, "TIMEOUT", ok=False, revision=revision, url=url, reason=err.message
            ),
            None,
        )
        raise
    took = time.monotonic() - started
    if outcome.ok:
        out.note(f"Revision {outcome.revision} of {name} is serving ({took:.1f} s)")
        out.result(
            jsonout.result_record(
                name, "COMPLETED", ok=True, revision=revision, url=url, serving_revision=revision
            ),
            url,
        )
        return 0
    last = list(outcome.last_lines)
    if not outcome.superseded_by and not last:
        last = await _task_output(client, name, outcome.revision)
    out.result(
        jsonout.result_record(
            name,
            "SUPERSEDED" if outcome.superseded_by else "FAILED",
            ok=False,
            revision=revision,
            url=url,
            reason=in_cli_words(outcome.reason, name),
            last_lines=last,
            serving_revision=outcome.rolled_back_to,
            superseded_by=outcome.superseded_by,
        ),
        None,
    )
    raise CommandError(failure_text(result, outcome, last))


async def follow(
    out: Progress,
    client: Client,
    name: str,
    revision: int,
    before: Status,
    feed: Feed[Event] | None,
    timeout: float,
) -> Outcome:
    """Report the deploy's events until `DeployWatch` sees it end; `DeployTimeout` on timeout."""
    watch = DeployWatch(revision, seen=before.events)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_poll = loop.time() + (SAFETY_POLL_S if feed else POLL_S)
    last_news = loop.time()
    phase = "waiting for the deployer"

    def print_event(event: Event) -> None:
        nonlocal last_news
        out.event(event)
        last_news = loop.time()

    def show(events: list[Event]) -> bool:
        """Live events: print the new ones; True if one of them may end the deploy."""
        look = False
        for event in events:
            if watch.is_new(event):
                print_event(event)
            look = watch.on_event(event) or look
        return look

    while True:
        now = loop.time()
        if now >= deadline:
            raise DeployTimeout(
                f"revision {revision} of {name} is still deploying ({phase}) after "
                f"{timeout:g} s; it goes on in the background: see `servicectl status {name}`"
            )
        if feed is not None:
            try:
                events = await feed.receive(timeout=max(0.05, min(next_poll, deadline) - now))
            except ConnectionFailed:
                out.step("(live events interrupted: polling the status instead)")
                await feed.close()
                feed = None
                events = []
            if show(events):
                next_poll = loop.time()  # the status, not the event, says how it ended
        else:
            await asyncio.sleep(max(0.0, min(next_poll, deadline) - now))
        if loop.time() < next_poll:
            continue
        try:
            status = (await client.service(name)).status
        except ConnectionFailed as err:
            out.step(f"({err}; retrying)")
            next_poll = loop.time() + POLL_S
            continue
        phase = watch.phase(status)
        if feed is None:
            for event in watch.new_events(status):
                print_event(event)
        if (done := watch.on_status(status)) is not None:
            if feed is not None and not done.ok and not done.last_lines:
                done = await _failure_event(feed, watch, print_event) or done
            return done
        if loop.time() - last_news >= QUIET_NOTE_S:
            out.step(f"... {phase}")
            last_news = loop.time()
        next_poll = loop.time() + (SAFETY_POLL_S if feed else POLL_S)


async def _failure_event(
    feed: Feed[Event], watch: DeployWatch, print_event: Callable[[Event], None]
) -> Outcome | None:
    """The status said FAILED: give the event (which has the last lines) a moment to arrive."""
    loop = asyncio.get_running_loop()
    until = loop.time() + DETAILS_WAIT_S
    while (left := until - loop.time()) > 0:
        try:
            events = await feed.receive(timeout=left)
        except ServicectlError:
            return None
        for event in events:
            if watch.is_new(event):
                print_event(event)
            watch.failure_details(event)
        if watch.outcome is not None and watch.outcome.last_lines:
            return watch.outcome
    return None


def failure_text(result: UpdateResult, outcome: Outcome, last: list[str]) -> str:
    """The error of a deploy that did not end serving: why, the task's output, what to do."""
    name = result.name
    if outcome.superseded_by:
        return (
            f"revision {outcome.revision} of {name} was superseded by revision "
            f"{outcome.superseded_by} before it finished deploying; see `servicectl status {name}`"
        )
    reason = without_api_advice(outcome.reason)
    lines = [f"deployment of revision {outcome.revision} of {name} failed: {reason}"]
    if last:
        lines.append("  last output of the failed task:")
        lines += [f"    {line}" for line in last]
    if (tag := missing_image_tag(outcome.reason)) is not None:
        tag = result.task_definition.container_tag or tag
        lines.append(f"  push the image first: {push_hint(name, tag)}")
    if outcome.rolled_back_to:
        lines.append(
            f"  revision {outcome.rolled_back_to} keeps serving at {result.url}; make its "
            f"definition the newest again with `servicectl rollback {name}`"
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

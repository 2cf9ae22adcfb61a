"""`servicectl health` and `scale`: settings changed with `PATCH /services/<name>`, no new revision.

`health` lays the options given over the current health check (the status
view's `target_health`) and prints the check the service has afterwards.
`scale` sets the task count and follows the status view until that many
tasks run, printing tasks as they start and stop; task events only make it
look sooner. The pure parts are `servicectl.health` and `servicectl.scale`.
"""

from __future__ import annotations

import asyncio
import re

from servicectl import health as checks
from servicectl import jsonout
from servicectl.client import Client
from servicectl.context import CommandError, Context
from servicectl.deploying import POLL_S, QUIET_NOTE_S, live_events, service_or_hint
from servicectl.errors import BadRequest, ConnectionFailed
from servicectl.feeds import Feed
from servicectl.models import Event, ServiceView
from servicectl.progress import Progress
from servicectl.rejections import explain_health_check
from servicectl.scale import ScaleWatch


async def health(
    ctx: Context,
    name: str,
    path: str | None,
    codes: str | None,
    interval: int | None,
    *,
    as_json: bool = False,
) -> int:
    """Change the given parts of the health check (none given: just show it)."""
    async with ctx.client() as client:
        view = await service_or_hint(client, name)
        given = {
            field: flag
            for field, flag, value in (
                ("rel_path", "--path", path),
                ("status_codes", "--codes", codes),
                ("interval", "--interval", interval),
            )
            if value is not None
        }
        if given:
            now = checks.current(view.status.target_health, view.context_root)
            wanted = checks.merged(now, path, codes, interval)
            try:
                view = await client.patch_service(name, checks.patch_body(wanted))
            except BadRequest as err:
                raise BadRequest(err.status, explain_health_check(err.message, given)) from None
    th = view.status.target_health
    if as_json:
        rel = checks.rel_path(th.health_check_path, view.context_root)
        ctx.say(jsonout.document(jsonout.health_record(name, th, rel)))
    else:
        ctx.say(f"{name}: {checks.describe(th)}")
    return 0


async def scale(
    ctx: Context, name: str, count: int, *, detach: bool, timeout: float, as_json: bool = False
) -> int:
    """Set the number of tasks; unless `detach`, wait until that many run."""
    out = Progress(ctx, name, as_json=as_json)
    async with ctx.client() as client:
        before = await service_or_hint(client, name)
        feed = None if detach else await live_events(out, client, name)
        try:
            try:
                view = await client.patch_service(name, {"count": count})
            except BadRequest as err:
                raise BadRequest(err.status, re.sub(r"^count\b", "N", err.message)) from None
            st = view.status
            out.update(
                {
                    "kind": "update",
                    "action": "scale",
                    "name": name,
                    "count": count,
                    "count_before": before.status.count_desired,
                    "url": view.url,
                },
                f"Scaling {name} from {before.status.count_desired} to {count} tasks",
            )
            if detach or st.revision == 0:
                if st.revision == 0:
                    out.note(f"{name} has not been deployed yet: its first deploy starts {count}")
                else:
                    out.note(f"Sent; follow it with `servicectl status {name}`")
                out.result(
                    jsonout.result_record(
                        name,
                        "SENT",
                        ok=True,
                        url=view.url,
                        count=count,
                        count_running=st.count_running,
                    ),
                    view.url,
                )
                return 0
            return await _follow_scale(out, client, view, before, count, feed, timeout)
        finally:
            if feed is not None:
                await feed.close()


async def _follow_scale(
    out: Progress,
    client: Client,
    view: ServiceView,
    before: ServiceView,
    count: int,
    feed: Feed[Event] | None,
    timeout: float,
) -> int:
    name = view.name
    watch = ScaleWatch(count, seen=before.status.tasks)
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    last_news = started
    status = view.status
    while True:
        for task in watch.changed(status):
            out.task(task)
            last_news = loop.time()
        if watch.done(status):
            took = loop.time() - started
            out.note(f"{name} runs {count} task{'' if count == 1 else 's'} ({took:.1f} s)")
            out.result(
                jsonout.result_record(
                    name,
                    "COMPLETED",
                    ok=True,
                    url=view.url,
                    count=count,
                    count_running=status.count_running,
                ),
                view.url,
            )
            return 0
        now = loop.time()
        if now >= deadline:
            message = (
                f"{name} has {watch.phase(status)} after {timeout:g} s; it goes on in "
                f"the background: see `servicectl status {name}`"
            )
            out.result(
                jsonout.result_record(
                    name,
                    "TIMEOUT",
                    ok=False,
                    url=view.url,
                    reason=message,
                    count=count,
                    count_running=status.count_running,
                ),
                None,
            )
            raise CommandError(message)
        if now - last_news >= QUIET_NOTE_S:
            out.step(f"... {watch.phase(status)}")
            last_news = now
        feed = await _wait_for_news(out, feed, min(POLL_S, deadline - now))
        try:
            status = (await client.service(name)).status
        except ConnectionFailed as err:
            out.step(f"({err}; retrying)")


async def _wait_for_news(
    out: Progress, feed: Feed[Event] | None, wait: float
) -> Feed[Event] | None:
    """Sleep up to `wait` seconds, less when an event comes (then the status is worth a look)."""
    if feed is None:
        await asyncio.sleep(max(0.0, wait))
        return None
    try:
        await feed.receive(timeout=max(0.05, wait))
    except ConnectionFailed:
        out.step("(live events interrupted: polling the status instead)")
        await feed.close()
        return None
    return feed

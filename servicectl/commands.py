"""The CLI's commands other than deploy and rollback: each one async function of parsed options.

A command talks to the API through `Client`, prints through the `Context`
and returns the exit code; failures are raised (`CommandError`, or the
client's `ServicectlError`) and turned into `servicectl: <message>` by
`servicectl.cli`. Text layout lives in `servicectl.render`.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from servicectl import config, render
from servicectl.client import Client
from servicectl.context import CommandError, Context, UsageError
from servicectl.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    FollowUnavailable,
    NotFound,
    ServicectlError,
)
from servicectl.feeds import Feed
from servicectl.following import print_follow
from servicectl.models import Event, HealthCheck, LogLine, ServiceView
from servicectl.pushing import Docker, Source, find_docker, push
from servicectl.watch import EventKey, event_key

EVENTS_POLL_S = 2.0
RESUME_LINES = 500  # backlog asked for when a follow reconnects
RESUME_EVENTS = 200


# ---------------------------------------------------------------- login
def _prompt(ctx: Context, given: str | None, label: str) -> str:
    if given:
        return given
    answer = ctx.ask(f"{label}: ")
    if not answer:
        raise UsageError(f"no {label.lower()} given")
    return answer.strip()


def _password(ctx: Context, from_stdin: bool) -> str:
    if from_stdin:
        line = ctx.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: nothing to read on standard input")
        return line.rstrip("\r\n")
    if ctx.stdin.isatty():
        try:
            return getpass.getpass("Password: ", stream=ctx.stderr)
        except EOFError:
            raise UsageError("no password given") from None
    answer = ctx.ask("Password: ")
    if answer is None:
        raise UsageError("no password given")
    return answer


async def login(
    ctx: Context, api: str | None, user: str | None, project: str | None, password_stdin: bool
) -> int:
    url = (api or config.default_api(ctx.env)).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--api must be an http:// or https:// URL, got {url!r}")
    username = _prompt(ctx, user, "User")
    project_name = _prompt(ctx, project, "Project")
    password = _password(ctx, password_stdin)
    async with Client(url) as client:
        try:
            token = await client.login(username, project_name, password)
        except NotFound as err:
            raise CommandError(
                f"{url} does not look like a servicectl API ({err}); check --api"
            ) from None
    path = ctx.config_file
    config.save(
        path,
        config.Login(
            api=url,
            token=token.token,
            username=token.username or username,
            project=token.project or project_name,
            expires_at=token.expires_at,
        ),
    )
    until = f" until {render.short_time(token.expires_at)} UTC" if token.expires_at else ""
    ctx.say(f"Logged in to {url} as {username} in project {project_name}{until}.")
    ctx.progress(f"(token stored in {path})")
    return 0


async def logout(ctx: Context) -> int:
    stored = ctx.stored_login()
    if stored is None:
        ctx.say("Not logged in.")
        return 0
    problem = ""
    async with Client(stored.api, stored.token) as client:
        try:
            await client.revoke_token()
        except AuthenticationFailed:
            pass  # expired or revoked already: nothing left to revoke
        except ServicectlError as err:
            problem = str(err)
    config.remove(ctx.config_file)
    if problem:
        raise CommandError(f"removed the stored login, but could not revoke the token: {problem}")
    ctx.say(f"Logged out of {stored.api}; the token is revoked.")
    return 0


async def whoami(ctx: Context) -> int:
    async with ctx.client() as client:
        info = await client.token_info()
        ctx.say(f"{info.username} in project {info.project} at {client.api_url}")
        if info.expires_at:
            ctx.say(f"token valid until {render.short_time(info.expires_at)} UTC")
    return 0


# ---------------------------------------------------------------- services
async def ls(ctx: Context, as_json: bool) -> int:
    async with ctx.client() as client:
        services = await client.list_services()
        if as_json:
            ctx.say(json.dumps([_builtins(s) for s in services], indent=2))
            return 0
        if not services:
            ctx.say("No services yet: create one with `servicectl create NAME`.")
            return 0

        async def view(name: str) -> ServiceView | None:
            try:
                return await client.service(name)
            except NotFound:
                return None

        found = await asyncio.gather(*(view(s.name) for s in services))
        views = {v.name: v for v in found if v is not None}
        ctx.say(render.services_table(services, views))
    return 0


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


async def create(
    ctx: Context, name: str, path: str | None, codes: str | None, interval: int | None
) -> int:
    hc = None
    if path is not None or codes is not None or interval is not None:
        d = HealthCheck()
        hc = HealthCheck(
            rel_path=path if path is not None else d.rel_path,
            status_codes=codes if codes is not None else d.status_codes,
            interval=interval if interval is not None else d.interval,
        )
    async with ctx.client() as client:
        created = await client.create_service(name, hc)
    ctx.say(f"Created service {created.name}; once deployed it is served at {created.url}")
    ctx.progress(
        f"Next: servicectl push {created.name} DIR --tag v1 && "
        f"servicectl deploy {created.name} --tag v1"
    )
    return 0


async def delete(ctx: Context, name: str, yes: bool) -> int:
    if not yes:
        answer = ctx.ask(
            f"Delete service {name} with its containers, route, images and logs? "
            f"Type its name to confirm: "
        )
        if answer is None:
            raise CommandError("no confirmation given; pass --yes to delete without asking")
        if answer.strip() != name:
            raise CommandError(f"not deleted: {answer.strip()!r} is not {name!r}")
    async with ctx.client() as client:
        result = await client.delete_service(name)
    if result.status == "DRAINING":
        ctx.say(f"Deleting {name}: it is draining; the rest happens in the background.")
    else:
        ctx.say(f"Deleted {name}.")
    return 0


async def status(ctx: Context, name: str, as_json: bool, events: int) -> int:
    async with ctx.client() as client:
        if as_json:
            ctx.say(json.dumps(await client.service_json(name), indent=2))
        else:
            ctx.say(render.status_report(await client.service(name), events))
    return 0


async def revisions(ctx: Context, name: str, as_json: bool, show_env: bool) -> int:
    async with ctx.client() as client:
        revs = await client.revisions(name)
        if as_json:
            ctx.say(json.dumps(_builtins(revs), indent=2))
            return 0
        if not revs.revisions:
            ctx.say(f"{name} has no revisions yet: deploy it with `servicectl deploy {name}`.")
            return 0
        serving = (await client.service(name)).status.serving_revision
        ctx.say(render.revisions_table(revs, serving, show_env))
    return 0


# ---------------------------------------------------------------- events and logs
def _missed_note(ctx: Context, what: str) -> Callable[[int], None]:
    def note(count: int) -> None:
        ctx.progress(f"({count} {what} skipped: this terminal read them too slowly)")

    return note


async def events(ctx: Context, name: str, count: int, follow: bool) -> int:
    async with ctx.client() as client:
        if follow:

            def open_feed(tail: int) -> Awaitable[Feed[Event]]:
                return client.events_feed(name, tail, _missed_note(ctx, "events"))

            try:
                return await print_follow(
                    ctx, open_feed, count, RESUME_EVENTS, event_key, render.event_line
                )
            except FollowUnavailable:
                pass  # an older API: poll its status view instead
        history = (await client.service(name)).status.events
        for event in reversed(history[:count]):
            ctx.say(render.event_line(event))
        if follow:
            await _poll_events(ctx, client, name, {event_key(e) for e in history})
    return 0


async def _poll_events(ctx: Context, client: Client, name: str, seen: set[EventKey]) -> None:
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
            ctx.say(render.event_line(event))


async def logs(ctx: Context, name: str, tail: int, streams: int, follow: bool) -> int:
    async with ctx.client() as client:
        if not follow:
            answer = await client.logs(name, tail, streams)
            for line in render.log_streams(answer.logs):
                ctx.say(line)
            return 0

        def open_feed(backlog: int) -> Awaitable[Feed[LogLine]]:
            return client.logs_feed(name, backlog, _missed_note(ctx, "lines"))

        try:
            return await print_follow(
                ctx,
                open_feed,
                tail,
                RESUME_LINES,
                lambda x: (x.source, x.n, x.time, x.text),
                lambda x: render.log_line(x.time, x.source, x.text),
            )
        except FollowUnavailable as err:
            raise CommandError(str(err)) from None


# ---------------------------------------------------------------- push
def push_source(directory: str | None, image: str | None, dockerfile: str | None) -> Source:
    """What to push, checked before anything is sent: a build context or a local image."""
    if (directory is None) == (image is None):
        raise UsageError("give either a build context DIR or --image IMAGE (not both)")
    if directory is None:
        if dockerfile is not None:
            raise UsageError("--file needs a build context DIR")
        return Source(image=image)
    context = Path(directory)
    if not context.is_dir():
        raise UsageError(f"{directory} is not a directory (a docker build context)")
    file = Path(dockerfile) if dockerfile else context / "Dockerfile"
    if not file.is_file():
        raise UsageError(f"no Dockerfile at {file}")
    return Source(context=context, dockerfile=Path(dockerfile) if dockerfile else None)


async def push_image(ctx: Context, name: str, source: Source, tag: str) -> int:
    docker = Docker(find_docker(), ctx.progress)
    async with ctx.client() as client:
        creds = await client.docker_credentials(name)
    pushed = await push(docker, creds, source, tag, lambda text: ctx.progress(f"==> {text}"))
    digest = f" ({pushed.digest})" if pushed.digest else ""
    ctx.progress(f"==> Pushed{digest}; deploy it with `servicectl deploy {name} --tag {tag}`")
    ctx.say(pushed.reference)
    return 0

"""The CLI's plain commands (login, services, status, logs, events, push): one async function each.

Deploys and rollbacks are in `servicectl.deploying`, `env` in
`servicectl.environment`, `health` and `scale` in `servicectl.patching`.

A command talks to the API through `Client`, prints through the `Context`
and returns the exit code; failures are raised (`CommandError`, or the
client's `ServicectlError`) and turned into `servicectl: <message>` by
`servicectl.cli`. Text layout lives in `servicectl.render`.
"""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

from servicectl import config, jsonout, render
from servicectl.client import Client
from servicectl.context import CommandError, Context, UsageError
from servicectl.errors import (
    AuthenticationFailed,
    BadRequest,
    NotFound,
    ServicectlError,
)
from servicectl.models import HealthCheck, ServiceView
from servicectl.pushing import Docker, Source, find_docker, push
from servicectl.rejections import explain_health_check


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


async def whoami(ctx: Context, as_json: bool = False) -> int:
    async with ctx.client() as client:
        info = await client.token_info()
        if as_json:
            ctx.say(jsonout.document(jsonout.whoami_record(info, client.api_url)))
            return 0
        ctx.say(f"{info.username} in project {info.project} at {client.api_url}")
        if info.expires_at:
            ctx.say(f"token valid until {render.short_time(info.expires_at)} UTC")
    return 0


async def nats_info(ctx: Context, as_json: bool) -> int:
    """Ready-to-use details for following the project on NATS (nats-py, the nats CLI)."""
    async with ctx.client() as client:
        info = await client.nats_details()
        token = client.token or ""
    if as_json:
        ctx.say(jsonout.document({**jsonout.builtins(info), "token": token}))
        return 0
    ctx.say(f"NATS_URL={info.url}")
    ctx.say(f"NATS_TOKEN={token}")
    ctx.say(f"NATS_INBOX_PREFIX={info.inbox_prefix}")
    for kind, subject in info.live.items():
        history = info.history.get(kind)
        ctx.say(f"# {kind}: live on {subject}")
        if history is not None:
            ctx.say(
                f"#   stored: pull consumer {history.consumer} of stream {history.stream} "
                f"({history.filter})"
            )
    ctx.say(f"# valid until {render.short_time(info.expires_at)} UTC (the session token's life)")
    return 0


# ---------------------------------------------------------------- services
async def ls(ctx: Context, as_json: bool) -> int:
    async with ctx.client() as client:
        services = await client.list_services()

        async def view(name: str) -> ServiceView | None:
            try:
                return await client.service(name)
            except NotFound:
                return None

        found = await asyncio.gather(*(view(s.name) for s in services))
    views = {v.name: v for v in found if v is not None}
    if as_json:
        entries = [jsonout.service_entry(s, views.get(s.name)) for s in services]
        ctx.say(jsonout.document(entries))
    elif not services:
        ctx.say("No services yet: create one with `servicectl create NAME`.")
    else:
        ctx.say(render.services_table(services, views))
    return 0


CREATE_FLAGS = {
    "rel_path": "--health-path",
    "status_codes": "--health-codes",
    "interval": "--health-interval",
}


async def create(
    ctx: Context,
    name: str,
    path: str | None,
    codes: str | None,
    interval: int | None,
    as_json: bool = False,
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
        try:
            created = await client.create_service(name, hc)
        except BadRequest as err:
            raise BadRequest(err.status, explain_health_check(err.message, CREATE_FLAGS)) from None
    if as_json:
        ctx.say(jsonout.document({"name": created.name, "url": created.url}))
        return 0
    ctx.say(f"Created service {created.name}; once deployed it is served at {created.url}")
    ctx.progress(
        f"Next: servicectl push {created.name} DIR --tag v1 && "
        f"servicectl deploy {created.name} --tag v1"
    )
    return 0


async def delete(ctx: Context, name: str, yes: bool, as_json: bool = False) -> int:
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
    if as_json:
        ctx.say(jsonout.document({"name": name, "status": result.status or "DELETED"}))
    elif result.status == "DRAINING":
        ctx.say(f"Deleting {name}: it is draining; the rest happens in the background.")
    else:
        ctx.say(f"Deleted {name}.")
    return 0


async def status(ctx: Context, name: str, as_json: bool, events: int) -> int:
    async with ctx.client() as client:
        if as_json:
            ctx.say(jsonout.document(await client.service_json(name)))
        else:
            ctx.say(render.status_report(await client.service(name), events))
    return 0


async def revisions(ctx: Context, name: str, as_json: bool, show_env: bool) -> int:
    async with ctx.client() as client:
        revs, view = await asyncio.gather(client.revisions(name), client.service(name))
    serving = view.status.serving_revision
    if as_json:
        ctx.say(jsonout.document({**jsonout.builtins(revs), "serving_revision": serving}))
    elif not revs.revisions:
        ctx.say(f"{name} has no revisions yet: deploy it with `servicectl deploy {name}`.")
    else:
        ctx.say(render.revisions_table(revs, serving, show_env))
    return 0


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


async def push_image(
    ctx: Context, name: str, source: Source, tag: str, as_json: bool = False
) -> int:
    docker = Docker(find_docker(), ctx.progress)
    async with ctx.client() as client:
        creds = await client.docker_credentials(name)
    pushed = await push(docker, creds, source, tag, lambda text: ctx.progress(f"==> {text}"))
    digest = f" ({pushed.digest})" if pushed.digest else ""
    ctx.progress(f"==> Pushed{digest}; deploy it with `servicectl deploy {name} --tag {tag}`")
    if as_json:
        ctx.say(
            jsonout.document(
                {"name": name, "tag": tag, "reference": pushed.reference, "digest": pushed.digest}
            )
        )
    else:
        ctx.say(pushed.reference)
    return 0

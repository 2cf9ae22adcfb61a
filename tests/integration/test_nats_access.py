"""End users on NATS: their session token opens exactly their own project, and nothing else.

Real nats-server with the platform's generated configuration, the api's auth
callout, and nats-py as a user would use it (`servicectl nats` prints the
details this test reads from `GET /auth/nats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS

from shared import kv, names
from shared.models import TokenRecord
from tests.client import Api, login, make_user, unique
from tests.stack import Stack


@dataclass
class UserConn:
    nc: NATS
    details: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def settle(self) -> list[str]:
        """Errors the server sent for what was done so far (permission violations)."""
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)
        await asyncio.sleep(0.2)
        found = list(self.errors)
        self.errors.clear()  # the connection's error callback appends to this very list
        return found


async def details(api: Api) -> dict[str, Any]:
    r = await asyncio.to_thread(api.get, "/auth/nats")
    assert r.status_code == 200, r.text
    return dict(r.json())


@contextlib.asynccontextmanager
async def connected(stack: Stack, api: Api) -> AsyncIterator[UserConn]:
    info = await details(api)
    errors: list[str] = []
    closed = asyncio.Event()

    async def on_error(err: Exception) -> None:
        errors.append(str(err))

    async def on_closed() -> None:
        closed.set()

    nc = await nats.connect(
        info["url"],
        token=api.token,
        inbox_prefix=info["inbox_prefix"],
        error_cb=on_error,
        closed_cb=on_closed,
        max_reconnect_attempts=2,
        reconnect_time_wait=0.2,
    )
    conn = UserConn(nc, info, errors, closed)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def refused(url: str, **options: Any) -> str:
    errors: list[str] = []

    async def on_error(err: Exception) -> None:
        errors.append(str(err))

    with pytest.raises(Exception):  # noqa: B017 (nats-py raises its own NoServersError)
        nc = await nats.connect(
            url, allow_reconnect=False, connect_timeout=2, error_cb=on_error, **options
        )
        await nc.close()
    return " ".join(errors)


async def test_anonymous_and_bad_tokens_are_refused(stack: Stack, api: Api) -> None:
    url = stack.settings.nats_url
    assert "authorization violation" in (await refused(url)).lower()
    assert "authorization violation" in (await refused(url, token="sct_" + "x" * 43)).lower()
    assert "authorization violation" in (await refused(url, token="not-a-token")).lower()
    assert "authorization violation" in (await refused(url, user="api", password="guess")).lower()


def _service(api: Api) -> str:
    name = unique("n")
    r = api.post("/services", json={"name": name})
    assert r.status_code == 201, r.text
    return name


async def test_a_user_reads_their_project_live_and_stored_and_nothing_else(
    stack: Stack, api: Api, other_api: Api, project: str
) -> None:
    first = await asyncio.to_thread(_service, api)
    other_project = json.loads(
        (await asyncio.to_thread(other_api.get, "/auth/tokens/current")).text
    )["project"]
    async with connected(stack, api) as me:
        info = me.details
        assert info["live"]["events"] == f"servicectl.events.{project}.>"
        got: list[str] = []

        async def on_event(msg: Any) -> None:
            got.append(msg.subject)

        await me.nc.subscribe(info["live"]["events"], cb=on_event)
        await me.nc.subscribe(info["live"]["logs"], cb=on_event)
        assert await me.settle() == []
        second = await asyncio.to_thread(_service, api)
        await asyncio.to_thread(_service, other_api)  # must not arrive
        for _ in range(100):
            if f"servicectl.events.{project}.{second}" in got:
                break
            await asyncio.sleep(0.05)
        assert f"servicectl.events.{project}.{second}" in got
        assert all(s.startswith(f"servicectl.events.{project}.") for s in got)

        # stored history: the session's pull consumer, and direct gets of one subject
        js = me.nc.jetstream(timeout=5)
        history = info["history"]["events"]
        sub = await js.pull_subscribe_bind(history["consumer"], stream=history["stream"])
        msgs = await sub.fetch(10, timeout=5)
        stored = [json.loads(m.data) for m in msgs]
        assert {(e["type"], e["service"]) for e in stored} >= {
            ("service.created", first),
            ("service.created", second),
        }
        assert {e["project"] for e in stored} == {project}
        last = await js.get_msg(
            names.STREAM_EVENTS, subject=names.events_subject(project, first), direct=True
        )
        assert json.loads(last.data or b"{}")["service"] == first
        assert await me.settle() == []

        # everything else is refused
        await me.nc.subscribe(names.events_of_project(other_project), cb=on_event)
        await me.nc.subscribe("servicectl.>", cb=on_event)
        await me.nc.subscribe("_INBOX.>", cb=on_event)
        await me.nc.subscribe(names.kv_changes(names.BUCKET_TOKENS), cb=on_event)
        errors = await me.settle()
        assert len([e for e in errors if "permissions violation" in e.lower()]) == 4, errors
        for subject in (
            names.events_subject(project, first),  # a forged deployment.completed
            names.logs_subject(project, first, "t1"),
            names.kv_subject(names.BUCKET_TOKENS, "forged"),
            names.kv_subject(names.BUCKET_REVISIONS, f"{project}.{first}.1"),
        ):
            await me.nc.publish(subject, b'{"type": "deployment.completed"}')
        errors = await me.settle()
        assert len([e for e in errors if "permissions violation" in e.lower()]) == 4, errors
        for api_subject in (
            "$JS.API.STREAM.NAMES",
            "$JS.API.STREAM.INFO.SERVICECTL_EVENTS",
            f"$JS.API.CONSUMER.CREATE.{names.STREAM_EVENTS}",
            f"$JS.API.DIRECT.GET.{names.STREAM_EVENTS}",
            f"$JS.API.DIRECT.GET.KV_{names.BUCKET_TOKENS}.$KV.{names.BUCKET_TOKENS}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{names.STREAM_EVENTS}.someone-elses",
        ):
            with pytest.raises((nats.errors.Error, TimeoutError)):
                await me.nc.request(api_subject, b'{"seq": 1}', timeout=0.5)
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await me.nc.request(
                f"$JS.API.DIRECT.GET.{names.STREAM_EVENTS}.{names.events_of_project(other_project)}",
                b"",
                timeout=0.5,
            )
        # A JetStream reply subject is not permission-checked: in the platform's account
        # this direct get would store the answer as a token. The user's account keeps it.
        await me.nc.publish(
            f"$JS.API.DIRECT.GET.{names.STREAM_EVENTS}.{names.events_subject(project, first)}",
            b"",
            reply=names.kv_subject(names.BUCKET_TOKENS, "forged"),
        )
        await me.settle()
    async with stack.bus() as ops:
        assert await kv.get(ops.kv.tokens, "forged", TokenRecord) is None
        await asyncio.sleep(0)
    assert f"servicectl.events.{other_project}" not in " ".join(got)


async def test_the_connection_ends_when_the_token_is_revoked(stack: Stack, api: Api) -> None:
    async with connected(stack, api) as me:
        await me.nc.subscribe(me.details["live"]["events"])
        assert await me.settle() == []
        started = time.monotonic()
        r = await asyncio.to_thread(api.delete, "/auth/tokens/current")
        assert r.status_code == 200
        await asyncio.wait_for(me.closed.wait(), 5)
        assert time.monotonic() - started < 1.0
        assert "authorization violation" in " ".join(me.errors).lower()


async def test_removing_a_user_revokes_every_token_within_a_second(stack: Stack) -> None:
    project = unique("rv")
    user, pw = await asyncio.to_thread(make_user, stack, project)
    tokens = [await asyncio.to_thread(login, stack, user, pw, project) for _ in range(2)]
    apis = [Api(stack, t) for t in tokens]
    async with connected(stack, apis[0]) as me:
        await me.nc.subscribe(me.details["live"]["logs"])
        assert await me.settle() == []
        proc = await asyncio.create_subprocess_exec(
            str(stack.procs["api"].argv[0]),
            "-m",
            "services.api.admin",
            "remove-user",
            user,
            env=stack.env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0 and b"2 session tokens revoked" in out, out
        removed = time.monotonic()
        await asyncio.wait_for(me.closed.wait(), 5)
        for a in apis:
            r = await asyncio.to_thread(a.get, "/services")
            assert r.status_code == 403
        assert time.monotonic() - removed < 1.0

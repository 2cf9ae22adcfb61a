"""A PUT stores its revision in one step: NATS killed between the steps never loses or forks one.

The api runs in this process (`create_app`) against a nats-server of the
module's own, which the tests SIGKILL at chosen points of an update: before
the record is written, right after it landed, and after it landed but with
the answer lost. Whatever the client was told, what is stored stays
consistent, and a retry with the same Idempotency-Key answers the revision
that was stored instead of making another.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api.admin import add_user
from services.api.app import create_app
from services.api.store import Store
from shared.bus import BusError
from tests.stack import NatsServer

DEFINITION = {
    "container-tag": "v1",
    "memory-reservation": 16,
    "memory-limit": 32,
    "container-port": 8080,
    "environment": [],
}


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[TestClient[Any, Any]]:
    settings = nats_server.settings  # its data dir holds the NATS identities' secrets
    await add_user(settings, "alice", "atomic", "correct horse")
    async with TestClient(TestServer(create_app(settings))) as c:
        r = await c.post(
            "/auth/tokens",
            json={"username": "alice", "password": "correct horse", "project": "atomic"},
        )
        assert r.status == 201, await r.text()
        token = (await r.json())["token"]
        c.session.headers["X-Auth-Token"] = token
        yield c


async def nats_back(nats: NatsServer, client: TestClient[Any, Any]) -> None:
    """Start the killed server again and wait until the api answers with NATS behind it."""
    await asyncio.to_thread(nats.proc.start)
    for _ in range(200):
        r = await client.get("/healthz")
        if r.status == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the api did not reconnect to NATS")


def kill_around(
    monkeypatch: pytest.MonkeyPatch,
    nats: NatsServer,
    *,
    before: bool = False,
    lose_answer: bool = False,
) -> None:
    """Kill NATS around the next write of the service record (once)."""
    real: Callable[..., Awaitable[int]] = Store.update_service
    fired = False

    async def update_service(self: Store, record: Any, last: int) -> int:
        nonlocal fired
        if fired or record.definition is None:
            return await real(self, record, last)
        fired = True
        if before:
            nats.proc.kill()
            return await real(self, record, last)
        rev = await real(self, record, last)
        nats.proc.kill()
        if lose_answer:
            raise BusError("NATS: the acknowledgement of the write was lost")
        return rev

    monkeypatch.setattr(Store, "update_service", update_service)


async def put(client: TestClient[Any, Any], name: str, key: str, tag: str = "v1") -> Any:
    return await client.put(
        f"/services/{name}",
        json={**DEFINITION, "container-tag": tag},
        headers={"Idempotency-Key": key},
    )


async def revisions(client: TestClient[Any, Any], name: str) -> tuple[int, list[int]]:
    r = await client.get(f"/services/{name}/revisions")
    assert r.status == 200, await r.text()
    body = await r.json()
    return body["revision"], [rev["revision"] for rev in body["revisions"]]


async def created(client: TestClient[Any, Any]) -> str:
    name = "s" + uuid.uuid4().hex[:6]
    r = await client.post("/services", json={"name": name})
    assert r.status == 201, await r.text()
    return name


async def test_nats_dies_before_the_record_write_nothing_is_stored_and_a_retry_stores_once(
    client: TestClient[Any, Any], nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = await created(client)
    assert (await put(client, name, "first")).status == 200
    kill_around(monkeypatch, nats_server, before=True)
    r = await put(client, name, "second", "v2")
    assert r.status == 503, await r.text()
    await nats_back(nats_server, client)
    assert await revisions(client, name) == (1, [1])
    r = await put(client, name, "second", "v2")
    assert r.status == 200 and (await r.json())["revision"] == 2
    again = await put(client, name, "second", "v2")
    assert again.status == 200 and (await again.json())["revision"] == 2
    assert await revisions(client, name) == (2, [1, 2])


async def test_nats_dies_right_after_the_record_write_the_revision_is_kept(
    client: TestClient[Any, Any], nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = await created(client)
    assert (await put(client, name, "a1")).status == 200
    kill_around(monkeypatch, nats_server)
    r = await put(client, name, "a2", "v2")
    # stored: the answer says so, though the copy for history and the event could not follow
    assert r.status == 200, await r.text()
    assert (await r.json())["revision"] == 2
    await nats_back(nats_server, client)
    assert await revisions(client, name) == (2, [1, 2])
    # the next update stores revision 2's copy before replacing it: a rollback to it works
    assert (await put(client, name, "a3", "v3")).status == 200
    r = await client.post(f"/services/{name}/rollback", json={"revision": 2})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["revision"] == 4 and body["task_definition"]["rolled_back_from"] == 2
    assert body["task_definition"]["container_tag"] == "v2"


async def test_a_write_whose_answer_was_lost_is_answered_on_retry_without_a_new_revision(
    client: TestClient[Any, Any], nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = await created(client)
    kill_around(monkeypatch, nats_server, lose_answer=True)
    r = await put(client, name, "lost")
    assert r.status == 503, await r.text()
    await nats_back(nats_server, client)
    r = await put(client, name, "lost")
    assert r.status == 200, await r.text()
    assert (await r.json())["revision"] == 1
    assert await revisions(client, name) == (1, [1])


async def test_a_malformed_idempotency_key_is_refused(client: TestClient[Any, Any]) -> None:
    name = await created(client)
    r = await put(client, name, "not a key!")
    assert r.status == 400
    assert "Idempotency-Key" in (await r.json())["Error"]

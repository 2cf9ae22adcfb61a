"""Websocket follows cost no NATS consumer each, and a project's follows are limited.

Regression: each follow used to make a KV watcher (a JetStream consumer) that
lingered after the socket closed; at ~1000 the server's limit was reached and
other tenants' deploys stalled.
"""

from __future__ import annotations

import asyncio

import aiohttp

from shared import names
from tests.client import Api
from tests.stack import Stack

BATCH = 100


async def consumers(stack: Stack) -> int:
    async with stack.bus() as b:
        total = 0
        for stream in (
            names.STREAM_EVENTS,
            names.STREAM_LOGS,
            names.kv_stream(names.BUCKET_SERVICES),
            names.kv_stream(names.BUCKET_TOKENS),
        ):
            info = await b.js.stream_info(stream)
            total += info.state.consumer_count
        return total


async def open_follows(
    session: aiohttp.ClientSession, url: str, token: str, count: int
) -> list[aiohttp.ClientWebSocketResponse]:
    return list(
        await asyncio.gather(
            *(session.ws_connect(url, headers={"X-Auth-Token": token}) for _ in range(count))
        )
    )


async def test_a_thousand_follows_leave_no_consumers_behind(
    stack: Stack, api: Api, other_api: Api
) -> None:
    assert api.token is not None and other_api.token is not None
    r = await asyncio.to_thread(api.post, "/services", json={"name": "busy"})
    assert r.status_code == 201
    before = await consumers(stack)
    url = f"{stack.api_url}/servicectl-1/services/busy/events/follow"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for _ in range(1000 // BATCH):
            sockets = await open_follows(session, url, api.token, BATCH)
            first = await sockets[0].receive_json(timeout=10)
            assert first == {"type": "live"}
            during = await consumers(stack)
            assert during == before, "a follow made NATS consumers"
            other = await asyncio.to_thread(other_api.get, "/services")
            assert other.status_code == 200
            await asyncio.gather(*(ws.close() for ws in sockets))
    await asyncio.sleep(0.5)
    assert await consumers(stack) == before


async def test_a_project_may_follow_only_so_much_at_once(stack: Stack, api: Api) -> None:
    assert api.token is not None
    r = await asyncio.to_thread(api.post, "/services", json={"name": "many"})
    assert r.status_code == 201
    limit = stack.settings.max_follows_per_project
    url = f"{stack.api_url}/servicectl-1/services/many/logs/follow"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = await open_follows(session, url, api.token, limit)
        try:
            try:
                extra = await session.ws_connect(url, headers={"X-Auth-Token": api.token})
                await extra.close()
                raise AssertionError("one follow more than the limit was accepted")
            except aiohttp.WSServerHandshakeError as err:
                assert err.status == 429
            async with session.get(
                url,
                headers={
                    "X-Auth-Token": api.token,
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version": "13",
                },
            ) as over:
                assert over.status == 429
                assert "the most allowed at once" in (await over.json())["Error"]
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
        await asyncio.sleep(0.3)
        again = await session.ws_connect(url, headers={"X-Auth-Token": api.token})
        await again.close()

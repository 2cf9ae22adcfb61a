"""The gateway on its own: real HAProxy, real NATS, the gateway worker, and routes
written into the routes bucket exactly as the deployer writes them.

Upstreams are small keep-alive HTTP servers in this process (one per port,
answering `<name> <port> <path>`, `/slow` after a while), so that 50 services
cost nothing to start. The stack starts with a pool of 8 slot backends, so the
route churn also grows the pool (a seamless reload) under load.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import requests
from aiohttp import web

from shared import kv
from shared.bus import Bus
from shared.models import GatewayAck, Route
from tests.stack import Stack, free_port, wait_for

SLOTS = 8


class Upstreams:
    """aiohttp servers on their own event loop thread, one per port."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: dict[str, web.AppRunner] = {}
        self.thread.start()

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    def start(self, name: str) -> str:
        """A new upstream; its address "127.0.0.1:PORT"."""
        port = free_port()

        async def answer(request: web.Request) -> web.Response:
            if request.path.endswith("/slow"):
                await asyncio.sleep(float(request.query.get("s", "1.5")))
            if request.path.endswith("/headers"):
                return web.json_response(dict(request.headers))
            return web.Response(text=f"{name} {port} {request.path}")

        async def go() -> None:
            app = web.Application()
            app.router.add_route("GET", "/{tail:.*}", answer)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners[f"127.0.0.1:{port}"] = runner

        self._call(go())
        return f"127.0.0.1:{port}"

    def stop(self, addr: str) -> None:
        runner = self.runners.pop(addr)
        self._call(runner.cleanup())

    def close(self) -> None:
        for addr in list(self.runners):
            self.stop(addr)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    u = Upstreams()
    yield u
    u.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw"), extra_env={"SERVICECTL_GATEWAY_SLOTS": str(SLOTS)})
    try:
        s.start(("nats",))

        async def declare() -> None:  # the operator's connection makes the buckets
            async with s.bus("gateway-test"):
                pass

        asyncio.run(declare())
        s.start(("haproxy", "gateway"))
        yield s
    except BaseException:
        print(s.logs(60))
        raise
    finally:
        s.stop()


@pytest.fixture
async def bus(gw: Stack) -> AsyncIterator[Bus]:
    async with gw.bus("gateway-test") as b:
        yield b


async def put_route(bus: Bus, project: str, service: str, upstreams: list[str]) -> int:
    route = Route(
        project=project, service=service, upstreams=upstreams, revision=1, updated_at="now"
    )
    return await kv.put(bus.kv.routes, f"{project}.{service}", route)


async def wait_ack(
    bus: Bus, project: str, service: str, revision: int, timeout: float = 10
) -> float:
    """Seconds until the gateway acknowledged this KV revision of the route."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        ack = await kv.get(bus.kv.gateway, f"{project}.{service}", GatewayAck)
        if ack is not None and ack.value.route_revision >= revision:
            assert ack.value.drained
            return time.monotonic() - t0
        await asyncio.sleep(0.002)
    raise AssertionError(f"no acknowledgement of {project}.{service} revision {revision}")


async def get(gw: Stack, path: str, timeout: float = 5) -> requests.Response:
    return await asyncio.to_thread(requests.get, gw.gateway_url + path, timeout=timeout)


class Hammer:
    """Keep-alive GETs in a loop on a thread; every answer that is not a 200 is a failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self.stopping.is_set():
            try:
                r = session.get(self.url, timeout=5)
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{r.status_code} {r.text[:80]}")
            except requests.RequestException as err:
                self.failures.append(repr(err))

    def __enter__(self) -> Hammer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)


# ---------------------------------------------------------------- answers
async def test_paths_answers_and_errors(gw: Stack, bus: Bus, upstreams: Upstreams) -> None:
    a = upstreams.start("a")
    await wait_ack(bus, "p1", "web", await put_route(bus, "p1", "web", [a]))
    r = await get(gw, "/p1-web/some/path?x=1")
    assert r.status_code == 200 and r.text == f"a {a.split(':')[1]} /p1-web/some/path"
    assert (await get(gw, "/p1-web")).status_code == 200
    headers = (
        await asyncio.to_thread(
            requests.get,
            gw.gateway_url + "/p1-web/headers",
            headers={"X-Forwarded-For": "6.6.6.6", "Host": "example.org"},
            timeout=5,
        )
    ).json()
    assert headers["X-Forwarded-For"] == "127.0.0.1"  # the client's own is not passed on
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == "example.org"

    for path in ("/p1-webX/", "/p1-we/", "/", "/nothing-here/x"):
        r = await get(gw, path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/json"
        assert "no service" in r.json()["Error"]

    await wait_ack(bus, "p1", "idle", await put_route(bus, "p1", "idle", []))
    r = await get(gw, "/p1-idle/")
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "no healthy task" in r.json()["Error"]

    dead = f"127.0.0.1:{free_port()}"
    await wait_ack(bus, "p1", "dead", await put_route(bus, "p1", "dead", [dead]))
    r = await get(gw, "/p1-dead/")
    assert r.status_code == 502 and "did not answer" in r.json()["Error"]


def test_control_sockets_are_closed_to_other_users(gw: Stack) -> None:
    for path in (gw.settings.haproxy_socket_path, gw.settings.haproxy_master_socket_path):
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, (path, oct(mode))


async def test_round_robin_and_retry_on_another_server(
    gw: Stack, bus: Bus, upstreams: Upstreams
) -> None:
    a, b = upstreams.start("a"), upstreams.start("b")
    await wait_ack(bus, "p2", "rr", await put_route(bus, "p2", "rr", [a, b]))
    seen = {(await get(gw, "/p2-rr/")).text.split()[0] for _ in range(6)}
    assert seen == {"a", "b"}
    dead = f"127.0.0.1:{free_port()}"
    await wait_ack(bus, "p2", "rr", await put_route(bus, "p2", "rr", [a, dead]))
    answers = [await get(gw, "/p2-rr/") for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 6


# ---------------------------------------------------------------- drain and acknowledge
async def test_replace_is_immediate_and_acknowledged_once_drained(
    gw: Stack, bus: Bus, upstreams: Upstreams
) -> None:
    old, new = upstreams.start("old"), upstreams.start("new")
    await wait_ack(bus, "p3", "svc", await put_route(bus, "p3", "svc", [old]))
    slow = asyncio.create_task(get(gw, "/p3-svc/slow?s=1.5"))
    await asyncio.sleep(0.3)  # the slow request is at the old upstream now
    t0 = time.monotonic()
    revision = await put_route(bus, "p3", "svc", [new])
    ack = asyncio.create_task(wait_ack(bus, "p3", "svc", revision))
    while (await get(gw, "/p3-svc/")).text.split()[0] != "new":
        pass
    switched = time.monotonic() - t0
    acked = await ack
    r = await slow
    assert r.status_code == 200 and r.text.startswith("old ")
    # typically 5-15 ms; the bound leaves room for a loaded machine
    assert switched < 0.3, f"new requests reached the new upstream only after {switched:.3f} s"
    # acknowledged only once the request in flight to the old upstream was done
    assert 1.0 < acked < 3.0, acked


# ---------------------------------------------------------------- churn
async def test_50_routes_added_replaced_removed_under_load(
    gw: Stack, bus: Bus, upstreams: Upstreams
) -> None:
    steady = {name: upstreams.start(name) for name in ("s1", "s2")}
    for name, addr in steady.items():
        await wait_ack(bus, "p4", name, await put_route(bus, "p4", name, [addr]))
    hammers = [Hammer(f"{gw.gateway_url}/p4-{name}/") for name in steady for _ in range(2)]
    churn = [f"c{i}" for i in range(50)]
    first = {name: upstreams.start(name) for name in churn}
    second = {name: upstreams.start(name + "-v2") for name in churn}
    for h in hammers:
        h.__enter__()
    try:
        await asyncio.sleep(0.3)
        revisions = {n: await put_route(bus, "p4", n, [first[n]]) for n in churn}
        for n in churn:
            await wait_ack(bus, "p4", n, revisions[n], timeout=20)
        assert (await get(gw, "/p4-c49/")).text.startswith("c49 ")
        revisions = {n: await put_route(bus, "p4", n, [second[n]]) for n in churn}
        for n in churn:
            await wait_ack(bus, "p4", n, revisions[n], timeout=20)
        assert (await get(gw, "/p4-c7/")).text.startswith("c7-v2 ")
        for n in churn:
            await kv.purge(bus.kv.routes, f"p4.{n}")
        for n in churn[::10]:
            await _wait_status(gw, f"/p4-{n}/", 404)
        await asyncio.sleep(0.3)
    finally:
        for h in hammers:
            h.__exit__()
    failures = [f for h in hammers for f in h.failures]
    assert failures == [], failures[:5]
    assert sum(h.ok for h in hammers) > 200
    config = gw.settings.haproxy_config_path.read_text()
    assert config.count("\nbackend slot") > SLOTS  # the pool grew by a reload meanwhile
    for addr in [*first.values(), *second.values()]:
        upstreams.stop(addr)


async def _wait_status(gw: Stack, path: str, status: int, timeout: float = 5) -> None:
    t0 = time.monotonic()
    while (await get(gw, path)).status_code != status:
        assert time.monotonic() - t0 < timeout, f"{path} never answered {status}"
        await asyncio.sleep(0.01)


async def test_reload_finishes_requests_and_holds_back_acknowledgements(
    gw: Stack, bus: Bus, upstreams: Upstreams
) -> None:
    """A replace while the pool grows: the request in flight in the old worker ends well,
    and the replace is acknowledged only once that worker is done with the old upstream."""
    old, new = upstreams.start("old"), upstreams.start("new")
    await wait_ack(bus, "p6", "svc", await put_route(bus, "p6", "svc", [old]))
    slots = gw.settings.haproxy_config_path.read_text().count("\nbackend slot")
    slow = asyncio.create_task(get(gw, "/p6-svc/slow?s=2"))
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    revision = await put_route(bus, "p6", "svc", [new])
    for i in range(slots):  # more services than the pool has slots: a reload
        await put_route(bus, "p6", f"idle{i}", [])
    acked = await wait_ack(bus, "p6", "svc", revision)
    r = await slow
    done = time.monotonic() - t0
    assert r.status_code == 200 and r.text.startswith("old ")
    assert (await get(gw, "/p6-svc/")).text.startswith("new ")
    assert gw.settings.haproxy_config_path.read_text().count("\nbackend slot") > slots
    assert acked >= done - 0.2, (acked, done)
    for i in range(slots):
        await kv.purge(bus.kv.routes, f"p6.idle{i}")


# ---------------------------------------------------------------- restarts
async def test_haproxy_killed_and_restarted_gets_every_route_back(
    gw: Stack, bus: Bus, upstreams: Upstreams
) -> None:
    a, b, c = upstreams.start("a"), upstreams.start("b"), upstreams.start("c")
    await wait_ack(bus, "p5", "one", await put_route(bus, "p5", "one", [a]))
    await wait_ack(bus, "p5", "two", await put_route(bus, "p5", "two", [b]))
    gw.procs["haproxy"].kill()
    # changed while HAProxy is down: a replaced upstream and a new service
    two = await put_route(bus, "p5", "two", [c])
    three = await put_route(bus, "p5", "three", [a])
    await asyncio.sleep(0.5)
    await asyncio.to_thread(gw.procs["haproxy"].start)
    t0 = time.monotonic()
    want = {"/p5-one/": "a", "/p5-two/": "c", "/p5-three/": "a"}
    while True:
        got = {path: (await get(gw, path)).text.split(" ")[0] for path in want}
        if got == want:
            break
        assert time.monotonic() - t0 < 1.0, got
    back = time.monotonic() - t0
    await wait_ack(bus, "p5", "two", two)
    await wait_ack(bus, "p5", "three", three)
    assert back < 1.0


def test_gateway_restart_changes_nothing_for_users(gw: Stack) -> None:
    before = requests.get(gw.gateway_url + "/p5-one/", timeout=5)
    gw.procs["gateway"].kill()
    assert requests.get(gw.gateway_url + "/p5-one/", timeout=5).text == before.text
    gw.procs["gateway"].start()
    wait_for(
        lambda: requests.get(gw.gateway_url + "/p5-one/", timeout=5).text == before.text,
        5,
        "the route after the gateway restart",
    )

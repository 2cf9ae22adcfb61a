"""API under load with 500 services in one project, against the api's own `/healthz`.

500 services are created (not deployed: no containers). Then wrk keeps 20
connections busy (closed loop: each sends its next request when the previous
one answered) for a few seconds each on: `/healthz` (the baseline: the same
process, aiohttp stack and middleware, but no auth and no NATS read),
`GET /services` and `GET /services/<name>` (a random one of the 500 each time).
The sequence runs twice; requests/s and latencies are averaged over the runs.

Neighbours: another project (its own user and token) deploys a service that
prints 100,000 lines, then 20 clients of that project loop `view=logs` reads
of its last 10,000 lines (the most one view gives) while wrk measures the bench
project's `GET /services` again; compared with the quiet runs above.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp

from bench import clients, wrk
from bench.console import log
from bench.harness import Platform
from bench.report import Row, Target
from services.api.admin import add_user
from tests.client import Api, login
from tests.deploying import definition, push

SERVICES = 500
CONNECTIONS = 20
SECONDS = 4
ROUNDS = 2
NEIGHBOUR = "noisy"
NEIGHBOUR_LINES = 100_000
NEIGHBOUR_TAIL = 10_000  # the most one view gives
NEIGHBOUR_CLIENTS = 20


async def _create_all(p: Platform) -> float:
    headers = {"X-Auth-Token": p.token}
    todo = [f"s{i:03d}" for i in range(SERVICES)]
    started = time.perf_counter()
    async with aiohttp.ClientSession() as client:

        async def worker() -> None:
            while todo:
                name = todo.pop()
                url = f"{p.api.base}/services"
                async with client.post(url, json={"name": name}, headers=headers) as r:
                    if r.status != 201:
                        raise RuntimeError(f"create {name}: {r.status} {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(10)))
        async with client.get(f"{p.api.base}/services", headers=headers) as r:
            count = len(await r.json())
    if count != SERVICES:
        raise RuntimeError(f"GET /services lists {count} services, expected {SERVICES}")
    return time.perf_counter() - started


async def _settle(p: Platform, timeout: float = 15.0) -> None:
    """Wait until the api is idle: a slow run leaves answers queued when wrk stops."""
    deadline = time.monotonic() + timeout
    last = p.cpu_seconds()["api"]
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = p.cpu_seconds()["api"]
        if now - last < 0.02:
            return
        last = now


async def _neighbour(p: Platform, image: str) -> Api:
    """Another project with a service that has printed NEIGHBOUR_LINES lines; its Api."""
    user = f"{NEIGHBOUR}{p.run_id}"
    await add_user(p.stack.settings, user, NEIGHBOUR, "bench password")
    api = Api(p.stack, await asyncio.to_thread(login, p.stack, user, "bench password", NEIGHBOUR))
    r = await asyncio.to_thread(api.post, "/services", json={"name": "flood"})
    if r.status_code != 201:
        raise RuntimeError(f"create {NEIGHBOUR}/flood: {r.status_code} {r.text}")
    config = p.workdir / "docker-noisy"
    config.mkdir(exist_ok=True)
    await asyncio.to_thread(push, api, "flood", image, "v1", config)
    body = definition("v1", {"MODE": "flood", "LINES": str(NEIGHBOUR_LINES)})
    r = await asyncio.to_thread(api.put, "/services/flood", json=body)
    if r.status_code != 200:
        raise RuntimeError(f"update {NEIGHBOUR}/flood: {r.status_code} {r.text}")
    url = f"{p.stack.gateway_url}/{NEIGHBOUR}-flood/"
    async with clients.session() as http:
        await clients.first_ok(http, url, time.perf_counter())
    cid = (await asyncio.to_thread(p.containers, "flood"))[0]
    go = await asyncio.create_subprocess_exec("docker", "exec", cid, "touch", "/tmp/go")
    await go.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = await asyncio.to_thread(api.get, "/services/flood", params={"view": "logs", "tail": 1})
        events = [e for s in r.json().get("logs", []) for e in s["log_events"]]
        if events and events[-1]["message"].strip() == str(NEIGHBOUR_LINES):
            return api
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{NEIGHBOUR}/flood did not print {NEIGHBOUR_LINES} lines in 60 s")


async def _pull_logs(api: Api, stop: asyncio.Event, counts: list[int]) -> None:
    """Loop `view=logs` reads of the neighbour's last lines until `stop`."""
    assert api.token is not None
    url = f"{api.base}/services/flood"
    params = {"view": "logs", "tail": str(NEIGHBOUR_TAIL)}
    async with aiohttp.ClientSession(
        headers={"X-Auth-Token": api.token}, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        while not stop.is_set():
            async with http.get(url, params=params) as r:
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"neighbour's log view: {r.status} {body[:200]!r}")
                counts.append(len(body))


async def run(p: Platform, image: str) -> list[Row]:
    took = await _create_all(p)
    log(f"api: created {SERVICES} services in {took:.1f} s")
    prefix = p.api.base.removeprefix(p.stack.api_url)
    script = wrk.paths_script(p.workdir, [f"{prefix}/services/s{i:03d}" for i in range(SERVICES)])
    headers = {"X-Auth-Token": p.token}
    targets: dict[str, tuple[str, Path | None]] = {
        "healthz": (f"{p.stack.api_url}/healthz", None),
        "list": (f"{p.api.base}/services", None),
        "get": (p.stack.api_url, script),
    }

    def load(name: str, seconds: float) -> wrk.WrkResult:
        url, lua = targets[name]
        return wrk.run(
            url, connections=CONNECTIONS, seconds=seconds, threads=1, headers=headers, script=lua
        )

    for name in targets:  # warm-up
        await asyncio.to_thread(load, name, 1)
        await _settle(p)
    results: dict[str, list[wrk.WrkResult]] = {k: [] for k in targets}
    cpu: dict[str, float] = {k: 0.0 for k in targets}
    for i in range(ROUNDS):
        for name in targets:
            before = p.cpu_seconds()["api"]
            async with p.profiled(f"api-{name}{i + 1}", "api"):
                res = await asyncio.to_thread(load, name, SECONDS)
            await _settle(p)  # queued answers belong to this run, not the next
            cpu[name] += p.cpu_seconds()["api"] - before
            results[name].append(res)
            log(
                f"api round {i + 1}/{ROUNDS} {name}: {res.rps:,.0f} req/s, "
                f"p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms, {res.errors} errors"
            )

    def mean(name: str, attr: str) -> float:
        return statistics.fmean(getattr(r, attr) for r in results[name])

    def cpu_ms(name: str) -> float:
        # every connection had one request in flight when wrk stopped: the api answered it too
        answered = sum(r.requests + CONNECTIONS for r in results[name])
        return cpu[name] * 1000 / answered

    noisy = await _neighbour(p, image)
    stop = asyncio.Event()
    pulled: list[int] = []
    pullers = [
        asyncio.create_task(_pull_logs(noisy, stop, pulled)) for _ in range(NEIGHBOUR_CLIENTS)
    ]
    try:
        await asyncio.sleep(1.0)
        beside: list[wrk.WrkResult] = []
        for i in range(ROUNDS):
            beside.append(await asyncio.to_thread(load, "list", SECONDS))
            res = beside[-1]
            log(
                f"api round {i + 1}/{ROUNDS} list beside {NEIGHBOUR_CLIENTS} log pullers: "
                f"{res.rps:,.0f} req/s, p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms, "
                f"{res.errors} errors; {len(pulled)} log views of "
                f"{statistics.fmean(pulled) / 1e6 if pulled else 0:.2f} MB so far"
            )
    finally:
        stop.set()
        await asyncio.gather(*pullers)
    view_mb = statistics.fmean(pulled) / 1e6 if pulled else 0.0

    errors = sum(r.errors for name in ("list", "get") for r in results[name])
    errors += sum(r.errors for r in beside)
    how = f"wrk, {CONNECTIONS} connections, {ROUNDS}x{SECONDS} s; baseline: the api's /healthz"
    return [
        Row(
            f"api: GET /services req/s at {SERVICES} services ({how})",
            mean("list", "rps"),
            mean("healthz", "rps"),
            "req/s",
            digits=0,
        ),
        Row(
            "api: GET /services p99",
            mean("list", "p99_ms"),
            mean("healthz", "p99_ms"),
            "ms",
            compare="added",
            target=Target("≤ 20 ms", "value", "<=", 20.0),
            digits=1,
        ),
        Row(
            f"api: GET /services p50 while another project pulls {view_mb:.1f} MB log views "
            f"with {NEIGHBOUR_CLIENTS} clients ({len(pulled)} views; vs quiet)",
            statistics.fmean(r.p50_ms for r in beside),
            mean("list", "p50_ms"),
            "ms",
            digits=1,
        ),
        Row(
            "api: GET /services p99 beside that neighbour (vs quiet)",
            statistics.fmean(r.p99_ms for r in beside),
            mean("list", "p99_ms"),
            "ms",
            target=Target("≤ 20 ms", "value", "<=", 20.0),
            digits=1,
        ),
        Row(
            "api: GET /services/<name> req/s (random of 500)",
            mean("get", "rps"),
            mean("healthz", "rps"),
            "req/s",
            digits=0,
        ),
        Row(
            "api: GET /services/<name> p99",
            mean("get", "p99_ms"),
            mean("healthz", "p99_ms"),
            "ms",
            compare="added",
            target=Target("≤ 20 ms", "value", "<=", 20.0),
            digits=1,
        ),
        Row(
            "api: CPU of the api process per GET /services (vs per /healthz)",
            cpu_ms("list"),
            cpu_ms("healthz"),
            "ms",
            digits=3,
        ),
        Row(
            "api: CPU of the api process per GET /services/<name> (vs per /healthz)",
            cpu_ms("get"),
            cpu_ms("healthz"),
            "ms",
            digits=3,
        ),
        Row(
            "api: failed requests (socket errors, non-2xx)",
            float(errors),
            float(sum(r.errors for r in results["healthz"])),
            compare="none",
            target=Target("0", "value", "<=", 0),
            digits=0,
        ),
    ]

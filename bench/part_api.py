"""API under load with 500 services in one project, against the api's own `/healthz`.

500 services are created (not deployed: no containers). Then wrk keeps 20
connections busy (closed loop: each sends its next request when the previous
one answered) for a few seconds each on: `/healthz` (the baseline: the same
process, aiohttp stack and middleware, but no auth and no NATS read),
`GET /services` and `GET /services/<name>` (a random one of the 500 each time).
The sequence runs twice; requests/s and latencies are averaged over the runs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp

from bench import wrk
from bench.console import log
from bench.harness import Platform
from bench.report import Row, Target

SERVICES = 500
CONNECTIONS = 20
SECONDS = 4
ROUNDS = 2


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


async def run(p: Platform) -> list[Row]:
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

    errors = sum(r.errors for name in ("list", "get") for r in results[name])
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

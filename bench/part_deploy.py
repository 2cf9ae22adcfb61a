"""Deploy latency and replace, against `docker run` of the same image.

Ours: `PUT /services/<name>` of a definition whose image is already in the
registry (pushed beforehand with the service's credentials) → first HTTP 200
through the gateway. Baseline: `docker run -d` of the same, already local,
image → first 200 on its published 127.0.0.1 port. Rounds alternate which goes
first. Both serve the same busybox httpd page under CONTEXT_ROOT and are polled
every 5 ms.

Replace: a running service gets a new definition while two clients loop GET
requests through the gateway; we time PUT → first answer from the new revision,
and count every request that did not answer 200 until the old task is gone.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp

from bench import clients
from bench.console import log
from bench.harness import Platform, docker_rm, docker_run
from bench.report import Row, Target, median, percentile
from shared import kv, names
from shared.bus import Bus

ROUNDS = 10
REPLACES = 3


class Timeline:
    """Wall-clock times at which each service's deploy passed each stage.

    Docker's events (the container created, started) and the routes bucket
    (a route with an upstream published by the deployer) are followed while
    the rounds run; `stages` lines them up against the PUT and the first 200.
    """

    def __init__(self, p: Platform) -> None:
        self.p = p
        self.seen: dict[str, dict[str, float]] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._events: asyncio.subprocess.Process | None = None
        self._bus: Bus | None = None

    def mark(self, service: str, stage: str, at: float | None = None) -> None:
        self.seen.setdefault(service, {}).setdefault(stage, time.time() if at is None else at)

    def _on_route(self, key: str, value: bytes | None, _rev: int) -> None:
        if value and b"127.0.0.1:" in value:
            self.mark(names.split_service_key(key)[1], "route")

    async def _docker_events(self) -> None:
        assert self._events is not None and self._events.stdout is not None
        async for line in self._events.stdout:
            event = json.loads(line)
            attrs = (event.get("Actor") or {}).get("Attributes") or {}
            action = event.get("Action")
            if action in ("create", "start"):
                self.mark(attrs.get(names.LABEL_SERVICE, ""), action, event["timeNano"] / 1e9)

    async def __aenter__(self) -> Timeline:
        self._bus = await self.p.connect_bus()
        label = f"{names.LABEL_INSTANCE}={self.p.stack.instance}"
        self._events = await asyncio.create_subprocess_exec(
            *("docker", "events", "--filter", f"label={label}", "--format", "{{json .}}"),
            stdout=asyncio.subprocess.PIPE,
        )
        rewatch = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._docker_events()),
            asyncio.create_task(
                kv.follow(self._bus.kv.routes, ">", self._on_route, self._stop, rewatch)
            ),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._events is not None and self._events.returncode is None:
            self._events.kill()
            await self._events.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._bus is not None:
            await self._bus.close()

    def stages(self, services: list[str]) -> dict[str, float]:
        """Median ms from the PUT to each stage, over the services that passed them all."""
        order = ("answered", "create", "start", "route", "first 200")
        rows = [self.seen.get(s, {}) for s in services]
        full = [r for r in rows if all(k in r for k in ("put", *order))]
        return {k: median([(r[k] - r["put"]) * 1000 for r in full]) for k in order}


async def _ours(
    p: Platform, client: aiohttp.ClientSession, service: str, timeline: Timeline | None = None
) -> float:
    started = time.perf_counter()
    if timeline:
        timeline.mark(service, "put")
    await asyncio.to_thread(p.deploy, service)
    if timeline:
        timeline.mark(service, "answered")
    took = await clients.first_ok(client, p.url(service), started)
    if timeline:
        timeline.mark(service, "first 200")
    return took


async def _baseline(p: Platform, client: aiohttp.ClientSession, image: str, i: int) -> float:
    root = f"/base-{i}"
    started = time.perf_counter()
    cid, port = await asyncio.to_thread(docker_run, p.run_id, image, {"CONTEXT_ROOT": root})
    try:
        return await clients.first_ok(client, f"http://127.0.0.1:{port}{root}/", started)
    finally:
        await asyncio.to_thread(docker_rm, cid)


def _settled(p: Platform, service: str, revision: int) -> bool:
    st = p.status(service)
    running = [t for t in st["tasks"] if t["last_status"] == "RUNNING"]
    return (
        len(st["tasks"]) == 1
        and len(running) == 1
        and running[0]["task_definition"]["revision"] == revision
    )


async def _replaces(p: Platform, client: aiohttp.ClientSession) -> tuple[list[float], int, int]:
    service = "rep"
    p.deploy(service, {"GREETING": "rev1"})
    await clients.first_ok(client, p.url(service), time.perf_counter())
    times: list[float] = []
    async with clients.Hammer(p.url(service), clients=2) as hammer:
        await asyncio.sleep(0.5)
        for k in range(2, REPLACES + 2):
            text = f"rev{k} from"
            hammer.watch_for.add(text)
            started = time.perf_counter()
            await asyncio.to_thread(p.deploy, service, {"GREETING": f"rev{k}"})
            seen = await hammer.wait_seen(text)
            times.append(seen - started)
            deadline = time.perf_counter() + 60
            while not await asyncio.to_thread(_settled, p, service, k):
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"replace to revision {k} did not settle")
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
    return times, len(hammer.failures), hammer.ok + len(hammer.failures)


async def run(p: Platform, app_image: str) -> list[Row]:
    services = [f"d{i}" for i in range(ROUNDS + 1)] + ["rep"]
    log(f"deploy: creating {len(services)} services and pushing the image to each")
    for s in services:
        p.create(s)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda s: p.push(s, app_image), services))

    ours: list[float] = []
    base: list[float] = []
    async with clients.session() as client:
        # one unmeasured warm-up of each
        await _baseline(p, client, app_image, 99)
        await _ours(p, client, services[ROUNDS])
        async with (
            p.profiled("deploy", "deployer", "api", "gateway"),
            Timeline(p) as timeline,
        ):
            for i in range(ROUNDS):
                if i % 2 == 0:
                    base.append(await _baseline(p, client, app_image, i))
                    ours.append(await _ours(p, client, services[i], timeline))
                else:
                    ours.append(await _ours(p, client, services[i], timeline))
                    base.append(await _baseline(p, client, app_image, i))
                log(f"deploy {i + 1}/{ROUNDS}: ours {ours[-1]:.3f} s, docker run {base[-1]:.3f} s")
        stages = timeline.stages(services[:ROUNDS])
        log(
            "deploy stages, median ms after the PUT: "
            + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
        )
        log("deploy: replacing a running service under load")
        times, failed, total = await _replaces(p, client)
    log(f"replace: {', '.join(f'{t:.3f}' for t in times)} s; {failed} of {total} requests failed")
    return [
        Row(
            f"deploy: PUT → first 200 via gateway, median of {ROUNDS} (vs docker run)",
            median(ours),
            median(base),
            "s",
            target=Target("≤ 1.5x", "ratio", "<=", 1.5),
            digits=3,
        ),
        Row(
            f"deploy: PUT → first 200, p90 of {ROUNDS}",
            percentile(ours, 90),
            percentile(base, 90),
            "s",
            digits=3,
        ),
        Row(
            "deploy: stages, median ms after the PUT: "
            + ", ".join(f"{k} {v:.0f}" for k, v in stages.items() if k != "first 200")
            + "; first 200",
            stages["first 200"] / 1000,
            None,
            "s",
            compare="none",
            digits=3,
        ),
        Row(
            f"replace: PUT → first answer of new revision, median of {REPLACES} (vs docker run)",
            median(times),
            median(base),
            "s",
            digits=3,
        ),
        Row(
            f"replace: failed requests during {REPLACES} replaces ({total} sent)",
            float(failed),
            None,
            compare="none",
            target=Target("0", "value", "<=", 0),
            digits=0,
        ),
    ]

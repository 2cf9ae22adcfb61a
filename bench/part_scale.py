"""Scale: 100 services, deployer restarts, and each platform process's memory.

1. 100 services are created and an image pushed to each (not timed). Baseline:
   `docker run -d` of the same image 100 times (10 at a time) → every container
   answers 200 on its port; the containers are then removed. Ours: 100
   `PUT /services/<name>` (10 at a time) → every service answers 200 through
   the gateway. Both are polled in sweeps every 0.1 s.
2. Resident memory (VmRSS) of every platform process with 100 services running,
   and what one Docker listing of the 100 containers costs (wall, dockerd CPU).
3. Three times, the deployer is stopped and started again (`Stack.procs["deployer"]`).
   Reconciled = every service's status was written by the new process and shows
   its one task RUNNING and HEALTHY, with the same container as before. We time
   that from the new process's start (median of three), then compare container
   ids and StartedAt before and after (restarted = 0 expected) and count failed
   requests of clients looping through the gateway meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp

from bench import clients
from bench.console import log
from bench.harness import Platform, docker_rm, docker_run, dockerd_pid, pid_cpu_seconds
from bench.report import Row, Target, median
from shared import names
from shared.bus import Bus
from shared.clock import parse_iso
from shared.models import ServiceStatus

SERVICES = 100
PARALLEL = 10
SWEEP_S = 0.1
RESTARTS = 3
# dockerd refuses reservations under 6 MB (the api accepts 4: reported)
RESERVATION_MB, LIMIT_MB = 6, 16


async def _all_serving(urls: list[str], started: float, timeout: float = 180) -> float:
    """Seconds from `started` until every URL has answered 200 once."""
    pending = set(urls)
    last: dict[str, str] = {}
    sem = asyncio.Semaphore(PARALLEL)
    async with clients.session(PARALLEL) as client:

        async def check(url: str) -> None:
            async with sem:
                try:
                    async with client.get(url) as r:
                        body = await r.read()
                        if r.status == 200:
                            pending.discard(url)
                        last[url] = f"{r.status} {body[:100]!r}"
                except (aiohttp.ClientError, OSError, TimeoutError) as err:
                    last[url] = repr(err)

        while pending:
            if time.perf_counter() - started > timeout:
                url = min(pending)
                raise TimeoutError(
                    f"{len(pending)} of {len(urls)} never answered 200 "
                    f"(e.g. {url}: {last.get(url, 'no answer')})"
                )
            await asyncio.gather(*(check(u) for u in list(pending)))
            if pending:
                await asyncio.sleep(SWEEP_S)
    return time.perf_counter() - started


async def _in_threads(fn: Callable[[int], object], count: int) -> None:
    sem = asyncio.Semaphore(PARALLEL)

    async def one(i: int) -> None:
        async with sem:
            await asyncio.to_thread(fn, i)

    await asyncio.gather(*(one(i) for i in range(count)))


def _started_at(ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    r = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True)
    return {c["Id"]: c["State"]["StartedAt"] for c in json.loads(r.stdout or "[]")}


async def _baseline(p: Platform, image: str) -> float:
    ports: list[int] = [0] * SERVICES
    ids: list[str] = [""] * SERVICES

    def start(i: int) -> None:
        ids[i], ports[i] = docker_run(p.run_id, image, {"CONTEXT_ROOT": f"/base-{i}"})

    started = time.perf_counter()
    try:
        await _in_threads(start, SERVICES)
        urls = [f"http://127.0.0.1:{ports[i]}/base-{i}/" for i in range(SERVICES)]
        return await _all_serving(urls, started)
    finally:
        await asyncio.to_thread(docker_rm, *[i for i in ids if i])


@dataclass(frozen=True)
class Listing:
    wall_ms: float
    dockerd_cpu_ms: float
    decode_ms: float


async def _listing_cost(p: Platform, calls: int = 20) -> Listing:
    """What one Docker listing of the platform's containers costs (the deployer's filter)."""
    filters = json.dumps({"label": [f"{names.LABEL_INSTANCE}={p.stack.instance}"]})
    params = {"all": "1", "filters": filters}
    dockerd = dockerd_pid()
    wall = decode = 0.0
    cpu_before = pid_cpu_seconds(dockerd) if dockerd else 0.0
    connector = aiohttp.UnixConnector(path="/var/run/docker.sock")
    async with aiohttp.ClientSession(connector=connector) as docker:
        for _ in range(calls):
            t0 = time.perf_counter()
            async with docker.get("http://docker/containers/json", params=params) as r:
                body = await r.read()
            t1 = time.perf_counter()
            json.loads(body)
            wall += t1 - t0
            decode += time.perf_counter() - t1
    cpu = (pid_cpu_seconds(dockerd) - cpu_before) if dockerd else 0.0
    return Listing(wall / calls * 1000, cpu / calls * 1000, decode / calls * 1000)


def _reconciled(
    statuses: dict[str, ServiceStatus], names: list[str], since: float, before: set[str]
) -> int:
    """How many services the new deployer has written a healthy, unchanged status for."""
    done = 0
    for name in names:
        st = statuses.get(name)
        if st is None or parse_iso(st.updated_at) < since - 0.001:
            continue
        tasks = st.tasks
        if (
            len(tasks) == 1
            and tasks[0].last_status == "RUNNING"
            and tasks[0].health == "HEALTHY"
            and tasks[0].container_id in before
        ):
            done += 1
    return done


@dataclass(frozen=True)
class Restart:
    ready_s: float
    reconciled_s: float | None
    deployer_cpu: float
    dockerd_cpu: float


async def _restart(p: Platform, bus: Bus, names: list[str], before: set[str], k: int) -> Restart:
    """Stop and start the deployer; time from its start until every service is reconciled."""
    deployer = p.stack.procs["deployer"]
    await asyncio.to_thread(deployer.stop)
    old = deployer.popen
    dockerd = dockerd_pid()
    dockerd_before = pid_cpu_seconds(dockerd) if dockerd else 0.0
    since = time.time()
    t0 = time.perf_counter()
    starting = asyncio.create_task(asyncio.to_thread(deployer.start))
    for _ in range(10_000):  # the new process exists within milliseconds
        if deployer.popen is not old or starting.done():
            break
        await asyncio.sleep(0.001)
    pid = deployer.pid
    profiling = p.profiler.start(f"scale-restart{k}", {"deployer": pid} if pid else {})
    ready_s = reconciled_s = None
    done = 0
    while time.perf_counter() - t0 < 120:
        if starting.done() and ready_s is None:
            ready_s = time.perf_counter() - t0
        done = _reconciled(await p.statuses(bus), names, since, before)
        if done == len(names):
            reconciled_s = time.perf_counter() - t0
            break
        await asyncio.sleep(0.05)
    p.profiler.finish(profiling)
    await starting
    if ready_s is None:
        ready_s = time.perf_counter() - t0
    assert deployer.pid is not None
    deployer_cpu = pid_cpu_seconds(deployer.pid)
    dockerd_cpu = (pid_cpu_seconds(dockerd) - dockerd_before) if dockerd else 0.0
    log(
        f"scale: deployer ready {ready_s:.2f} s after start, {done}/{len(names)} reconciled"
        + (f" after {reconciled_s:.2f} s" if reconciled_s is not None else " (gave up at 120 s)")
        + f"; CPU: deployer {deployer_cpu:.2f} s, dockerd {dockerd_cpu:.2f} s"
    )
    return Restart(ready_s, reconciled_s, deployer_cpu, dockerd_cpu)


async def run(p: Platform, app_image: str) -> list[Row]:
    names = [f"s{i:03d}" for i in range(SERVICES)]
    log(f"scale: creating {SERVICES} services and pushing the image to each")
    for name in names:
        p.create(name)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda s: p.push(s, app_image), names))

    log(f"scale: baseline, docker run x{SERVICES}")
    base = await _baseline(p, app_image)
    log(f"scale: docker run x{SERVICES} all serving after {base:.1f} s")

    started = time.perf_counter()
    deploys = asyncio.create_task(
        _in_threads(
            lambda i: p.deploy(names[i], reservation=RESERVATION_MB, limit=LIMIT_MB), SERVICES
        )
    )
    async with p.profiled("scale-deploy", "deployer", "gateway", "api"):
        ours = await _all_serving([p.url(n) for n in names], started)
        await deploys
    log(f"scale: {SERVICES} services all serving through the gateway after {ours:.1f} s")

    await asyncio.sleep(2)
    rss = p.rss_mb()
    log("scale: RSS " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))

    listing = await _listing_cost(p)
    log(
        f"scale: one listing of the {SERVICES} containers: {listing.wall_ms:.1f} ms wall, "
        f"{listing.dockerd_cpu_ms:.1f} ms dockerd CPU, {listing.decode_ms:.1f} ms JSON decoding"
    )
    bus = await p.connect_bus()
    try:
        before = _started_at(p.containers())
        async with (
            clients.Hammer(p.url(names[0]), clients=1) as h1,
            clients.Hammer(p.url(names[-1]), clients=1) as h2,
        ):
            restarts = [await _restart(p, bus, names, set(before), k + 1) for k in range(RESTARTS)]
            await asyncio.sleep(3)  # anything restarted late shows up too
            failed = len(h1.failures) + len(h2.failures)
            sent = h1.ok + h2.ok + failed
    finally:
        await bus.close()
    after = _started_at(p.containers())
    restarted = sum(1 for cid, at in before.items() if after.get(cid) != at)
    restarted += sum(1 for cid in after if cid not in before)
    times = [r.reconciled_s for r in restarts if r.reconciled_s is not None]
    reconciled = median(times) if len(times) == RESTARTS else None
    ready = median([r.ready_s for r in restarts])
    log(f"scale: {restarted} containers restarted; {failed} of {sent} requests failed")
    rows = [
        Row(
            f"scale: {SERVICES} PUTs → all serve via gateway (vs docker run x{SERVICES}), "
            f"{PARALLEL} at a time",
            ours,
            base,
            "s",
            digits=1,
        ),
        Row(
            f"scale: deployer start → all {SERVICES} reconciled, median of {RESTARTS} "
            f"(logs `ready` after {ready:.2f} s)",
            reconciled,
            None,
            "s",
            compare="none",
            target=Target("≤ 5 s", "value", "<=", 5.0),
            note="" if reconciled is not None else "not all reconciled within 120 s",
        ),
        Row(
            f"scale: CPU per deployer restart, deployer + dockerd "
            f"({median([r.deployer_cpu for r in restarts]):.2f} + "
            f"{median([r.dockerd_cpu for r in restarts]):.2f})",
            median([r.deployer_cpu + r.dockerd_cpu for r in restarts]),
            None,
            "s",
            compare="none",
        ),
        Row(
            f"scale: one Docker listing of the {SERVICES} containers, wall (dockerd CPU "
            f"{listing.dockerd_cpu_ms:.0f} ms, JSON decoding {listing.decode_ms:.1f} ms)",
            listing.wall_ms,
            None,
            "ms",
            compare="none",
            digits=1,
        ),
        Row(
            f"scale: containers restarted by {RESTARTS} deployer restarts",
            float(restarted),
            None,
            compare="none",
            target=Target("0", "value", "<=", 0),
            digits=0,
        ),
        Row(
            f"scale: failed requests via gateway during the deployer restarts ({sent} sent)",
            float(failed),
            None,
            compare="none",
            digits=0,
        ),
    ]
    for name in rss:
        rows.append(
            Row(
                f"RSS of {name} at {SERVICES} services",
                rss.get(name),
                None,
                "MB",
                compare="none",
                digits=0,
            )
        )
    return rows

"""Multi-host: deploys on a 3-node Swarm against `docker service create`, and a node's loss.

The platform runs as the multihost tests run it (`tests.multistack.MultiStack`
on the project's own test cluster, `deploy.cluster`: three dockerd nodes in
network namespaces, 2048/2048/1024 MB), with the platform's default timers.

Deploy: `PUT /services/<name>` (image already in the registry) → first 200
through the gateway. Baseline: `docker service create` on the same manager of
the same image (loaded into every node beforehand, `--no-resolve-image`),
host-mode published port, same reservation and limit, `--restart-condition
none` as ours → first 200 at whichever node's address answers. Rounds
alternate which goes first; both are polled every 5 ms.

Failover: a service of 3 tasks under two looping clients through the gateway;
a worker node holding one of them loses its link. We time the loss → 3 healthy
tasks on the other nodes (as the status reports them), and count the requests
that failed and when the last one did.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import clients
from bench.console import log
from bench.harness import BENCH_LABEL, PLATFORM_ENV
from bench.report import Row, median
from deploy.cluster import Cluster
from services.api.admin import add_user
from tests.client import Api, login
from tests.deploying import definition
from tests.multistack import MultiStack
from tests.stack import free_port

ROUNDS = 6
MEMORY_MB = (2048, 2048, 1024)
FAILOVER_TASKS = 3


class MultiPlatform:
    """A test cluster with the platform on it and one user; use as a context manager."""

    def __init__(self, run_id: str, workdir: Path) -> None:
        self.run_id = run_id
        self.project = "bench"
        self.workdir = Path(tempfile.mkdtemp(prefix="mstack-", dir=workdir))
        self.cluster = Cluster(f"mb{run_id[:6]}", memory_mb=MEMORY_MB)
        self.stack: MultiStack | None = None
        self.api: Api | None = None

    def __enter__(self) -> MultiPlatform:
        try:
            took = self.cluster.up()
            log(f"multihost: cluster {self.cluster.name} up in {took:.1f} s")
            self.stack = MultiStack(self.workdir, self.cluster, PLATFORM_ENV)
            self.stack.start(self.stack.components)
            user = f"bench{self.run_id}"
            asyncio.run(add_user(self.stack.settings, user, self.project, "bench password"))
            self.api = Api(self.stack, login(self.stack, user, "bench password", self.project))
        except BaseException:
            if self.stack is not None:
                log("multihost platform failed to start:\n" + self.stack.logs(20))
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and exc_type is not KeyboardInterrupt and self.stack:
            log(f"platform logs after the failure:\n{self.stack.logs(25)}")
        self.close()

    def close(self) -> None:
        try:
            if self.stack is not None:
                self.stack.stop()
                self.stack.remove_docker_objects()
        finally:
            self.cluster.down()
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------ ours
    @property
    def user_api(self) -> Api:
        assert self.api is not None
        return self.api

    @property
    def mstack(self) -> MultiStack:
        assert self.stack is not None
        return self.stack

    def url(self, service: str) -> str:
        return f"{self.mstack.gateway_url}/{self.project}-{service}/"

    def create_and_push(self, service: str, image: str) -> None:
        r = self.user_api.post("/services", json={"name": service})
        if r.status_code != 201:
            raise RuntimeError(f"create {service}: {r.status_code} {r.text}")
        config = self.workdir / f"docker-{service}"
        config.mkdir(exist_ok=True)
        self.mstack.push(self.user_api, service, image, "v1", config)

    def put(self, service: str, env: dict[str, str] | None = None) -> None:
        r = self.user_api.put(f"/services/{service}", json=definition("v1", env))
        if r.status_code != 200:
            raise RuntimeError(f"update {service}: {r.status_code} {r.text}")

    def scale(self, service: str, count: int) -> None:
        r = self.user_api.request("PATCH", f"/services/{service}", json={"count": count})
        if r.status_code != 200:
            raise RuntimeError(f"scale {service}: {r.status_code} {r.text}")

    def healthy(self, service: str) -> list[dict[str, Any]]:
        r = self.user_api.get(f"/services/{service}")
        r.raise_for_status()
        tasks: list[dict[str, Any]] = r.json()["status"]["tasks"]
        return [t for t in tasks if t["last_status"] == "RUNNING" and t["health"] == "healthy"]

    # ------------------------------------------------------------ baseline
    def service_create(self, image_id: str, i: int, port: int) -> str:
        """`docker service create` of the image on the manager; the service's id."""
        r = self.cluster.docker(
            1,
            *("service", "create", "--detach", "--quiet", "--no-resolve-image"),
            *("--name", f"bench-{self.run_id}-{i}", "--label", f"{BENCH_LABEL}={self.run_id}"),
            *("--publish", f"mode=host,target=8080,published={port}"),
            *("--env", f"CONTEXT_ROOT=/base-{i}", "--restart-condition", "none"),
            *("--reserve-memory", "16M", "--limit-memory", "64M"),
            image_id,
        )
        return r.stdout.strip()

    def service_rm(self, sid: str) -> None:
        self.cluster.docker(1, "service", "rm", sid, check=False)


async def _first_of(http: aiohttp.ClientSession, urls: list[str], started: float) -> float:
    """Seconds from `started` to the first 200 from any of `urls`."""
    polls = [asyncio.create_task(clients.first_ok(http, u, started)) for u in urls]
    try:
        for done in asyncio.as_completed(polls):
            return await done
        raise AssertionError("unreachable")
    finally:
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)


async def _ours(mp: MultiPlatform, http: aiohttp.ClientSession, service: str) -> float:
    started = time.perf_counter()
    await asyncio.to_thread(mp.put, service)
    return await clients.first_ok(http, mp.url(service), started)


async def _baseline(mp: MultiPlatform, http: aiohttp.ClientSession, image_id: str, i: int) -> float:
    port = free_port()
    urls = [f"http://{n.address}:{port}/base-{i}/" for n in mp.cluster.nodes]
    started = time.perf_counter()
    sid = await asyncio.to_thread(mp.service_create, image_id, i, port)
    try:
        return await _first_of(http, urls, started)
    finally:
        await asyncio.to_thread(mp.service_rm, sid)


async def _deploys(mp: MultiPlatform, image: str) -> tuple[list[float], list[float]]:
    services = [f"d{i}" for i in range(ROUNDS + 1)]
    log(f"multihost: creating {len(services)} services and pushing the image to each")
    for s in services:
        await asyncio.to_thread(mp.create_and_push, s, image)
    image_id = await asyncio.to_thread(mp.cluster.load_image, image)
    ours: list[float] = []
    base: list[float] = []
    async with clients.session() as http:
        await _baseline(mp, http, image_id, 99)  # unmeasured warm-ups
        await _ours(mp, http, services[ROUNDS])
        for i in range(ROUNDS):
            if i % 2 == 0:
                base.append(await _baseline(mp, http, image_id, i))
                ours.append(await _ours(mp, http, services[i]))
            else:
                ours.append(await _ours(mp, http, services[i]))
                base.append(await _baseline(mp, http, image_id, i))
            log(
                f"multihost deploy {i + 1}/{ROUNDS}: ours {ours[-1]:.3f} s, "
                f"docker service create {base[-1]:.3f} s"
            )
    return ours, base


async def _wait_healthy(mp: MultiPlatform, service: str, n: int, avoid: str = "") -> float:
    """perf_counter time when `n` tasks run healthy, none on node address `avoid`."""
    deadline = time.perf_counter() + 180
    while time.perf_counter() < deadline:
        tasks = await asyncio.to_thread(mp.healthy, service)
        if len(tasks) == n and avoid not in {t.get("host") for t in tasks}:
            return time.perf_counter()
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{service}: not {n} healthy tasks (away from {avoid or '-'}) in 180 s")


async def _failover(mp: MultiPlatform, image: str) -> tuple[float, int, int, float]:
    service = "fo"
    await asyncio.to_thread(mp.create_and_push, service, image)
    await asyncio.to_thread(mp.put, service, {"GREETING": "failover"})
    await asyncio.to_thread(mp.scale, service, FAILOVER_TASKS)
    await _wait_healthy(mp, service, FAILOVER_TASKS)
    hosts = {t["host"] for t in await asyncio.to_thread(mp.healthy, service)}
    workers = [n for n in mp.cluster.nodes if n.index != 1 and n.address in hosts]
    if not workers:
        raise RuntimeError(f"no task of {service} on a worker node: {hosts}")
    victim = workers[0]
    async with clients.Hammer(mp.url(service), clients=2) as hammer:
        await asyncio.sleep(1.0)
        before = len(hammer.failures)
        lost = time.perf_counter()
        await asyncio.to_thread(mp.cluster.link_down, victim.index)
        try:
            back = await _wait_healthy(mp, service, FAILOVER_TASKS, avoid=victim.address)
            await asyncio.sleep(1.0)
        finally:
            await asyncio.to_thread(mp.cluster.link_up, victim.index)
    failed = hammer.failed_at[before:]
    last = (max(failed) - lost) if failed else 0.0
    total = hammer.ok + len(hammer.failures)
    log(
        f"multihost failover: {back - lost:.1f} s to {FAILOVER_TASKS} healthy tasks elsewhere; "
        f"{len(failed)} of {total} requests failed, the last {last:.2f} s after the loss"
        + (f" ({hammer.failures[before]})" if failed else "")
    )
    return back - lost, len(failed), total, last


def run(run_id: str, workdir: Path, image: str) -> list[Row]:
    with MultiPlatform(run_id, workdir) as mp:
        ours, base = asyncio.run(_deploys(mp, image))
        window, failed, total, last = asyncio.run(_failover(mp, image))
    return [
        Row(
            f"multihost deploy: PUT → first 200 via gateway, median of {ROUNDS} "
            "(vs docker service create)",
            median(ours),
            median(base),
            "s",
            digits=3,
        ),
        Row(
            f"multihost failover: node lost → {FAILOVER_TASKS} healthy tasks on the others",
            window,
            None,
            "s",
            compare="none",
            digits=1,
        ),
        Row(
            f"multihost failover: requests failed after the loss ({total} sent), "
            f"the last {last:.2f} s after it",
            float(failed),
            None,
            compare="none",
            digits=0,
        ),
    ]

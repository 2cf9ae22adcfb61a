"""Gateway overhead: wrk through the gateway vs straight to the same container's port,
vs a bare HAProxy and a bare Caddy in front of it; and failed requests while routes change.

One service runs the keep-alive upstream (Caddy's static `respond` in a scratch
image). wrk (2 threads, 50 connections, loopback) loads, in alternating runs:
the container's published 127.0.0.1 port (the baseline), the gateway URL (our
HAProxy, programmed through its runtime API), a bare HAProxy (stock settings,
one static server) and a bare `caddy reverse-proxy` (stock settings), both
started here in front of the same port. The bare proxies tell what our
configuration costs apart from putting any HAProxy in front, and what choosing
HAProxy over Caddy bought. We also read the CPU time each proxy process used per
request (for the gateway, HAProxy's worker process). Each target gets a short
warm-up.

Route changes: while wrk loads the steady service through the gateway, five
other services are deployed, replaced several times and deleted through the
api, and every change of the routes bucket they cause is counted (about 50);
every wrk request that was not a 200 is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench import clients, wrk
from bench.console import log
from bench.harness import Platform, pid_cpu_seconds
from bench.report import Row, Target
from shared import kv, names
from tests.stack import free_port, port_open, wait_for

CONNECTIONS = 50
SECONDS = 10
ROUNDS = 2
CHURN_SERVICES = 5
CHURN_REPLACES = 7  # 5 x (2 changes to deploy + 7 replaces + 1 delete) = 50 route changes
HAPROXY = "/usr/sbin/haproxy"


@contextlib.contextmanager
def _proc(argv: list[str], env: dict[str, str], port: int, what: str) -> Iterator[int]:
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: port_open(port), 15, what)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def bare_caddy(workdir: Path, upstream_port: int) -> Iterator[tuple[int, int]]:
    """`caddy reverse-proxy` from a fresh port to the upstream; (port, pid)."""
    port = free_port()
    env = {**os.environ, "XDG_CONFIG_HOME": str(workdir), "XDG_DATA_HOME": str(workdir)}
    argv = [str(Path(sys.executable).parent / "caddy"), "reverse-proxy"]
    argv += ["--from", f"http://127.0.0.1:{port}", "--to", f"127.0.0.1:{upstream_port}"]
    with _proc(argv, env, port, "caddy reverse-proxy") as pid:
        yield port, pid


@contextlib.contextmanager
def bare_haproxy(workdir: Path, upstream_port: int) -> Iterator[tuple[int, int]]:
    """HAProxy with a minimal configuration (its defaults, one static server); (port, pid)."""
    port = free_port()
    config = workdir / "bare-haproxy.cfg"
    config.write_text(
        "defaults\n"
        "    mode http\n"
        "    timeout connect 1s\n"
        "    timeout client 60s\n"
        "    timeout server 60s\n"
        "frontend bare\n"
        f"    bind 127.0.0.1:{port}\n"
        "    default_backend upstream\n"
        "backend upstream\n"
        f"    server s1 127.0.0.1:{upstream_port}\n"
    )
    with _proc([HAPROXY, "-db", "-f", str(config)], dict(os.environ), port, "bare haproxy") as pid:
        yield port, pid


def haproxy_worker(master: int) -> int:
    """The gateway HAProxy's current worker process (the master only supervises it)."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return master
    return int(children[-1]) if children else master


async def _churn(p: Platform) -> int:
    """Deploy, replace and delete the churn services; the route changes they made."""
    changes = 0
    services = [f"rc{i}" for i in range(CHURN_SERVICES)]

    def on_route(key: str, _value: bytes | None, _rev: int) -> None:
        nonlocal changes
        if names.split_service_key(key)[1] in services:
            changes += 1

    stop, rewatch = asyncio.Event(), asyncio.Event()
    bus = await p.connect_bus()
    watcher = asyncio.create_task(kv.follow(bus.kv.routes, ">", on_route, stop, rewatch))

    async def one(service: str) -> None:
        async with clients.session() as client:
            await asyncio.to_thread(p.deploy, service, reservation=16, limit=128)
            await clients.first_ok(client, p.url(service), time.perf_counter())
        for i in range(CHURN_REPLACES):
            revision = i + 2
            await asyncio.to_thread(p.deploy, service, {"ROUND": str(i)}, limit=128)
            await asyncio.to_thread(
                wait_for,
                functools.partial(_serving_only, p, service, revision),
                60,
                f"{service} to serve revision {revision} alone",
            )
        r = await asyncio.to_thread(p.api.delete, f"/services/{service}")
        if r.status_code != 200:
            raise RuntimeError(f"delete {service}: {r.status_code} {r.text}")

    try:
        await asyncio.gather(*(one(s) for s in services))
        await asyncio.sleep(1.0)  # the last route purges reach the watcher
    finally:
        stop.set()
        await watcher
        await bus.close()
    return changes


def _serving_only(p: Platform, service: str, revision: int) -> bool:
    st = p.status(service)
    running = [t for t in st["tasks"] if t["last_status"] == "RUNNING"]
    return len(running) == 1 and running[0]["task_definition"]["revision"] == revision


async def _under_churn(p: Platform, url: str, image: str) -> tuple[wrk.WrkResult, int, float]:
    for i in range(CHURN_SERVICES):
        p.create(f"rc{i}")
        p.push(f"rc{i}", image)
    argv = ["-t2", f"-c{CONNECTIONS}", "-d300s", "--timeout", "10s", "--latency", url]
    proc = await asyncio.create_subprocess_exec(
        "wrk", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    t0 = time.monotonic()
    try:
        await asyncio.sleep(1.0)
        changes = await _churn(p)
    finally:
        proc.send_signal(signal.SIGINT)  # wrk stops and prints its figures
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    if proc.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"wrk failed: {err.decode().strip()}")
    return wrk.parse(out.decode()), changes, time.monotonic() - t0


async def run(p: Platform, keepalive_image: str) -> list[Row]:
    service = "ka"
    p.create(service)
    p.push(service, keepalive_image)
    p.deploy(service, reservation=32, limit=256)
    async with clients.session() as client:
        await clients.first_ok(client, p.url(service), time.perf_counter())
    port = p.host_port(service)
    path = f"/{p.project}-{service}/"
    master = p.stack.procs["haproxy"].pid
    assert master is not None
    with (
        bare_caddy(p.workdir, port) as (caddy_port, caddy_pid),
        bare_haproxy(p.workdir, port) as (haproxy_port, haproxy_pid),
    ):
        targets = {
            "direct": (f"http://127.0.0.1:{port}{path}", None),
            "gateway": (p.url(service), haproxy_worker(master)),
            "haproxy": (f"http://127.0.0.1:{haproxy_port}{path}", haproxy_pid),
            "caddy": (f"http://127.0.0.1:{caddy_port}{path}", caddy_pid),
        }
        for url, _ in targets.values():
            await asyncio.to_thread(wrk.run, url, connections=CONNECTIONS, seconds=2)
        results: dict[str, list[wrk.WrkResult]] = {k: [] for k in targets}
        cpu_us: dict[str, list[float]] = {k: [] for k in targets}
        for i in range(ROUNDS):
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            for name in order:
                url, pid = targets[name]
                before = pid_cpu_seconds(pid) if pid else 0.0
                res = await asyncio.to_thread(
                    wrk.run, url, connections=CONNECTIONS, seconds=SECONDS
                )
                if pid:
                    cpu_us[name].append((pid_cpu_seconds(pid) - before) / res.requests * 1e6)
                results[name].append(res)
                log(
                    f"gateway round {i + 1}/{ROUNDS} {name}: {res.rps:,.0f} req/s, "
                    f"p50 {res.p50_ms:.2f} ms, p99 {res.p99_ms:.2f} ms, {res.errors} errors"
                    + (f", proxy CPU {cpu_us[name][-1]:.0f} µs/request" if pid else "")
                )
    churn, changes, took = await _under_churn(p, p.url(service), keepalive_image)
    log(
        f"gateway: {changes} route changes in {took:.1f} s under wrk -c{CONNECTIONS}: "
        f"{churn.requests:,} requests, {churn.errors} failed, p99 {churn.p99_ms:.1f} ms"
    )

    def mean(name: str, attr: str) -> float:
        return statistics.fmean(getattr(r, attr) for r in results[name])

    def cpu(name: str) -> float:
        return statistics.fmean(cpu_us[name])

    errors = sum(r.errors for r in results["gateway"])
    runs = f"wrk, {CONNECTIONS} connections, {ROUNDS}x{SECONDS} s"
    return [
        Row(
            f"gateway: requests/s via gateway vs direct to the container ({runs})",
            mean("gateway", "rps"),
            mean("direct", "rps"),
            "req/s",
            target=Target("≥ 0.65x", "ratio", ">=", 0.65),
            digits=0,
        ),
        Row(
            "gateway: p50 latency (added)",
            mean("gateway", "p50_ms"),
            mean("direct", "p50_ms"),
            "ms",
            compare="added",
        ),
        Row(
            "gateway: p99 latency (added)",
            mean("gateway", "p99_ms"),
            mean("direct", "p99_ms"),
            "ms",
            compare="added",
            target=Target("≤ +5 ms", "added", "<=", 5.0),
        ),
        Row(
            "gateway: failed requests (socket errors, non-2xx)",
            float(errors),
            float(sum(r.errors for r in results["direct"])),
            compare="none",
            target=Target("0", "value", "<=", 0),
            digits=0,
        ),
        Row(
            "gateway: proxy CPU per request, the gateway's HAProxy worker",
            cpu("gateway"),
            None,
            "µs",
            compare="none",
            target=Target("≤ 45 µs", "value", "<=", 45),
            digits=0,
        ),
        Row(
            "gateway: bare HAProxy (stock settings) req/s vs direct",
            mean("haproxy", "rps"),
            mean("direct", "rps"),
            "req/s",
            digits=0,
        ),
        Row(
            "gateway: bare `caddy reverse-proxy` req/s vs direct",
            mean("caddy", "rps"),
            mean("direct", "rps"),
            "req/s",
            digits=0,
        ),
        Row(
            "gateway: req/s via gateway vs bare HAProxy",
            mean("gateway", "rps"),
            mean("haproxy", "rps"),
            "req/s",
            digits=0,
        ),
        Row(
            "gateway: proxy CPU per request, gateway vs bare HAProxy",
            cpu("gateway"),
            cpu("haproxy"),
            "µs",
            digits=0,
        ),
        Row(
            "gateway: proxy CPU per request, gateway vs bare Caddy",
            cpu("gateway"),
            cpu("caddy"),
            "µs",
            digits=0,
        ),
        Row(
            f"gateway: failed requests under wrk -c{CONNECTIONS} during {changes} route changes "
            f"({churn.requests:,} sent in {took:.0f} s)",
            float(churn.errors),
            None,
            compare="none",
            target=Target("0", "value", "<=", 0),
            digits=0,
        ),
    ]

"""Gateway overhead: wrk through the gateway vs straight to the same container's port.

One service runs the keep-alive upstream (Caddy's static `respond` in a scratch
image). wrk (2 threads, 50 connections, loopback) loads, in alternating runs:
the container's published 127.0.0.1 port (the baseline), the gateway URL, and
a bare `caddy reverse-proxy` (the same Caddy binary with its stock settings,
started here) in front of the same port. The bare proxy tells what our gateway
configuration costs apart from putting any Caddy in front. We also read the CPU
time each proxy process used per request. Each target gets a short warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
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
from tests.stack import free_port, port_open, wait_for

CONNECTIONS = 50
SECONDS = 10
ROUNDS = 2


@contextlib.contextmanager
def bare_caddy(workdir: Path, upstream_port: int) -> Iterator[tuple[int, int]]:
    """`caddy reverse-proxy` from a fresh port to the upstream; (port, pid)."""
    port = free_port()
    env = {**os.environ, "XDG_CONFIG_HOME": str(workdir), "XDG_DATA_HOME": str(workdir)}
    argv = [str(Path(sys.executable).parent / "caddy"), "reverse-proxy"]
    argv += ["--from", f"http://127.0.0.1:{port}", "--to", f"127.0.0.1:{upstream_port}"]
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: port_open(port), 15, "caddy reverse-proxy")
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run(p: Platform, keepalive_image: str) -> list[Row]:
    service = "ka"
    p.create(service)
    p.push(service, keepalive_image)
    p.deploy(service, reservation=32, limit=256)
    async with clients.session() as client:
        await clients.first_ok(client, p.url(service), time.perf_counter())
    port = p.host_port(service)
    path = f"/{p.project}-{service}/"
    with bare_caddy(p.workdir, port) as (bare_port, bare_pid):
        targets = {
            "direct": (f"http://127.0.0.1:{port}{path}", None),
            "gateway": (p.url(service), p.stack.procs["caddy"].pid),
            "bare": (f"http://127.0.0.1:{bare_port}{path}", bare_pid),
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

    def mean(name: str, attr: str) -> float:
        return statistics.fmean(getattr(r, attr) for r in results[name])

    errors = sum(r.errors for r in results["gateway"])
    runs = f"wrk, {CONNECTIONS} connections, {ROUNDS}x{SECONDS} s"
    return [
        Row(
            f"gateway: requests/s via gateway vs direct to the container ({runs})",
            mean("gateway", "rps"),
            mean("direct", "rps"),
            "req/s",
            target=Target("≥ 0.8x", "ratio", ">=", 0.8),
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
            target=Target("≤ +2 ms", "added", "<=", 2.0),
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
            "gateway: bare `caddy reverse-proxy` req/s vs direct (any Caddy in front)",
            mean("bare", "rps"),
            mean("direct", "rps"),
            "req/s",
            digits=0,
        ),
        Row(
            "gateway: req/s via gateway vs bare `caddy reverse-proxy`",
            mean("gateway", "rps"),
            mean("bare", "rps"),
            "req/s",
            digits=0,
        ),
        Row(
            "gateway: proxy CPU per request, gateway's Caddy vs bare Caddy",
            statistics.fmean(cpu_us["gateway"]),
            statistics.fmean(cpu_us["bare"]),
            "µs",
            digits=0,
        ),
    ]

"""Log pipeline: a websocket client of `/services/<name>/logs/follow` vs Docker's own log API.

Both readers (separate processes, `bench.logreader`) follow the same container
at the same time, so they see the same output:

- flood: the container prints `seq 1 N` as fast as it can; each reader's rate
  is the lines it received divided by the time from the first line anyone saw
  to the last line it saw. Lines the websocket never delivered are lost
  (whatever the reason: the api's per-client outbox, the stream's limits).
- steady: the container prints "t <$EPOCHREALTIME> <i>" lines at a steady
  rate; latency is receive time minus the time printed in the line.

The flood is triggered (`docker exec ... touch /tmp/go`) only once both
readers are connected, the websocket after the api said `live`.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench import clients
from bench.console import log
from bench.harness import Platform
from bench.report import Row, Target, median, percentile
from shared import names
from shared.bus import Bus
from shared.models import decode_logs

FLOOD_LINES = 100_000
FLOODS = 2
STEADY_LINES = 2000
STEADY_SLEEP_US = 4000  # plus the loop's own time: roughly 200 lines/s


@dataclass
class Reader:
    proc: asyncio.subprocess.Process

    @classmethod
    async def start(cls, *args: str) -> Reader:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.logreader",
            *args,
            stdout=asyncio.subprocess.PIPE,
        )
        reader = cls(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line.strip() != b"ready":
            await reader.kill()
            raise RuntimeError(f"log reader {args[0]} did not start: {line!r}")
        return reader

    async def result(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        out = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        await self.proc.wait()
        found: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return found

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def _running_container(p: Platform, service: str) -> str:
    for cid in p.containers(service):
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", cid], capture_output=True, text=True
        ).stdout.strip()
        if state == "true":
            return cid
    raise RuntimeError(f"{service} has no running container")


async def _stored_lines(bus: Bus, pattern: str) -> int:
    """The number of the newest line stored for the service (its one task), 0 if none.

    A LOGS message holds a batch of lines, so the stream's sequence does not
    count lines: the newest message's last line number does.
    """
    newest = await bus.streams.newest_per_subject(names.STREAM_LOGS, pattern)
    return max((decode_logs(m.data).last_n for m in newest), default=0)


async def _stored_at(bus: Bus, pattern: str, target: int, timeout: float = 180) -> float | None:
    """Wall-clock time when the service's newest stored line number reached `target`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _stored_lines(bus, pattern) >= target:
            return time.time()
        await asyncio.sleep(0.05)
    return None


@dataclass
class Round:
    ours: dict[str, Any]
    direct: dict[str, Any]
    stored_at: float | None  # when the collector had stored every line on NATS

    @property
    def start(self) -> float:
        """When the first line was seen by either reader."""
        firsts = [r["first"] for r in (self.ours, self.direct) if r["first"]]
        return min(firsts) if firsts else 0.0

    def rate(self, seen: dict[str, Any]) -> float:
        return seen["distinct"] / (seen["last"] - self.start) if seen["distinct"] else 0.0


async def _round(p: Platform, bus: Bus, service: str, lines: int) -> Round:
    cid = await asyncio.to_thread(_running_container, p, service)
    ws_url = (
        p.stack.api_url.replace("http://", "ws://")
        + f"/servicectl-1/services/{service}/logs/follow"
    )
    since = time.time()
    n = str(lines)
    readers = [
        await Reader.start("ws", ws_url, "--token", p.token, "--lines", n, "--idle", "5"),
        await Reader.start("docker", cid, "--since", f"{since}", "--lines", n, "--idle", "5"),
    ]
    try:
        pattern = names.logs_of_service(p.project, service)
        before = await _stored_lines(bus, pattern)
        stored = asyncio.create_task(_stored_at(bus, pattern, before + lines))
        r = await asyncio.to_thread(
            subprocess.run, ["docker", "exec", cid, "touch", "/tmp/go"], capture_output=True
        )
        if r.returncode != 0:
            raise RuntimeError(f"docker exec failed: {r.stderr!r}")
        ours, direct = await asyncio.gather(*(rd.result(240) for rd in readers))
        stored_at = await stored
    finally:
        for rd in readers:
            await rd.kill()
    return Round(ours, direct, stored_at)


async def run(p: Platform, app_image: str) -> list[Row]:
    steady_env = {"MODE": "steady", "LINES": str(STEADY_LINES), "SLEEP_US": str(STEADY_SLEEP_US)}
    for service, env in (
        ("flood", {"MODE": "flood", "LINES": str(FLOOD_LINES)}),
        ("steady", steady_env),
    ):
        p.create(service)
        p.push(service, app_image)
        p.deploy(service, env)
    async with clients.session() as client:
        for service in ("flood", "steady"):
            await clients.first_ok(client, p.url(service), time.perf_counter())

    bus = await p.connect_bus()
    try:
        # steady first, while nothing else is in the pipeline
        steady = await _round(p, bus, "steady", STEADY_LINES)
        floods: list[Round] = []
        cpu_used: dict[str, float] = {}
        for i in range(FLOODS):
            before = p.cpu_seconds()
            async with p.profiled(f"logs-flood{i + 1}", "logs", "api"):
                floods.append(await _round(p, bus, "flood", FLOOD_LINES))
            after = p.cpu_seconds()
            for name in ("logs", "api", "nats"):
                cpu_used[name] = cpu_used.get(name, 0.0) + after[name] - before[name]
            f = floods[-1]
            log(
                f"logs flood {i + 1}/{FLOODS}: websocket {f.rate(f.ours):,.0f} lines/s "
                f"({f.ours['distinct']} lines; missing: {f.ours['gap_count']} runs, first "
                f"{f.ours['gaps'][:3]}; {f.ours['missed']} reported missed), "
                f"docker {f.rate(f.direct):,.0f} lines/s ({f.direct['distinct']} lines), "
                f"stored on NATS after {(f.stored_at or math.nan) - f.start:.1f} s"
            )
    finally:
        await bus.close()

    rate = steady.rate(steady.direct)
    lat_ours, lat_direct = steady.ours["latencies_ms"], steady.direct["latencies_ms"]
    log(
        f"logs steady: {rate:.0f} lines/s; websocket p50 {median(lat_ours):.1f} ms "
        f"p99 {percentile(lat_ours, 99):.1f} ms; docker p50 "
        f"{median(lat_direct):.1f} ms p99 {percentile(lat_direct, 99):.1f} ms"
    )
    every = [steady, *floods]
    expected = STEADY_LINES + FLOODS * FLOOD_LINES
    lost = expected - sum(r.ours["distinct"] for r in every)
    lost_direct = expected - sum(r.direct["distinct"] for r in every)
    missed = sum(r.ours["missed"] for r in every)
    stored_rates = [FLOOD_LINES / (f.stored_at - f.start) for f in floods if f.stored_at]
    per_line = {k: v / (FLOODS * FLOOD_LINES) * 1e6 for k, v in cpu_used.items()}
    log("logs flood CPU per line: " + ", ".join(f"{k} {v:.0f} µs" for k, v in per_line.items()))
    flood = f"flood of {FLOOD_LINES:,} lines, median of {FLOODS}"
    return [
        Row(
            f"logs: lines/s to a websocket vs read from docker ({flood})",
            median([f.rate(f.ours) for f in floods]),
            median([f.rate(f.direct) for f in floods]),
            "lines/s",
            target=Target("≥ 0.8x", "ratio", ">=", 0.8),
            digits=0,
        ),
        Row(
            "logs: lines/s stored on NATS by the collector vs read from docker",
            median(stored_rates),
            median([f.rate(f.direct) for f in floods]),
            "lines/s",
            digits=0,
        ),
        Row(
            "logs: CPU per flooded line, collector + api + nats ("
            + ", ".join(f"{k} {v:.0f}" for k, v in per_line.items())
            + ")",
            sum(per_line.values()),
            None,
            "µs",
            compare="none",
            digits=0,
        ),
        Row(
            f"logs: latency p50 at {rate:.0f} lines/s (printed → received)",
            median(lat_ours),
            median(lat_direct),
            "ms",
            compare="added",
            digits=1,
        ),
        Row(
            "logs: latency p99",
            percentile(lat_ours, 99),
            percentile(lat_direct, 99),
            "ms",
            compare="added",
            target=Target("≤ 100 ms", "value", "<=", 100.0),
            digits=1,
        ),
        Row(
            f"logs: lines lost of {expected:,} ({missed:,} announced as missed by the api)",
            float(lost),
            float(lost_direct),
            compare="none",
            target=Target("0", "value", "<=", 0),
            digits=0,
        ),
    ]

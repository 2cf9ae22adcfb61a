"""One log reader in its own process: `python -m bench.logreader ws|docker ...`.

The log benchmark runs the platform's reader (a websocket client of
`GET /services/<name>/logs/follow`) and the baseline (Docker's log API read
straight from /var/run/docker.sock) as two separate processes, so neither
one's parsing delays the other's clock. Each prints `ready` once connected,
then reads until it has `--lines` distinct lines or nothing arrived for
`--idle` seconds, and prints one JSON object with what it saw:

  first, last   wall-clock times of the first and last line received
  distinct      how many different lines (by number) arrived; missed: lines the
                api said it dropped for this client
  latencies_ms  for "t <epoch> <i>" lines: receive time minus printed time
  gaps          the first runs of line numbers that never arrived (and gap_count)

It reads only; it never writes to the platform or to Docker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp


@dataclass
class Seen:
    expected: int
    first: float = 0.0
    last: float = 0.0
    distinct: int = 0
    missed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    _numbers: set[int] = field(default_factory=set)

    def line(self, text: str, now: float) -> None:
        parts = text.split()
        if not parts:
            return
        try:
            if parts[0] == "t" and len(parts) == 3:
                self.latencies_ms.append((now - float(parts[1])) * 1000)
                number = int(parts[2])
            else:
                number = int(parts[0])
        except ValueError:
            return
        if number in self._numbers:
            return
        self._numbers.add(number)
        if not self.first:
            self.first = now
        self.last = now
        self.distinct += 1

    @property
    def done(self) -> bool:
        return self.distinct >= self.expected

    def gaps(self) -> list[tuple[int, int]]:
        """Runs of line numbers that never arrived, as (first, last)."""
        out: list[tuple[int, int]] = []
        start = None
        for n in range(1, self.expected + 1):
            if n in self._numbers:
                if start is not None:
                    out.append((start, n - 1))
                    start = None
            elif start is None:
                start = n
        if start is not None:
            out.append((start, self.expected))
        return out

    def result(self) -> str:
        d = asdict(self)
        d.pop("_numbers")
        d["gaps"] = self.gaps()[:20]
        d["gap_count"] = len(self.gaps())
        return json.dumps(d)


async def _until_done(seen: Seen, idle: float, messages: asyncio.Queue[None]) -> None:
    """Return when every line arrived, or nothing arrived for `idle` seconds."""
    while not seen.done:
        try:
            await asyncio.wait_for(messages.get(), idle)
        except TimeoutError:
            return


async def _pump_until_done(
    pump: Coroutine[Any, Any, None], beat: asyncio.Queue[None], seen: Seen, idle: float
) -> None:
    """Run a reader's pump (which beats per line) until the lines are all in or stop."""
    task = asyncio.create_task(pump)
    try:
        # the first beat comes only after "ready" has been printed and lines flow
        await _wait_first(beat, seen)
        await _until_done(seen, idle, beat)
    finally:
        task.cancel()


def _ready() -> None:
    print("ready", flush=True)


async def read_ws(url: str, token: str, seen: Seen, idle: float) -> None:
    beat: asyncio.Queue[None] = asyncio.Queue()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            url, headers={"X-Auth-Token": token}, protocols=("servicectl.v1",), max_msg_size=0
        ) as ws,
    ):

        async def pump() -> None:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.time()
                data = json.loads(msg.data)
                kind = data.get("type")
                if kind == "log":
                    seen.line(data["message"], now)
                    beat.put_nowait(None)
                elif kind == "missed":
                    seen.missed += int(data["count"])
                elif kind == "live":
                    _ready()

        await _pump_until_done(pump(), beat, seen, idle)


async def _wait_first(beat: asyncio.Queue[None], seen: Seen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not seen.distinct and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(beat.get(), 1.0)
        except TimeoutError:
            continue


async def read_docker(container: str, since: float, seen: Seen, idle: float) -> None:
    """Docker's multiplexed log stream: 8-byte frame headers, then the payload."""
    beat: asyncio.Queue[None] = asyncio.Queue()
    params = {
        "follow": "1",
        "stdout": "1",
        "stderr": "1",
        "since": f"{since:.6f}",
    }
    connector = aiohttp.UnixConnector(path="/var/run/docker.sock")
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.get(
            f"http://docker/containers/{container}/logs",
            params=params,
            timeout=aiohttp.ClientTimeout(total=None),
        ) as resp,
    ):
        resp.raise_for_status()
        _ready()

        async def pump() -> None:
            buf = b""
            partial = b""
            async for chunk in resp.content.iter_any():
                now = time.time()
                buf += chunk
                while len(buf) >= 8:
                    (size,) = struct.unpack(">I", buf[4:8])
                    if len(buf) < 8 + size:
                        break
                    payload, buf = buf[8 : 8 + size], buf[8 + size :]
                    text = partial + payload
                    *lines, partial = text.split(b"\n")
                    for line in lines:
                        seen.line(line.decode("utf-8", "replace"), now)
                beat.put_nowait(None)

        await _pump_until_done(pump(), beat, seen, idle)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.logreader")
    ap.add_argument("kind", choices=["ws", "docker"])
    ap.add_argument("target", help="websocket URL, or container id")
    ap.add_argument("--token", default="")
    ap.add_argument("--since", type=float, default=0.0)
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--idle", type=float, default=5.0)
    args = ap.parse_args()
    seen = Seen(expected=args.lines)
    if args.kind == "ws":
        asyncio.run(read_ws(args.target, args.token, seen, args.idle))
    else:
        asyncio.run(read_docker(args.target, args.since, seen, args.idle))
    print(seen.result(), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

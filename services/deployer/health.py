"""Health checks of running tasks: one probe loop per task, over loopback HTTP.

A new task is probed every few tens of milliseconds until its first success, so
it serves as soon as it is ready; after that at the service's interval. Three
failures in a row make a healthy task UNHEALTHY; one success makes it healthy
again. Every change of state calls `on_change(service_key)`. A probe loop
that fails unexpectedly is restarted with backoff (`shared.tasks.supervised`),
so a task's health never freezes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from services.deployer.model import HealthView
from shared.rules import status_code_matches
from shared.tasks import supervised

log = logging.getLogger(__name__)

FAST_INTERVAL_S = 0.025
UNHEALTHY_AFTER = 3


@dataclass(frozen=True)
class Probe:
    url: str
    path: str
    codes: tuple[tuple[int, int], ...]
    interval: float


async def probe_once(
    session: aiohttp.ClientSession, probe: Probe, timeout: float
) -> tuple[bool, str]:
    started = time.monotonic()
    try:
        async with session.get(
            probe.url,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            status = resp.status
            await resp.read()
    except TimeoutError:
        return False, f"GET {probe.path} timed out after {timeout:g} s"
    except aiohttp.ClientConnectorError as err:
        reason = err.os_error.strerror if err.os_error and err.os_error.strerror else str(err)
        return False, f"GET {probe.path}: {reason.lower()}"
    except (aiohttp.ClientError, OSError) as err:
        return False, f"GET {probe.path}: {type(err).__name__}: {err}"
    ms = (time.monotonic() - started) * 1000
    codes = ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in probe.codes)
    if status_code_matches(probe.codes, status):
        return True, f"GET {probe.path} returned {status} in {ms:.0f} ms"
    return False, f"GET {probe.path} returned {status}, expected {codes}"


ProbeOnce = Callable[[aiohttp.ClientSession, Probe, float], Awaitable[tuple[bool, str]]]
RESTART_DELAY_S = 0.1


class HealthMonitor:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        on_change: Callable[[str], None],
        probe: ProbeOnce = probe_once,
    ) -> None:
        self.session = session
        self.on_change = on_change
        self.probe = probe
        self.views: dict[str, HealthView] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._probes: dict[str, Probe] = {}

    def get(self, container_id: str) -> HealthView | None:
        return self.views.get(container_id)

    def watch(self, key: str, container_id: str, probe: Probe) -> None:
        """Keep probing this task (idempotent; the probe settings may change)."""
        self._probes[container_id] = probe
        running = self._loops.get(container_id)
        if running is not None and not running.done():
            return
        self.views.setdefault(container_id, HealthView(state="INITIAL", since=time.time()))
        name = f"health-{container_id[:12]}"
        self._loops[container_id] = asyncio.create_task(
            supervised(
                f"health probe of {container_id[:12]}",
                lambda: self._loop(key, container_id),
                first_delay=RESTART_DELAY_S,
                max_delay=5.0,
            ),
            name=name,
        )

    def forget(self, container_id: str) -> None:
        task = self._loops.pop(container_id, None)
        if task is not None:
            task.cancel()
        self._probes.pop(container_id, None)
        self.views.pop(container_id, None)

    def keep_only(self, container_ids: set[str]) -> None:
        for cid in list(self._loops):
            if cid not in container_ids:
                self.forget(cid)

    async def close(self) -> None:
        loops = list(self._loops.values())
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        self._loops.clear()

    def _set(self, key: str, container_id: str, view: HealthView) -> None:
        old = self.views.get(container_id)
        self.views[container_id] = view
        if old is None or old.state != view.state:
            self.on_change(key)

    async def _loop(self, key: str, container_id: str) -> None:
        failures = 0
        while True:
            probe = self._probes.get(container_id)
            view = self.views.get(container_id)
            if probe is None or view is None:
                return  # forgotten
            fast = view.state == "INITIAL"
            timeout = 2.0 if fast else max(1.0, min(5.0, probe.interval * 0.8))
            ok, description = await self.probe(self.session, probe, timeout)
            now = time.time()
            if ok:
                failures = 0
                since = view.since if view.state == "HEALTHY" else now
                self._set(key, container_id, HealthView("HEALTHY", description, since, True))
            else:
                failures += 1
                if view.state == "INITIAL":
                    self.views[container_id] = HealthView(
                        "INITIAL", description, view.since, view.healthy_once
                    )
                elif failures >= UNHEALTHY_AFTER or view.state == "UNHEALTHY":
                    since = view.since if view.state == "UNHEALTHY" else now
                    self._set(key, container_id, HealthView("UNHEALTHY", description, since, True))
                else:
                    self.views[container_id] = HealthView(
                        view.state, description, view.since, view.healthy_once
                    )
            await asyncio.sleep(FAST_INTERVAL_S if fast and not ok else probe.interval)

"""Health checks of running tasks: one probe loop per task, over loopback HTTP.

A new task is probed every few tens of milliseconds until its first success, so
it serves as soon as it is ready; after that at the service's interval. Three
failures in a row make a healthy task UNHEALTHY; one success makes it healthy
again. Every change of state calls `on_change(service_key)`. A probe loop
that fails unexpectedly is restarted with backoff (`shared.tasks.supervised`),
so a task's health never freezes.

Two mistakes are recognised while a new task starts, so that a deploy fails
in seconds with the right hint instead of at its deadline (`HealthView.fatal`):
the service's root (CONTEXT_ROOT) answering 404 again and again, and a task
that refuses connections while it listens on another port than
container-port (`diagnose` reads the ports it listens on).
"""

from __future__ import annotations

import asyncio
import logging
import os
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


ROOT_404_AFTER = 5  # answers in a row before a root's 404 fails a starting task
WRONG_PORT_AFTER_S = 1.5  # refusing connections this long: look at what the task listens on
DIAGNOSE_EVERY_S = 1.0


@dataclass(frozen=True)
class Probe:
    url: str
    path: str
    codes: tuple[tuple[int, int], ...]
    interval: float
    on_root: bool = False  # the path is the service's root (CONTEXT_ROOT) itself
    context_root: str = ""
    container_port: int = 0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    description: str
    status: int | None = None  # the HTTP status, if the task answered
    no_connection: bool = False  # refused or reset: nothing (or not this) listens


def _reason(err: BaseException) -> str:
    """An OS or HTTP client error in words (no exception class names)."""
    os_error = getattr(err, "os_error", None) or (err if isinstance(err, OSError) else None)
    if isinstance(os_error, OSError) and os_error.errno:
        return os.strerror(os_error.errno).lower()
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror.lower()
    text = str(err).strip()
    return text.lower() if text else "the connection failed"


async def probe_once(session: aiohttp.ClientSession, probe: Probe, timeout: float) -> ProbeResult:
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
        return ProbeResult(False, f"GET {probe.path} timed out after {timeout:g} s")
    except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as err:
        return ProbeResult(False, f"GET {probe.path}: {_reason(err)}", no_connection=True)
    except (aiohttp.ClientError, OSError) as err:
        reset = isinstance(err, ConnectionResetError) or "reset" in _reason(err)
        return ProbeResult(False, f"GET {probe.path}: {_reason(err)}", no_connection=reset)
    ms = (time.monotonic() - started) * 1000
    codes = ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in probe.codes)
    if status_code_matches(probe.codes, status) and not (probe.on_root and status == 404):
        return ProbeResult(True, f"GET {probe.path} returned {status} in {ms:.0f} ms", status)
    if probe.on_root and status == 404:
        return ProbeResult(
            False,
            f"GET {probe.path} returned 404: nothing answers at the service's CONTEXT_ROOT "
            f"{probe.context_root}",
            status,
        )
    return ProbeResult(False, f"GET {probe.path} returned {status}, expected {codes}", status)


def root_404_hint(probe: Probe) -> str:
    return (
        f"GET {probe.path} returned 404 every time: the service does not serve under its "
        f"CONTEXT_ROOT {probe.context_root} (every request reaches it with that prefix); make "
        f"it answer there, or give it a health check path it answers "
        f"(servicectl health NAME --path /healthz)"
    )


def wrong_port_hint(probe: Probe, ports: set[int]) -> str:
    listed = ", ".join(str(p) for p in sorted(ports))
    one = sorted(ports)[0]
    return (
        f"the task listens on {listed}, but container-port is {probe.container_port}: deploy "
        f"with --port {one} (container-port {one}), or make the service listen on $PORT"
    )


ProbeOnce = Callable[[aiohttp.ClientSession, Probe, float], Awaitable[ProbeResult]]
Diagnose = Callable[[str], Awaitable[set[int]]]  # container id -> ports it listens on
RESTART_DELAY_S = 0.1


class HealthMonitor:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        on_change: Callable[[str], None],
        probe: ProbeOnce = probe_once,
        diagnose: Diagnose | None = None,
    ) -> None:
        self.session = session
        self.on_change = on_change
        self.probe = probe
        self.diagnose = diagnose
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

    def _set(self, key: str, container_id: str, view: HealthView, force: bool = False) -> None:
        old = self.views.get(container_id)
        self.views[container_id] = view
        if force or old is None or old.state != view.state:
            self.on_change(key)

    async def _loop(self, key: str, container_id: str) -> None:
        failures = 0
        root_404s = 0
        refused_since: float | None = None
        diagnosed_at = 0.0
        while True:
            probe = self._probes.get(container_id)
            view = self.views.get(container_id)
            if probe is None or view is None:
                return  # forgotten
            fast = view.state == "INITIAL"
            timeout = 2.0 if fast else max(1.0, min(5.0, probe.interval * 0.8))
            result = await self.probe(self.session, probe, timeout)
            ok, description = result.ok, result.description
            now = time.time()
            if ok:
                failures = root_404s = 0
                refused_since = None
                since = view.since if view.state == "HEALTHY" else now
                self._set(key, container_id, HealthView("HEALTHY", description, since, True))
            else:
                failures += 1
                if view.state == "INITIAL":
                    fatal = view.fatal
                    root_404s = root_404s + 1 if probe.on_root and result.status == 404 else 0
                    if root_404s >= ROOT_404_AFTER:
                        fatal = root_404_hint(probe)
                    if result.no_connection:
                        refused_since = refused_since or now
                        late = now - refused_since >= WRONG_PORT_AFTER_S
                        if late and self.diagnose and now - diagnosed_at >= DIAGNOSE_EVERY_S:
                            diagnosed_at = now
                            ports = await self.diagnose(container_id)
                            if ports and probe.container_port not in ports:
                                fatal = wrong_port_hint(probe, ports)
                    else:
                        refused_since = None
                    updated = HealthView(
                        "INITIAL", description, view.since, view.healthy_once, fatal
                    )
                    if fatal and not view.fatal:
                        self._set(key, container_id, updated, force=True)
                    else:
                        self.views[container_id] = updated
                elif failures >= UNHEALTHY_AFTER or view.state == "UNHEALTHY":
                    since = view.since if view.state == "UNHEALTHY" else now
                    self._set(key, container_id, HealthView("UNHEALTHY", description, since, True))
                else:
                    self.views[container_id] = HealthView(
                        view.state, description, view.since, view.healthy_once
                    )
            await asyncio.sleep(FAST_INTERVAL_S if fast and not ok else probe.interval)

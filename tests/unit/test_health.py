"""Health probe loops: a loop that dies of an unexpected error comes back and keeps probing."""

from __future__ import annotations

import asyncio

import aiohttp

from services.deployer.health import HealthMonitor, Probe

PROBE = Probe("http://127.0.0.1:1/ctx", "/ctx", ((200, 399),), interval=0.01)


async def test_a_probe_loop_killed_by_an_exception_comes_back() -> None:
    attempts = 0
    changed: list[str] = []

    async def flaky(_s: aiohttp.ClientSession, _p: Probe, _t: float) -> tuple[bool, str]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("a bug in the probe")
        return True, "GET /ctx returned 200 in 1 ms"

    async with aiohttp.ClientSession() as session:
        monitor = HealthMonitor(session, changed.append, probe=flaky)
        try:
            monitor.watch("p.s", "c1", PROBE)
            for _ in range(200):
                view = monitor.get("c1")
                if view is not None and view.state == "HEALTHY":
                    break
                await asyncio.sleep(0.01)
            view = monitor.get("c1")
            assert view is not None and view.state == "HEALTHY", view
            assert attempts >= 2
            assert changed == ["p.s"]
        finally:
            await monitor.close()


async def test_watch_restarts_a_loop_that_ended() -> None:
    calls = 0

    async def ok(_s: aiohttp.ClientSession, _p: Probe, _t: float) -> tuple[bool, str]:
        nonlocal calls
        calls += 1
        return True, "fine"

    async with aiohttp.ClientSession() as session:
        monitor = HealthMonitor(session, lambda _k: None, probe=ok)
        try:
            monitor.watch("p.s", "c1", PROBE)
            await asyncio.sleep(0.05)
            monitor.forget("c1")
            seen = calls
            await asyncio.sleep(0.05)
            assert calls == seen  # forgotten: no more probes
            monitor.watch("p.s", "c1", PROBE)
            await asyncio.sleep(0.05)
            assert calls > seen
        finally:
            await monitor.close()

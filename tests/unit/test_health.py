"""Health probe loops: a loop that dies of an unexpected error comes back and keeps probing."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from services.deployer import health
from services.deployer.health import HealthMonitor, Probe, ProbeResult

PROBE = Probe("http://127.0.0.1:1/ctx", "/ctx", ((200, 399),), interval=0.01)


async def test_a_probe_loop_killed_by_an_exception_comes_back() -> None:
    attempts = 0
    changed: list[str] = []

    async def flaky(_s: aiohttp.ClientSession, _p: Probe, _t: float) -> ProbeResult:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("a bug in the probe")
        return ProbeResult(True, "GET /ctx returned 200 in 1 ms", 200)

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

    async def ok(_s: aiohttp.ClientSession, _p: Probe, _t: float) -> ProbeResult:
        nonlocal calls
        calls += 1
        return ProbeResult(True, "fine", 200)

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


ROOT = Probe(
    "http://127.0.0.1:1/p-s",
    "/p-s",
    ((200, 499),),
    interval=0.01,
    on_root=True,
    context_root="/p-s",
    container_port=8080,
)


async def wait_fatal(monitor: HealthMonitor) -> str:
    for _ in range(400):
        view = monitor.get("c1")
        if view is not None and view.fatal:
            return view.fatal
        await asyncio.sleep(0.01)
    raise AssertionError("no fatal verdict")


async def test_a_root_that_keeps_answering_404_is_fatal_and_names_context_root() -> None:
    async def not_found(_s: aiohttp.ClientSession, p: Probe, _t: float) -> ProbeResult:
        return ProbeResult(False, "GET /p-s returned 404", 404)

    async with aiohttp.ClientSession() as session:
        monitor = HealthMonitor(session, lambda _k: None, probe=not_found)
        try:
            monitor.watch("p.s", "c1", ROOT)
            fatal = await wait_fatal(monitor)
            assert "CONTEXT_ROOT /p-s" in fatal and "404" in fatal
        finally:
            await monitor.close()


async def test_a_task_listening_on_another_port_is_fatal_with_both_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "WRONG_PORT_AFTER_S", 0.05)
    monkeypatch.setattr(health, "DIAGNOSE_EVERY_S", 0.01)

    async def refused(_s: aiohttp.ClientSession, p: Probe, _t: float) -> ProbeResult:
        return ProbeResult(False, "GET /p-s: connection reset by peer", no_connection=True)

    async def ports(_cid: str) -> set[int]:
        return {9090}

    async with aiohttp.ClientSession() as session:
        monitor = HealthMonitor(session, lambda _k: None, probe=refused, diagnose=ports)
        try:
            monitor.watch("p.s", "c1", ROOT)
            fatal = await wait_fatal(monitor)
            assert "listens on 9090, but container-port is 8080" in fatal
            assert "Error" not in fatal
        finally:
            await monitor.close()


async def test_the_real_probe_says_what_a_refused_connection_is() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        probe = Probe(f"http://127.0.0.1:{port}/p-s", "/p-s", ((200, 399),), 1.0)
        async with aiohttp.ClientSession() as session:
            result = await health.probe_once(session, probe, 1.0)
    assert not result.ok and result.no_connection
    assert result.description == "GET /p-s: connection refused"

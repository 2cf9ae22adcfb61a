"""The log collector and the logs/events read side against the real platform.

Containers are run directly with `docker run`, carrying the stack's labels and
the uid of a service created through the API, so the collector follows them
(and the deployer leaves the running ones alone and removes exited ones once
their logs are complete). Every test removes what it started.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from clfpy import ServicesClient

from services.logs import timestamps
from shared import kv, names
from shared.models import LogCursor, ServiceRecord
from tests.client import Api
from tests.stack import Stack, wait_for


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def image(busybox_context: Path) -> Iterator[str]:
    tag = f"servicectl-logs-test-{uuid.uuid4().hex[:8]}:1"
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(busybox_context)], check=True, capture_output=True
    )
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


class Containers:
    """Starts labelled containers for one service and removes them at the end."""

    def __init__(self, stack: Stack, image: str, project: str, service: str, uid: str) -> None:
        self.stack, self.image = stack, image
        self.project, self.service, self.uid = project, service, uid
        self.ids: list[str] = []

    def run(self, task: str, script: str) -> str:
        labels = {
            names.LABEL_INSTANCE: self.stack.instance,
            names.LABEL_PROJECT: self.project,
            names.LABEL_SERVICE: self.service,
            names.LABEL_SERVICE_UID: self.uid,
            names.LABEL_REVISION: "1",
            names.LABEL_TASK: task,
        }
        argv = ["docker", "run", "-d"]
        for k, v in labels.items():
            argv += ["--label", f"{k}={v}"]
        argv += [self.image, "sh", "-c", script]
        cid = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()
        self.ids.append(cid)
        return cid

    def remove(self) -> None:
        if self.ids:
            subprocess.run(["docker", "rm", "-f", *self.ids], capture_output=True)


async def _service_uid(stack: Stack, project: str, name: str) -> str:
    async with stack.bus("test-logs") as bus:
        found = await kv.get(bus.kv.services, names.service_key(project, name), ServiceRecord)
    assert found is not None
    return found.value.uid


async def _cursor(stack: Stack, cid: str) -> LogCursor | None:
    async with stack.bus("test-logs") as bus:
        found = await kv.get(bus.kv.log_cursors, names.log_cursor_key(cid), LogCursor)
    return found.value if found else None


def wait_done(stack: Stack, cid: str, timeout: float = 30.0) -> LogCursor:
    def done() -> bool:
        cursor = asyncio.run(_cursor(stack, cid))
        return cursor is not None and cursor.done

    wait_for(done, timeout, f"the collector to finish {cid[:12]}", interval=0.2)
    cursor = asyncio.run(_cursor(stack, cid))
    assert cursor is not None
    return cursor


@pytest.fixture
def svc(api: Api, stack: Stack, project: str, image: str) -> Iterator[Containers]:
    name = "logs" + uuid.uuid4().hex[:4]
    assert api.post("/services", json={"name": name}).status_code == 201
    uid = asyncio.run(_service_uid(stack, project, name))
    c = Containers(stack, image, project, name, uid)
    yield c
    c.remove()


def numbered(prefix: str, count: int, pause_every: int = 0, pause_us: int = 0) -> str:
    """A shell script printing '<prefix> 1' .. '<prefix> <count>' on stdout."""
    if not pause_every:
        return f"seq 1 {count} | sed 's/^/{prefix} /'"
    return (
        f'i=0; while [ $i -lt {count} ]; do i=$((i+1)); echo "{prefix} $i"; '
        f"if [ $((i % {pause_every})) -eq 0 ]; then usleep {pause_us}; fi; done"
    )


def logs_view(api: Api, name: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"/services/{name}", params={"view": "logs", **params})
    assert r.status_code == 200, r.text
    logs: list[dict[str, Any]] = r.json()["logs"]
    return logs


def ws_url(stack: Stack, name: str, what: str = "logs", **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{stack.api_url}/servicectl-1/services/{name}/{what}/follow?{query}"


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, count: int, timeout: float
) -> list[dict[str, Any]]:
    """JSON messages of type 'log' until `count` arrived (other types are kept too)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while sum(1 for m in got if m.get("type") == "log") < count:
        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg, len(got))
        got.append(json.loads(msg.data))
    return got


# ------------------------------------------------------------------ REST view
def test_rest_view_returns_exactly_the_last_lines(svc: Containers, api: Api) -> None:
    first = svc.run("task1", numbered("first", 120))
    wait_done(svc.stack, first)
    cid = svc.run("task2", numbered("line", 300))
    cursor = wait_done(svc.stack, cid)
    assert (cursor.line_no, cursor.task, cursor.service) == (300, "task2", svc.service)

    (stream,) = logs_view(api, svc.service, tail=50)
    assert stream["stream_name"] == "task2"
    events = stream["log_events"]
    assert [e["message"] for e in events] == [f"line {i}" for i in range(251, 301)]
    assert [e["n"] for e in events] == list(range(251, 301))
    assert {e["stream"] for e in events} == {"stdout"}
    assert all(len(e["time"]) == 24 and e["time"].endswith("Z") for e in events)

    assert len(logs_view(api, svc.service)[0]["log_events"]) == 20  # the default
    assert logs_view(api, svc.service, tail=0)[0]["log_events"] == []
    everything = logs_view(api, svc.service, tail=10000)[0]["log_events"]
    assert [e["message"] for e in everything] == [f"line {i}" for i in range(1, 301)]

    newest_first = logs_view(api, svc.service, tail=3, streams=5)
    assert [s["stream_name"] for s in newest_first] == ["task2", "task1"]
    assert [e["message"] for e in newest_first[1]["log_events"]] == [
        "first 118",
        "first 119",
        "first 120",
    ]


def test_stderr_and_over_long_lines(svc: Containers, api: Api, stack: Stack) -> None:
    cid = svc.run(
        "t1",
        "echo out; sleep 0.2; echo err >&2; sleep 0.2; "
        "head -c 20000 /dev/zero | tr '\\0' a; echo; printf 'no newline at the end'",
    )
    wait_done(stack, cid)
    events = logs_view(api, svc.service, tail=100)[0]["log_events"]
    assert [(e["stream"], e["message"]) for e in events[:2]] == [
        ("stdout", "out"),
        ("stderr", "err"),
    ]
    long = [e["message"] for e in events[2:-1]]
    limit = stack.settings.log_max_line_bytes
    assert len(long) == 3  # Docker cut it at 16 KiB, the collector at 8 KiB
    assert long[0].endswith(" [continued]") and long[-1].startswith("[continued] ")
    text = "".join(m.removeprefix("[continued] ").removesuffix(" [continued]") for m in long)
    assert text == "a" * 20000
    assert all(len(m.encode()) <= limit + 30 for m in long)
    assert events[-1]["message"] == "no newline at the end"


def test_logs_of_a_removed_container_are_still_there(svc: Containers, api: Api) -> None:
    cid = svc.run("gone", numbered("bye", 10))
    wait_done(svc.stack, cid)
    subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    (stream,) = logs_view(api, svc.service, tail=5)
    assert stream["stream_name"] == "gone"
    assert [e["message"] for e in stream["log_events"]] == [f"bye {i}" for i in range(6, 11)]


def test_clfpy_prints_the_logs(
    svc: Containers, api: Api, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    cid = svc.run("clf", numbered("hello", 30))
    wait_done(stack, cid)
    assert api.token is not None
    ServicesClient(stack.api_base).print_service_logs(api.token, svc.service, tail=5)
    out = capsys.readouterr().out
    assert "Events for log stream 1/1 - clf:" in out
    assert out.count(": hello ") == 5 and ": hello 30" in out and ": hello 25" not in out


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tail": "-1"}, "tail must be between 0 and 10000"),
        ({"tail": "10001"}, "tail must be between 0 and 10000"),
        ({"tail": "ten"}, "tail must be an integer"),
        ({"tail": "1.0"}, "tail must be an integer"),
        ({"streams": "0"}, "streams must be between 1 and 100"),
        ({"streams": "101"}, "streams must be between 1 and 100"),
        ({"streams": "x"}, "streams must be an integer"),
        ({"tail": "10000", "streams": "11"}, "tail * streams must be at most 100000"),
    ],
)
def test_bad_log_parameters_are_400(api: Api, params: dict[str, str], message: str) -> None:
    api.post("/services", json={"name": "bad"})
    r = api.get("/services/bad", params={"view": "logs", **params})
    assert r.status_code == 400, r.text
    assert message in r.json()["Error"]


def test_follow_endpoints_refuse_plain_http_and_strangers(api: Api, other_api: Api) -> None:
    api.post("/services", json={"name": "plain"})
    for what in ("logs", "events"):
        r = api.get(f"/services/plain/{what}/follow")
        assert r.status_code == 400 and "websocket" in r.json()["Error"]
        r = api.get(f"/services/plain/{what}/follow", params={"tail": "-5"})
        assert r.status_code == 400 and "tail" in r.json()["Error"]
        assert other_api.get(f"/services/plain/{what}/follow").status_code == 404
        r = requests.get(f"{api.base}/services/plain/{what}/follow", timeout=10)
        assert r.status_code == 403 and "token" in r.json()["Error"]


# ------------------------------------------------------------------ websocket tails
async def test_follow_gets_every_line_once_across_replacement(
    svc: Containers, api: Api, stack: Stack
) -> None:
    name = svc.service
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url(stack, name), headers={"X-Auth-Token": api.token or ""})
        # a second client authenticates with the subprotocol instead of a header
        ws2 = await http.ws_connect(
            ws_url(stack, name), protocols=("servicectl.v1", f"servicectl.token.{api.token}")
        )
        assert ws2.protocol == "servicectl.v1"
        for w in (ws, ws2):
            assert json.loads((await w.receive(timeout=10)).data) == {"type": "live"}
        svc.run("old", numbered("old", 400, pause_every=5, pause_us=20000))
        await asyncio.sleep(0.3)
        svc.run("new", numbered("new", 400, pause_every=5, pause_us=20000))
        got = await receive_until(ws, 800, timeout=60)
        got2 = await receive_until(ws2, 800, timeout=10)
        await ws.close()
        await ws2.close()
    for messages in (got, got2):
        assert not [m for m in messages if m["type"] != "log"], "nothing missed"
        for task in ("old", "new"):
            mine = [m for m in messages if m["task"] == task]
            assert [m["n"] for m in mine] == list(range(1, 401))
            assert [m["message"] for m in mine] == [f"{task} {i}" for i in range(1, 401)]
    order = [m["task"] for m in got]
    last_old = len(order) - 1 - order[::-1].index("old")
    assert order.index("new") < last_old, "the replacement printed while the old task did"


async def test_a_client_that_does_not_read_holds_up_nobody_and_later_gets_every_line(
    svc: Containers, api: Api, stack: Stack
) -> None:
    total = 20000  # ~3 MB of websocket messages: far more than the outbox and socket buffers
    name = svc.service
    async with aiohttp.ClientSession() as http:
        stalled = await http.ws_connect(ws_url(stack, name, token=api.token))
        reader = await http.ws_connect(ws_url(stack, name, token=api.token))
        assert json.loads((await reader.receive(timeout=10)).data) == {"type": "live"}
        cid = svc.run("flood", numbered("line", total))
        got = await receive_until(reader, total, timeout=60)  # while `stalled` reads nothing
        cursor = await asyncio.to_thread(wait_done, stack, cid, 60)
        late = await receive_until(stalled, total, timeout=60)
        await stalled.close()
        await reader.close()
    assert cursor.line_no == total
    for messages in (got, late):
        lines = [m for m in messages if m["type"] == "log"]
        assert [m["message"] for m in lines] == [f"line {i}" for i in range(1, total + 1)]
        assert [m["type"] for m in messages if m["type"] != "log"] in ([], ["live"])


async def test_follow_backlog_then_close_on_delete(svc: Containers, api: Api, stack: Stack) -> None:
    cid = svc.run("b", numbered("b", 50))
    await asyncio.to_thread(wait_done, stack, cid)
    await asyncio.to_thread(svc.remove)
    name = svc.service
    async with aiohttp.ClientSession() as http:
        logs = await http.ws_connect(ws_url(stack, name, tail=10, token=api.token))
        events = await http.ws_connect(ws_url(stack, name, "events", tail=10, token=api.token))
        backlog = await receive_until(logs, 10, timeout=10)
        assert [m["message"] for m in backlog if m["type"] == "log"] == [
            f"b {i}" for i in range(41, 51)
        ]
        first = json.loads((await events.receive(timeout=10)).data)
        assert first["type"] == "service.created" and first["service"] == name
        r = await asyncio.to_thread(api.delete, f"/services/{name}")
        assert r.status_code in (200, 202)
        seen: list[str] = []
        while True:
            msg = await events.receive(timeout=20)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            seen.append(json.loads(msg.data)["type"])
        assert msg.type == aiohttp.WSMsgType.CLOSE, msg
        assert events.close_code == 4404 and "deleted" in str(msg.extra)
        assert "service.deleting" in seen
        while (msg := await logs.receive(timeout=20)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert logs.close_code == 4404


async def test_follow_closes_when_the_token_is_revoked(api: Api, stack: Stack) -> None:
    api.post("/services", json={"name": "revoke"})
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            ws_url(stack, "revoke", "events", tail=5),
            headers={"Authorization": f"Bearer {api.token}"},
        )
        assert json.loads((await ws.receive(timeout=10)).data)["type"] == "service.created"
        assert json.loads((await ws.receive(timeout=10)).data) == {"type": "live"}
        r = await asyncio.to_thread(api.delete, "/auth/tokens/current")
        assert r.status_code == 200
        while (msg := await ws.receive(timeout=15)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert ws.close_code == 4403 and "revoked" in str(msg.extra)
        bad = await http.get(ws_url(stack, "revoke", token=api.token))
        assert bad.status == 403


async def test_api_shutdown_closes_tails_going_away(api: Api, stack: Stack) -> None:
    api.post("/services", json={"name": "bye"})
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url(stack, "bye", token=api.token))
        assert json.loads((await ws.receive(timeout=10)).data) == {"type": "live"}
        stop = asyncio.create_task(asyncio.to_thread(stack.procs["api"].stop))
        msg = await ws.receive(timeout=15)
        await stop
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
    await asyncio.to_thread(stack.procs["api"].start)


# ------------------------------------------------------------------ restarts and load
def test_collector_kill_loses_and_repeats_nothing(svc: Containers, api: Api, stack: Stack) -> None:
    total = 3000
    cid = svc.run("busy", numbered("line", total, pause_every=10, pause_us=10000))
    collector = stack.procs["logs"]
    for _ in range(2):
        time.sleep(0.8)
        collector.kill()
        time.sleep(0.3)
        collector.start()
    cursor = wait_done(stack, cid, timeout=60)
    assert cursor.line_no == total
    events = logs_view(api, svc.service, tail=10000)[0]["log_events"]
    assert [e["message"] for e in events] == [f"line {i}" for i in range(1, total + 1)]
    assert [e["n"] for e in events] == list(range(1, total + 1))


async def test_nats_restart_loses_and_repeats_nothing(
    svc: Containers, api: Api, stack: Stack
) -> None:
    total = 2000
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url(stack, svc.service, token=api.token))
        assert json.loads((await ws.receive(timeout=10)).data) == {"type": "live"}
        cid = svc.run("steady", numbered("line", total, pause_every=10, pause_us=10000))
        await asyncio.sleep(0.8)
        await asyncio.to_thread(stack.procs["nats"].restart)
        # the websocket tail rides through the restart as well
        got = await receive_until(ws, total, timeout=60)
        await ws.close()
    assert [m["message"] for m in got if m["type"] == "log"] == [
        f"line {i}" for i in range(1, total + 1)
    ]
    cursor = await asyncio.to_thread(wait_done, stack, cid, 60)
    assert cursor.line_no == total
    events = (await asyncio.to_thread(logs_view, api, svc.service, tail=10000))[0]["log_events"]
    assert [e["message"] for e in events] == [f"line {i}" for i in range(1, total + 1)]


def test_publishing_rate(svc: Containers, api: Api, stack: Stack) -> None:
    """Measured: lines/s from the container's start to `done` (it prints them in ~0.1 s)."""
    total = 30000
    cid = svc.run("fast", numbered("line", total))
    started = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", cid],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    wait_done(stack, cid, timeout=60)
    elapsed = time.time() - timestamps.seconds(started)
    print(f"\n{total} lines published in {elapsed:.2f}s ({total / elapsed:.0f} lines/s)")
    tail = logs_view(api, svc.service, tail=3)[0]["log_events"]
    assert [e["n"] for e in tail] == [total - 2, total - 1, total]
    assert elapsed < 30

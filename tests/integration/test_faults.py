"""Fault injection: SIGKILL every platform process, and restart dockerd, during activity.

A dedicated platform runs three services: `steady` (hammered with requests
through the gateway the whole time), `chatty` (prints a numbered line every
40 ms) and `busy` (updated right before each fault, so a deploy is in flight).
After each fault and restart, everything must converge; no record, revision or
event may be lost; no log line lost or duplicated; and requests to `steady`
keep succeeding wherever the data plane (HAProxy, the containers) was untouched.
Run alone with `make test-faults`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared import names
from tests import apps
from tests.client import Api, login, make_user, unique
from tests.deploying import Hammer, definition, get, push, status, url, wait_for, wait_text
from tests.stack import Stack

pytestmark = [pytest.mark.faults, pytest.mark.integration]

KILLS = ["api", "deployer", "logs", "gateway", "registry", "nats", "haproxy"]
DATA_PLANE = {"haproxy"}  # killing it fails requests until it is back (see docs/GATEWAY.md)


@dataclass
class World:
    stack: Stack
    api: Api
    project: str
    accepted: dict[str, int]  # service -> revisions accepted so far


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("faults")
    stack = Stack(base)
    try:
        stack.start()
        project = unique("f")
        user, pw = make_user(stack, project)
        api = Api(stack, login(stack, user, pw, project))
        image = apps.build_image(base / "app")
        envs = {
            "steady": {"GREETING": "steady"},
            "chatty": {"MODE": "count", "COUNT_SLEEP_US": "40000"},
            "busy": {"GREETING": "busy-0"},
        }
        for name, env in envs.items():
            assert api.post("/services", json={"name": name}).status_code == 201
            push(api, name, image, "v1", base / "docker")
            assert api.put(f"/services/{name}", json=definition("v1", env)).status_code == 200
        wait_text(stack, project, "steady", "steady from")
        wait_text(stack, project, "busy", "busy-0 from")
        wait_text(stack, project, "chatty", "hello from")
        yield World(stack, api, project, {name: 1 for name in envs})
    except BaseException:
        print(stack.logs(80))
        raise
    finally:
        stack.stop()
        stack.remove_docker_objects()


def events_of(stack: Stack, project: str, service: str) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        async with stack.bus("faults-test") as bus:
            subject = names.events_subject(project, service)
            stored = await bus.streams.read_from(names.STREAM_EVENTS, subject, 1, 10_000)
            return [(m.time, m.data.decode()) for m in stored]

    return asyncio.run(read())


def chatty_numbers(api: Api) -> dict[str, list[int]]:
    """Line numbers printed by each task of `chatty`, as the platform returns them."""
    r = api.get("/services/chatty", params={"view": "logs", "tail": "10000", "streams": "10"})
    assert r.status_code == 200, r.text
    out: dict[str, list[int]] = {}
    for stream in r.json()["logs"]:
        found = [re.fullmatch(r"line (\d+)", e["message"].strip()) for e in stream["log_events"]]
        out[stream["stream_name"]] = [int(m.group(1)) for m in found if m]
    return out


def assert_lines_exactly_once(numbers: dict[str, list[int]]) -> None:
    assert numbers, "no log lines at all"
    for task, seq in numbers.items():
        assert seq, task
        gaps = [(a, b) for a, b in itertools.pairwise(seq) if b != a + 1]
        assert not gaps, f"task {task}: lines missing or repeated around {gaps[:5]}"


def snapshot(world: World) -> dict[str, object]:
    api = world.api
    return {
        "services": sorted(s["name"] for s in api.get("/services").json()),
        "revisions": {
            name: [
                r["revision"] for r in api.get(f"/services/{name}/revisions").json()["revisions"]
            ]
            for name in world.accepted
        },
    }


def converge(world: World, greeting: str) -> None:
    stack, project = world.stack, world.project
    wait_text(stack, project, "busy", f"{greeting} from", timeout=90)
    wait_text(stack, project, "steady", "steady from", timeout=60)
    wait_text(stack, project, "chatty", "hello from", timeout=60)

    def statuses_settled() -> bool:
        for name, revision in world.accepted.items():
            st = status(world.api, name)
            running = [t for t in st["tasks"] if t["last_status"] == "RUNNING"]
            if st["serving_revision"] != revision or len(running) != 1:
                return False
        return True

    wait_for(statuses_settled, 90, "every service to settle on its last revision")


@pytest.mark.parametrize("component", KILLS)
def test_sigkill_during_activity(world: World, component: str) -> None:
    stack, api = world.stack, world.api
    events_before = {n: events_of(stack, world.project, n) for n in world.accepted}
    before = snapshot(world)
    greeting = f"busy-{component}"
    with Hammer(url(stack, world.project, "steady")) as hammer:
        time.sleep(0.3)
        r = api.put("/services/busy", json=definition("v1", {"GREETING": greeting}))
        assert r.status_code == 200, r.text
        world.accepted["busy"] += 1
        time.sleep(0.2)  # the deploy is under way
        stack.procs[component].kill()
        time.sleep(1.5)
        stack.procs[component].start()
        converge(world, greeting)
        time.sleep(0.5)
    if component not in DATA_PLANE:
        assert hammer.failures == [], hammer.failures[:5]
    assert hammer.ok > 0
    after = snapshot(world)
    assert after["services"] == before["services"]
    for name, revisions in before["revisions"].items():  # type: ignore[union-attr]
        assert after["revisions"][name][: len(revisions)] == revisions  # type: ignore[index]
    assert after["revisions"]["busy"] == list(range(1, world.accepted["busy"] + 1))  # type: ignore[index]
    for name, old in events_before.items():
        now = events_of(stack, world.project, name)
        assert now[: len(old)] == old, f"events of {name} lost or changed"
    assert_lines_exactly_once(chatty_numbers(api))


def _dockerd_cmdline() -> tuple[int, list[str]]:
    out = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    assert out, "no dockerd process found"
    pid = int(out[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return pid, [a.decode() for a in argv if a]


def test_dockerd_restart(world: World, tmp_path: Path) -> None:
    """Containers die with the engine (no live-restore); the platform brings them back."""
    stack, api = world.stack, world.api
    before_lines = chatty_numbers(api)
    r = api.put("/services/busy", json=definition("v1", {"GREETING": "busy-dockerd"}))
    assert r.status_code == 200
    world.accepted["busy"] += 1
    time.sleep(0.2)
    pid, argv = _dockerd_cmdline()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 60, "dockerd to exit")
    log = open(tmp_path / "dockerd.log", "ab")
    subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    wait_for(
        lambda: subprocess.run(["docker", "info"], capture_output=True).returncode == 0,
        60,
        "dockerd to answer again",
    )
    converge(world, "busy-dockerd")
    assert get(url(stack, world.project, "steady")).status_code == 200
    after_lines = chatty_numbers(api)
    assert_lines_exactly_once(after_lines)
    # what was printed before the restart is all still there (beyond what retention cut)
    for task, seq in before_lines.items():
        kept = after_lines.get(task, [])
        assert kept, f"the lines of task {task} are gone"
        assert {n for n in seq if n >= kept[0]} <= set(kept)

"""The platform on a 3-node Swarm: placement, scaling, replaces, node loss, logs, deletion.

The deployer drives the test cluster's manager (SERVICECTL_ENGINE=swarm), a
log collector runs on every node, the gateway reaches tasks at their nodes'
addresses. Nodes: 2048, 2048 and 1024 MB.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from deploy.cluster import Cluster
from shared import names
from tests import apps
from tests.client import Api, login, make_user, unique
from tests.deploying import Hammer, definition, get, status, url, wait_event, wait_for
from tests.multistack import MultiStack


@pytest.fixture(scope="module")
def mstack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiStack]:
    s = MultiStack(tmp_path_factory.mktemp("mstack"), cluster)
    try:
        s.start(s.components)
        yield s
    except BaseException:
        print(s.logs())
        raise
    finally:
        s.stop()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return apps.build_image(tmp_path_factory.mktemp("app"))


@pytest.fixture
def mproject() -> str:
    return unique("m")


@pytest.fixture
def mapi(mstack: MultiStack, mproject: str) -> Api:
    user, pw = make_user(mstack, mproject)
    return Api(mstack, login(mstack, user, pw, mproject))


def deploy(
    mstack: MultiStack,
    api: Api,
    name: str,
    image: str,
    tmp: Path,
    env: dict[str, str] | None = None,
    **kw: Any,
) -> int:
    if api.get(f"/services/{name}").status_code == 404:
        assert api.post("/services", json={"name": name}).status_code == 201
        mstack.push(api, name, image, "v1", tmp / name)
    r = api.put(f"/services/{name}", json=definition("v1", env, **kw))
    assert r.status_code == 200, r.text
    return int(r.json()["revision"])


def scale(api: Api, name: str, count: int) -> None:
    r = api.request("PATCH", f"/services/{name}", json={"count": count})
    assert r.status_code == 200, r.text


def healthy(api: Api, name: str, n: int, timeout: float = 90) -> list[dict[str, Any]]:
    """Wait until exactly `n` tasks run healthy; them."""

    def check() -> list[dict[str, Any]] | None:
        st = status(api, name)
        ok = [t for t in st["tasks"] if t["last_status"] == "RUNNING" and t["health"] == "healthy"]
        return ok if len(ok) == n and len(st["target_health"]["targets"]) == n else None

    return wait_for(check, timeout, f"{n} healthy tasks of {name}", interval=0.3)


def served(mstack: MultiStack, project: str, name: str, text: str, tries: int = 12) -> None:
    for _ in range(tries):
        r = get(url(mstack, project, name))
        assert r.status_code == 200 and text in r.text, (r.status_code, r.text)


def swarm_services(mstack: MultiStack, project: str, name: str) -> list[str]:
    out = mstack.cluster.docker(
        1,
        "service",
        "ls",
        "-q",
        "--filter",
        f"label={names.LABEL_INSTANCE}={mstack.instance}",
        "--filter",
        f"label={names.LABEL_PROJECT}={project}",
        "--filter",
        f"label={names.LABEL_SERVICE}={name}",
    )
    return str(out.stdout).split()


def containers_on(mstack: MultiStack, i: int, project: str) -> list[str]:
    out = mstack.cluster.docker(
        i, "ps", "-aq", "--filter", f"label={names.LABEL_PROJECT}={project}"
    )
    return str(out.stdout).split()


def test_three_tasks_spread_over_three_nodes_and_are_served(
    mstack: MultiStack, mapi: Api, mproject: str, image: str, tmp_path: Path
) -> None:
    deploy(mstack, mapi, "spread", image, tmp_path, {"GREETING": "spread"})
    scale(mapi, "spread", 3)
    tasks = healthy(mapi, "spread", 3)
    nodes = {n.address for n in mstack.cluster.nodes}
    assert {t["host"] for t in tasks} == nodes  # Swarm spreads them
    served(mstack, mproject, "spread", "spread from")
    assert status(mapi, "spread")["count_desired"] == 3


def test_scaling_up_and_down_keeps_the_survivors(
    mstack: MultiStack, mapi: Api, mproject: str, image: str, tmp_path: Path
) -> None:
    deploy(mstack, mapi, "elastic", image, tmp_path)
    first = {t["task_name"] for t in healthy(mapi, "elastic", 1)}
    scale(mapi, "elastic", 3)
    grown = {t["task_name"] for t in healthy(mapi, "elastic", 3)}
    assert first <= grown
    scale(mapi, "elastic", 2)
    shrunk = {t["task_name"] for t in healthy(mapi, "elastic", 2)}
    assert shrunk <= grown and first <= shrunk  # the newest went, the first stayed
    wait_for(lambda: len(swarm_services(mstack, mproject, "elastic")) == 2, 30, "2 services")
    types = [e["type"] for e in status(mapi, "elastic")["events"]]
    assert "service.scaled" in types and "task.stopped" in types


def test_a_reservation_that_fits_nowhere_waits_with_swarms_reason(
    mstack: MultiStack, mapi: Api, image: str, tmp_path: Path
) -> None:
    # 1500 MB fits each 2048 MB node once: the third task fits nowhere
    deploy(mstack, mapi, "big", image, tmp_path, reservation=1500, limit=1600)
    healthy(mapi, "big", 1)
    scale(mapi, "big", 3)
    healthy(mapi, "big", 2)
    pending = wait_event(mapi, "big", "deployment.pending", timeout=30)
    assert "no suitable node" in pending["message"], pending
    st = status(mapi, "big")
    assert st["count_pending"] >= 1
    assert [t for t in st["tasks"] if t["last_status"] == "PENDING"]
    # too big for any node: refused at once, naming the largest
    r = mapi.put("/services/big", json=definition("v1", reservation=4096, limit=4096))
    assert r.status_code == 400 and "no host has more than 2048 MB" in r.json()["Error"]
    scale(mapi, "big", 0)


def test_a_replace_of_three_tasks_across_nodes_drops_no_request(
    mstack: MultiStack, mapi: Api, mproject: str, image: str, tmp_path: Path
) -> None:
    deploy(mstack, mapi, "rolling", image, tmp_path, {"GREETING": "one"})
    scale(mapi, "rolling", 3)
    healthy(mapi, "rolling", 3)
    hammers = [Hammer(url(mstack, mproject, "rolling")) for _ in range(3)]
    for h in hammers:
        h.__enter__()
    try:
        revision = deploy(mstack, mapi, "rolling", image, tmp_path, {"GREETING": "two"})
        wait_for(
            lambda: (
                (status(mapi, "rolling").get("deployment") or {}).get("status") == "COMPLETED"
                and status(mapi, "rolling")["serving_revision"] == revision
            ),
            120,
            "the replace",
            interval=0.5,
        )
        time.sleep(1)
    finally:
        for h in hammers:
            h.__exit__()
    failures = [f for h in hammers for f in h.failures]
    assert failures == []
    assert sum(h.ok for h in hammers) > 50
    assert {b for h in hammers for b in h.bodies} >= {
        f"one from /{mproject}-rolling",
        f"two from /{mproject}-rolling",
    }
    served(mstack, mproject, "rolling", "two from")


def test_logs_follow_sees_every_nodes_tasks(
    mstack: MultiStack, mapi: Api, image: str, tmp_path: Path
) -> None:
    deploy(mstack, mapi, "chatty", image, tmp_path, {"MODE": "count", "COUNT_SLEEP_US": "200000"})
    scale(mapi, "chatty", 3)
    tasks = healthy(mapi, "chatty", 3)
    wanted = {t["task_name"] for t in tasks}

    async def follow() -> set[str]:
        seen: set[str] = set()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"{mstack.api_url}/servicectl-1/services/chatty/logs/follow?tail=50",
                headers={"X-Auth-Token": mapi.token or ""},
            ) as ws,
        ):
            deadline = time.monotonic() + 30
            while not wanted <= seen and time.monotonic() < deadline:
                msg = await ws.receive(timeout=10)
                data = json.loads(msg.data)
                if data.get("type") == "log":
                    seen.add(data["task"])
        return seen

    assert wanted <= asyncio.run(follow())


def test_a_node_lost_moves_its_tasks_to_the_others(
    mstack: MultiStack, mapi: Api, mproject: str, image: str, tmp_path: Path
) -> None:
    deploy(mstack, mapi, "survivor", image, tmp_path, {"GREETING": "alive"})
    scale(mapi, "survivor", 3)
    tasks = healthy(mapi, "survivor", 3)
    # Swarm spreads by tasks per node over all services, so pick a worker that holds one
    hosts = {t["host"] for t in tasks}
    workers = [n for n in mstack.cluster.nodes if n.index != 1 and n.address in hosts]
    assert workers, f"3 tasks and none on a worker node: {hosts}"
    victim = workers[0]
    lost_at = time.monotonic()
    mstack.cluster.link_down(victim.index)
    try:

        def elsewhere() -> list[dict[str, Any]] | None:
            tasks = healthy(mapi, "survivor", 3, timeout=120)
            return tasks if victim.address not in {t["host"] for t in tasks} else None

        moved = wait_for(elsewhere, 120, "3 healthy tasks on the other nodes", interval=0.3)
        window = time.monotonic() - lost_at
        assert {t["host"] for t in moved} <= {n.address for n in mstack.cluster.nodes} - {
            victim.address
        }
        served(mstack, mproject, "survivor", "alive from")
        exited = wait_event(mapi, "survivor", "task.exited", timeout=10)
        assert "lost with its node" in exited["message"], exited
        print(f"node loss: 3 healthy tasks on the other nodes after {window:.1f} s")
    finally:
        mstack.cluster.link_up(victim.index)


def test_crashes_restart_with_backoff_and_an_oom_kill_names_the_limit(
    mstack: MultiStack, mapi: Api, mproject: str, image: str, tmp_path: Path
) -> None:
    deploy(mstack, mapi, "crashy", image, tmp_path, {"MODE": "crash-later", "CRASH_AFTER": "2"})
    exited = wait_event(mapi, "crashy", "task.exited", timeout=60)
    assert "exited with code" in exited["message"], exited
    restarting = wait_event(mapi, "crashy", "task.restarting", timeout=30)
    assert restarting["message"], restarting
    wait_for(
        lambda: "hello from" in get(url(mstack, mproject, "crashy")).text,
        60,
        "the restarted task serving",
        interval=0.3,
    )

    deploy(mstack, mapi, "hungry", image, tmp_path, {"MODE": "oom", "OOM_AFTER": "2"}, limit=32)
    oom = wait_event(mapi, "hungry", "task.oom_killed", timeout=60)
    assert "more than its memory limit (32 MB)" in oom["message"], oom


def test_a_deployer_restart_restarts_nothing(
    mstack: MultiStack, mapi: Api, image: str, tmp_path: Path
) -> None:
    deploy(mstack, mapi, "steady", image, tmp_path)
    scale(mapi, "steady", 2)
    before = {t["task_name"] for t in healthy(mapi, "steady", 2)}
    mstack.procs["deployer"].restart()
    time.sleep(5)
    after = {t["task_name"] for t in healthy(mapi, "steady", 2)}
    assert after == before


def test_deletion_cleans_every_node(
    mstack: MultiStack, mapi: Api, mproject: str, image: str, tmp_path: Path
) -> None:
    deploy(mstack, mapi, "gone", image, tmp_path)
    scale(mapi, "gone", 3)
    healthy(mapi, "gone", 3)
    r = mapi.delete("/services/gone")
    assert r.status_code in (200, 202)
    wait_for(lambda: mapi.get("/services/gone").status_code == 404, 60, "the deletion")
    wait_for(lambda: swarm_services(mstack, mproject, "gone") == [], 30, "no swarm service")
    for node in mstack.cluster.nodes:
        wait_for(
            lambda n=node.index: containers_on(mstack, n, mproject) == [],
            30,
            f"no container of {mproject} on node {node.index}",
        )
